"""Management commands of the progress app."""
