"""The progress app's management commands. A terminal."""
