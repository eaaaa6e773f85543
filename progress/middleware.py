"""ASGI middleware that hands the server's own send to the socket. Web processes."""

from __future__ import annotations

from typing import Any

# The scope key under which the server's send travels past the other middleware.
DIRECT_SEND = "progress.direct_send"


class DirectSendMiddleware:
    """Wrap the socket's stack in this, outside AuthMiddlewareStack, to speed up fan-out.

    Channels' session middleware wraps `send` to save the session and set its
    cookie on HTTP responses; for every WebSocket frame it still reads the
    session's state, which cost about a quarter of the CPU of a fan-out. Job
    frames carry no cookie, so the consumer's outbox writes them through the
    server's send kept here; everything else still goes through the stack.
    """

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> Any:
        """Runs once per connection, before the session and auth middleware."""
        return await self.inner({**scope, DIRECT_SEND: send}, receive, send)
