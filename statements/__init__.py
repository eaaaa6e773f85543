"""A second app that uses only progress's public API: monthly account statements.

Users request a statement on their own page; it is built by a Celery task that
reports in steps, shown with `{% progress_bar %}`, and when it finishes a
`job_finished` receiver leaves a notification and sends an email.
"""
