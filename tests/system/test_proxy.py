"""Behind a real nginx (Debian's), run from compose/nginx.conf: login, launch and a live bar
through it over TLS, X-Forwarded-* honoured, and idle sockets that outlive its read timeout."""

from __future__ import annotations

import json
import os
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from tests.helpers.nginx import CONFIG, Nginx
from tests.helpers.stack import PASSWORD, Stack
from tests.support import login

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.scale

# nginx's read timeout on /ws/ for these tests, and uvicorn's ping interval: scaled down
# from production's (3600 s in compose/nginx.conf, nginx's default 60 s, uvicorn's 20 s)
# so that a socket can sit idle through several timeouts in a few seconds.
READ_TIMEOUT = 2
PING_INTERVAL = 0.5


@pytest.fixture(scope="module")
def proxied(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, Nginx]]:
    """A stack of its own, as production runs it: behind TLS, trusting nginx's headers."""
    redis_url = os.environ["REDIS_URL"].rsplit("/", 1)[0]
    running = Stack(
        tmp_path_factory.mktemp("proxied"),
        f"{redis_url}/6",
        TRUST_X_FORWARDED_PROTO="1",
        SECURE_COOKIES="1",
    )
    nginx = Nginx(
        tmp_path_factory.mktemp("nginx"),
        [f"127.0.0.1:{running.port}"],
        ws_read_timeout=f"{READ_TIMEOUT}s",
    )
    try:
        running.prepare()
        running.start_worker()
        running.start_web(
            "--proxy-headers",
            "--forwarded-allow-ips=127.0.0.1",
            "--ws-ping-interval",
            str(PING_INTERVAL),
        )
        nginx.start()
        yield running, nginx
    finally:
        nginx.stop()
        running.stop()


def tls_client(nginx: Nginx, username: str) -> httpx.Client:
    """Logged in through nginx over https, as a browser would."""
    return login(nginx.tls_url, username, PASSWORD, verify=False)


def wss(nginx: Nginx, client: httpx.Client, origin: str | None = None) -> ClientConnection:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    cookies = "; ".join(f"{k}={v}" for k, v in client.cookies.items())
    return connect(
        nginx.tls_url.replace("https://", "wss://") + "/ws/progress/",
        ssl=context,
        additional_headers={"Cookie": cookies, "Origin": origin or nginx.tls_url},
        open_timeout=10,
    )


def test_behind_tls_the_app_sees_https_so_cookies_are_secure_and_origins_match(
    proxied: tuple[Stack, Nginx],
) -> None:
    _stack, nginx = proxied
    client = tls_client(nginx, "alice")
    # X-Forwarded-Proto: https made request.is_secure() true, so SECURE_COOKIES took effect.
    secure = {cookie.name: cookie.secure for cookie in client.cookies.jar}
    assert secure["sessionid"] and secure["csrftoken"], secure
    # Django's CSRF check compares Origin with the scheme it sees: had nginx's headers
    # been ignored, an https Origin would not match http and this would be a 403.
    token = client.cookies["csrftoken"]
    launched = client.post(
        "/api/jobs/",
        json={"task": "demo.count", "params": {"steps": 2, "delay": 0}},
        headers={"X-CSRFToken": token, "Origin": nginx.tls_url},
    )
    assert launched.status_code == 201, launched.text
    # The WebSocket's Origin check sees the Host nginx passes on: a foreign page is refused.
    with pytest.raises(InvalidStatus) as refused:
        wss(nginx, client, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    client.close()


def test_an_idle_socket_outlives_the_proxys_read_timeout(proxied: tuple[Stack, Nginx]) -> None:
    _stack, nginx = proxied
    client = tls_client(nginx, "bob")
    with wss(nginx, client) as socket:
        assert json.loads(socket.recv(timeout=10))["type"] == "snapshot"
        # Nothing to say for three read timeouts: only uvicorn's pings cross nginx. Without
        # them nginx would close the socket after READ_TIMEOUT seconds.
        quiet_until = time.monotonic() + 3 * READ_TIMEOUT
        while (left := quiet_until - time.monotonic()) > 0:
            with pytest.raises(TimeoutError):
                socket.recv(timeout=left)
        # Still open, and still live: a new job's states arrive on it.
        token = client.cookies["csrftoken"]
        job = client.post(
            "/api/jobs/",
            json={"task": "demo.count", "params": {"steps": 3, "delay": 0.05}},
            headers={"X-CSRFToken": token, "Origin": nginx.tls_url},
        ).json()
        states: list[str] = []
        while not states or states[-1] not in ("SUCCESS", "FAILURE", "REVOKED"):
            try:
                frame = json.loads(socket.recv(timeout=15))
            except ConnectionClosed as closed:
                raise AssertionError(f"nginx closed the idle socket: {closed!r}") from None
            if frame["type"] == "job" and frame["job"]["id"] == job["id"]:
                states.append(frame["job"]["state"])
        assert states[-1] == "SUCCESS"
    client.close()


def test_the_production_config_keeps_idle_sockets_past_nginxs_default() -> None:
    """What the scaled-down test above stands for: /ws/ outlasts nginx's 60 s default."""
    text = CONFIG.read_text()
    ws = text[text.index("location /ws/") :]
    ws = ws[: ws.index("}")]
    assert "proxy_read_timeout 3600s;" in ws


def log_in_and_count(page: Page, base_url: str, username: str, live: str, steps: int) -> None:
    """Logs in at `base_url`, waits for the status `live`, launches demo.count from the
    dashboard and follows its row to SUCCESS."""
    from playwright.sync_api import expect

    from tests.helpers.browser import launch_count

    page.goto(f"{base_url}/")
    page.fill("#id_username", username)
    page.fill("#id_password", PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("[data-connection]")).to_have_text(live, timeout=20_000)
    row = launch_count(page, steps=steps, delay=0.1)
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    expect(row.locator('[data-field="counts"]')).to_have_text(f"{steps} / {steps}", timeout=20_000)
    expect(row).to_have_attribute("data-state", "SUCCESS")


@pytest.mark.browser
def test_login_launch_and_a_live_bar_through_nginx(
    proxied: tuple[Stack, Nginx], browser: Browser
) -> None:
    _stack, nginx = proxied
    context = browser.new_context(ignore_https_errors=True)
    page = context.new_page()
    log_in_and_count(page, nginx.tls_url, "alice", live="live", steps=20)
    assert all(cookie["secure"] for cookie in context.cookies() if cookie["name"] == "sessionid")
    context.close()


@pytest.mark.browser
def test_behind_a_proxy_that_drops_upgrades_the_page_falls_back_to_sse(
    proxied: tuple[Stack, Nginx], browser: Browser, tmp_path: Path
) -> None:
    """nginx without the Upgrade headers, as a proxy that knows nothing of WebSockets: the
    handshake reaches the app as a plain GET and fails, and the page carries on over SSE."""
    stack, _nginx = proxied
    blind = Nginx(tmp_path, [f"127.0.0.1:{stack.port}"], drop_upgrades=True).start()
    try:
        context = browser.new_context(ignore_https_errors=True)
        page = context.new_page()
        log_in_and_count(page, blind.tls_url, "bob", live="live (fallback)", steps=15)
        context.close()
    finally:
        blind.stop()
