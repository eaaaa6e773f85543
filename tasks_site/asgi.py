"""ASGI entry point: HTTP goes to Django, /ws/progress/ to the progress consumer."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tasks_site.settings")

# Django must be set up before anything imports models, hence the order below.
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from progress.middleware import DirectSendMiddleware  # noqa: E402
from progress.routing import websocket_urlpatterns  # noqa: E402
from statements.routing import websocket_urlpatterns as statement_sockets  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(
            DirectSendMiddleware(
                AuthMiddlewareStack(URLRouter([*websocket_urlpatterns, *statement_sockets]))
            )
        ),
    }
)
