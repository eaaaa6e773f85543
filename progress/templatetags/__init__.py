"""The progress app's template tags. Web processes."""
