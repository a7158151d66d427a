"""Media tracks and sinks for webcam-peer.

OpenCV is imported here, before anything can import PyAV: both wheels bundle their
own libxcb, and when PyAV's copy is loaded first OpenCV's window hangs on creation.
"""

import cv2  # noqa: F401
