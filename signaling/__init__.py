"""WebSocket signaling server for webcam-peer (protocol v1)."""
