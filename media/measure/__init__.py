"""Reading measurements out of media: stamps, rates, freezes, levels."""
