"""Sessions behind sockets: which are still signed in, and a logout closing its sockets."""

from __future__ import annotations

import json

import pytest
from asgiref.sync import sync_to_async
from channels.testing.websocket import WebsocketCommunicator
from django.contrib.auth.models import User
from django.test import Client

from progress.web.sessions import signed_in
from tasks_site.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def session_of(user: User) -> tuple[Client, tuple[str, int]]:
    client = Client()
    client.force_login(user)
    return client, (client.session.session_key or "", user.pk)


def test_a_live_session_is_signed_in_and_an_ended_one_is_not(alice: User, bob: User) -> None:
    alice_client, alices = session_of(alice)
    _bob_client, bobs = session_of(bob)
    assert signed_in({alices, bobs}) == {alices, bobs}
    # A session key of another user's, or an unknown one, signs nobody in.
    assert signed_in({(alices[0], bob.pk), ("nope", alice.pk)}) == set()
    alice_client.logout()
    assert signed_in({alices, bobs}) == {bobs}


def test_deactivation_and_a_password_change_sign_a_session_out(alice: User, bob: User) -> None:
    _a, alices = session_of(alice)
    _b, bobs = session_of(bob)
    User.objects.filter(pk=alice.pk).update(is_active=False)
    bob.set_password("a-new-password")
    bob.save()
    assert signed_in({alices, bobs}) == set()


@pytest.mark.asyncio
async def test_a_logout_closes_the_sockets_of_that_session_with_4401(alice: User) -> None:
    client, (session_key, _pk) = await sync_to_async(session_of)(alice)
    headers = [(b"cookie", f"sessionid={session_key}".encode()), (b"origin", b"http://127.0.0.1")]
    communicator = WebsocketCommunicator(application, "/ws/progress/", headers=headers)
    connected, _ = await communicator.connect(timeout=5)
    assert connected
    assert json.loads(await communicator.receive_from(timeout=5))["type"] == "snapshot"
    await sync_to_async(client.post)("/accounts/logout/")
    notice = json.loads(await communicator.receive_from(timeout=5))
    assert notice["type"] == "error" and notice["error"] == "session_ended"
    assert await communicator.receive_output(timeout=5) == {"type": "websocket.close", "code": 4401}
    # The client answers the close, and the consumer ends before the test's database goes.
    await communicator.disconnect()
