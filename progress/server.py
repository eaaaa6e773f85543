"""Runs uvicorn so that a shutdown first closes every progress socket with 1001 (going away).

uvicorn itself closes WebSockets with 1012 when it stops; 1001 is what RFC 6455
names for a server going down, and the code this service's clients and proxies
are told to expect (docs/protocol.md). Use it as uvicorn, with uvicorn's flags:

    python -m progress.server tasks_site.asgi:application --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import logging
import socket
from importlib import import_module

from uvicorn.server import Server

from .events import CloseCode

logger = logging.getLogger("progress.server")


class GoingAwayServer(Server):
    """uvicorn's server, with the progress sockets closed before its own shutdown."""

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Runs once, on SIGTERM or SIGINT, in the server's event loop."""
        # Imported here: the app, which sets Django up, loads after this module.
        from .fanout import current_hub

        # Stop accepting first, so that no client reconnects to this server in between.
        for server in self.servers:
            server.close()
        hub = current_hub()
        if hub is not None:
            closed = await hub.close_all(CloseCode.GOING_AWAY)
            logger.info("Closed %d progress sockets with %d", closed, CloseCode.GOING_AWAY)
        await super().shutdown(sockets)


def main() -> None:
    # uvicorn's command line builds its Server by this name, so every flag keeps
    # working. (The package's `main` attribute is the command, not the module.)
    cli = import_module("uvicorn.main")
    cli.Server = GoingAwayServer  # type: ignore[attr-defined]
    cli.main()


if __name__ == "__main__":
    main()
