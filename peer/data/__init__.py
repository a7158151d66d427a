"""Data channels: chat and file transfers."""
