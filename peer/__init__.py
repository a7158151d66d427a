"""The webcam-peer program: signaling client, call logic and command line."""

try:
    # media first: it loads OpenCV before aiortc loads PyAV (see media/__init__.py).
    import media  # noqa: F401
except ImportError as missing:  # `pip install webcam-peer` is the server alone
    raise SystemExit(
        f"webcam-peer: its media libraries are not installed ({missing.name or missing}); "
        "pip install 'webcam-peer[peer]' adds them"
    ) from None
