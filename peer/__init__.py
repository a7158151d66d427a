"""The webcam-peer program: signaling client, call logic and command line."""
