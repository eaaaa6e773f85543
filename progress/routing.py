"""WebSocket URLs of the progress app. Web processes."""

from django.urls import path

from progress.web.consumers import ProgressConsumer

websocket_urlpatterns = [
    path("ws/progress/", ProgressConsumer.as_asgi()),
]
