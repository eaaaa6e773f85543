"""WebSocket URLs of the statements app."""

from django.urls import path

from .consumers import NoticeConsumer

websocket_urlpatterns = [
    path("ws/statements/", NoticeConsumer.as_asgi()),
]
