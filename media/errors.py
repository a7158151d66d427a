"""The one error media/ raises for a device or file it cannot use."""

from __future__ import annotations


class MediaSourceError(Exception):
    """A camera, microphone, file or output device that cannot be opened or read."""
