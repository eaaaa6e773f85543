"""Management commands of the progress app. A terminal."""
