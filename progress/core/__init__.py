"""What every process shares: the store and its key schema, the state machine, reads,
commands, the registry, maintenance and the publisher that bridges sync code to Redis.

Imported by web and worker processes alike; imports neither side (make lint enforces it).
"""
