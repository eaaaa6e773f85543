"""What runs only in Celery workers: signal handlers, the reporter, steps, run_group, logs.

Never imported by progress.web (make lint enforces it).
"""
