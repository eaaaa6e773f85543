"""The progress app's management commands."""
