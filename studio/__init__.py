"""Listening-test studio (Panel)."""
