"""Whether a window can be opened here at all."""

from __future__ import annotations

import os
import sys


def display_available() -> bool:
    """False on a Linux/BSD box with no X11 or Wayland display (a server, CI, ssh)."""
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
