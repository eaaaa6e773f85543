"""Celery task modules of the demo site, the demo tasks among them."""
