"""Tests: network."""
