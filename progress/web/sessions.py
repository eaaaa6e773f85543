"""Sessions behind sockets: logouts close them, open ones are re-checked. Web processes."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from importlib import import_module
from types import SimpleNamespace
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user
from django.contrib.auth.signals import user_logged_out
from django.dispatch import receiver
from django.http import HttpRequest

from progress.core.publisher import get_publisher
from progress.protocol.layer import session_digest

logger = logging.getLogger(__name__)


def signed_in(pairs: Iterable[tuple[str, int]]) -> set[tuple[str, int]]:
    """The (session key, user id) pairs whose session still signs in that user.

    Django's own check, as a request would get it: the session exists and has
    not expired, the user exists and is active, and the password has not
    changed since the login (the session's auth hash).
    """
    engine = import_module(settings.SESSION_ENGINE)
    valid = set()
    for session_key, user_id in pairs:
        request = SimpleNamespace(session=engine.SessionStore(session_key))
        user = get_user(request)  # type: ignore[arg-type]
        if user.is_authenticated and user.pk == user_id:
            valid.add((session_key, user_id))
    return valid


@receiver(user_logged_out)
def _close_sockets_of_session(request: HttpRequest | None, user: Any, **kwargs: Any) -> None:
    """Runs in the web process that logs a user out: their sockets of that session close."""
    if user is None or user.pk is None:
        return
    session = getattr(request, "session", None)
    digest = session_digest(getattr(session, "session_key", None))
    if not digest:
        return
    future = get_publisher().end_session(int(user.pk), digest)
    future.add_done_callback(_log_failure)


def _log_failure(future: Any) -> None:
    """Runs when the logout message was sent, or could not be."""
    if not future.cancelled() and future.exception() is not None:
        # The session re-check closes the sockets within SESSION_RECHECK instead.
        logger.warning("Could not tell sockets of a logout: %r", future.exception())
