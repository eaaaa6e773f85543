"""What runs only in web processes: the hub, outboxes, presence, chores, consumers, SSE,
subscriptions, the API and the pages.

Never imported by progress.worker (make lint enforces it).
"""
