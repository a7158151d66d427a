"""Media tracks and sinks for webcam-peer.

Importing ``media`` loads no OpenCV: a process that opens an OpenCV window imports
:mod:`peer.media_libraries` first (it loads OpenCV before PyAV, see there).
"""
