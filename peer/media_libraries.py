"""The peer's media libraries, loaded in the one order that works, or a one-line exit.

Every entry point that may open an OpenCV window imports this before anything imports
PyAV (aiortc does): both wheels bundle their own libxcb, and when PyAV's copy is loaded
first OpenCV's window hangs on creation. Pure modules never import it, so importing
them loads neither library.
"""

try:
    import cv2  # noqa: F401  (before aiortc and PyAV: see above)
except ImportError as missing:  # `pip install webcam-peer` is the server alone
    raise SystemExit(
        f"webcam-peer: its media libraries are not installed ({missing.name or missing}); "
        "pip install 'webcam-peer[peer]' adds them"
    ) from None
