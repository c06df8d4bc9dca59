"""Bottle apps for both roles, the JSON error handling they share, and the waitress server."""
