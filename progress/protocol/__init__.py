"""The wire protocol, pure: states, frames and layer messages, with no ORM, Redis or asyncio.

Imported by every process; imports nothing of the app (make lint enforces it).
"""
