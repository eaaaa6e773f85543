"""Fixtures every tier may ask for: the real stack (system and browser tests), logged-in
clients, and Debian's Chromium. Playwright loads only when a test asks for a browser."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.helpers.stack import Stack

if TYPE_CHECKING:
    from playwright.sync_api import Browser


@pytest.fixture(scope="session")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """The whole service on real processes, shared by the tests that leave it as they found it."""
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    # Databases 2 and 3: apart from the in-process tests' 0 and 1.
    with Stack(tmp_path_factory.mktemp("stack"), f"{redis_url}/2").running() as running:
        yield running


@pytest.fixture(scope="session")
def browser() -> Iterator[Browser]:
    """Debian's headless Chromium, driven by Playwright (never `playwright install`)."""
    from playwright.sync_api import sync_playwright

    from tests.helpers.browser import CHROMIUM, CHROMIUM_ARGS

    if not os.path.exists(CHROMIUM):
        pytest.fail("Debian's chromium is not installed; `make test` installs it.")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _logged_in(username: str) -> Callable[[Stack], Iterator[httpx.Client]]:
    def fixture(stack: Stack) -> Iterator[httpx.Client]:
        client = stack.login(username)
        yield client
        client.close()

    fixture.__name__ = username
    return pytest.fixture(fixture, name=username)


alice = _logged_in("alice")
bob = _logged_in("bob")
staff = _logged_in("staff")
