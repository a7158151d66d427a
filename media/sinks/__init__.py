"""Where remote media goes: window, speaker, recorder."""
