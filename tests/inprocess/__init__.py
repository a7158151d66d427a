"""Tests: inprocess."""
