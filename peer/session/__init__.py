"""The peer's signaling session: the protocol v1 client and what it admits."""
