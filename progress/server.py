"""The web process's entry point: uvicorn, with maintenance and a 1001 shutdown. Web processes.

uvicorn itself closes WebSockets with 1012 when it stops; 1001 is what RFC 6455
names for a server going down, and the code this service's clients and proxies
are told to expect (docs/protocol.md). Use it as uvicorn, with uvicorn's flags:

    python -m progress.server tasks_site.asgi:application --host 0.0.0.0 --port 8000
"""

from __future__ import annotations

import logging
import socket
from importlib import import_module

try:
    from uvicorn.server import Server
except ImportError as exc:  # Run as `python -m progress.server`: say what to install.
    raise SystemExit(
        "progress.server runs on uvicorn, which is not installed:"
        " pip install 'django-live-progress[server]'."
    ) from exc

from progress.protocol.frames import CloseCode

logger = logging.getLogger("progress.server")


class GoingAwayServer(Server):
    """uvicorn's server, with the process's maintenance running from its start (the sweep
    for lost workers, whether or not any socket is open) and the progress sockets closed
    before its own shutdown."""

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Runs once, when the server starts, in the server's event loop."""
        await super().startup(sockets)
        # Imported here: the app, which sets Django up, loads before startup().
        from progress.web import chores

        chores.start()

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """Runs once, on SIGTERM or SIGINT, in the server's event loop."""
        # Imported here: the app, which sets Django up, loads after this module.
        from progress.web.hub import current_hub

        # Stop accepting first, so that no client reconnects to this server in between.
        for server in self.servers:
            server.close()
        hub = current_hub()
        if hub is not None:
            closed = await hub.presence.close_all(CloseCode.GOING_AWAY)
            logger.info("Closed %d progress sockets with %d", closed, CloseCode.GOING_AWAY)
        from progress.web import chores

        await chores.stop()
        await super().shutdown(sockets)


def main() -> None:
    # uvicorn's command line builds its Server by this name, so every flag keeps
    # working. (The package's `main` attribute is the command, not the module.)
    cli = import_module("uvicorn.main")
    cli.Server = GoingAwayServer  # type: ignore[attr-defined]
    cli.main()


if __name__ == "__main__":
    main()
