"""The webcam-peer program: signaling client, call logic and command line."""

# media first: it loads OpenCV before aiortc loads PyAV (see media/__init__.py).
import media  # noqa: F401
