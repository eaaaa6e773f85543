"""Faults made real: Redis restarts, workers killed, the ASGI server stopped, sockets cut.

One stack of real processes for the module, on a Redis of its own (with a
password, so the last test can look for it in the logs). Tests break parts of
it and leave it whole again. Its settings make the fault clocks short:
WORKER_LOST_AFTER 3 s, RECONCILE_INTERVAL 0.5 s, SESSION_RECHECK 1 s. One test, on
which no socket may ever be opened, runs a stack and a Redis of its own with them.
"""

from __future__ import annotations

import json
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from progress.protocol.states import WORKER_LOST_ERROR, Mark, NewestSeqs
from tests.helpers.crowd import Client, Crowd
from tests.helpers.stack import FINAL, PASSWORD, Stack, csrf, launch
from tests.support import ROOT, RedisServer, manage, record_figure, wait_for

if TYPE_CHECKING:
    from playwright.sync_api import Browser

FAULT_PROGRESS = {"WORKER_LOST_AFTER": 3, "RECONCILE_INTERVAL": 0.5, "SESSION_RECHECK": 1}
REDIS_PASSWORD = "redis-password-never-logged-4f1a"
STORM_USERS = [f"u{n:02d}" for n in range(100)]


def progress_env(**overrides: Any) -> str:
    return json.dumps({**FAULT_PROGRESS, **overrides})


@pytest.fixture(scope="module")
def redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path_factory.mktemp("fault-redis"), password=REDIS_PASSWORD)
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, redis: RedisServer) -> Iterator[Stack]:
    running = Stack(
        tmp_path_factory.mktemp("fault-stack"),
        redis.url,
        TEST_PROGRESS=progress_env(),
        SECRET_KEY="fault-stack-secret-key-never-logged-7c2e",
    )
    try:
        running.prepare()
        running.create_users(dict.fromkeys(STORM_USERS, False))
        running.start_worker()
        running.start_web()
        yield running
    finally:
        running.stop()


class Logins:
    """One logged-in HTTP client per user, made on first use and closed with the module."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.clients: dict[str, httpx.Client] = {}

    def __getitem__(self, username: str) -> httpx.Client:
        if username not in self.clients:
            self.clients[username] = self.stack.login(username)
        return self.clients[username]

    def close(self) -> None:
        for client in self.clients.values():
            client.close()


@pytest.fixture(scope="module")
def logins(stack: Stack) -> Iterator[Logins]:
    pool = Logins(stack)
    yield pool
    pool.close()


@contextmanager
def worker_as(
    stack: Stack, pool: str = "prefork", concurrency: int = 2, **env: str
) -> Iterator[None]:
    """Replaces the stack's worker with one run differently, and puts the usual one back."""
    assert stack.worker is not None
    stack.worker.stop()
    stack.start_worker(pool=pool, concurrency=concurrency, **env)
    try:
        yield
    finally:
        stack.worker.stop()
        stack.start_worker()


def cookie(client: httpx.Client) -> str:
    return "; ".join(f"{name}={value}" for name, value in client.cookies.items())


def job_state(client: httpx.Client, job_id: str) -> dict[str, Any]:
    state: dict[str, Any] = client.get(f"/api/jobs/{job_id}/").json()
    return state


# Redis


def test_a_redis_restart_mid_job_loses_no_final_state(
    stack: Stack, redis: RedisServer, logins: Logins
) -> None:
    """100 jobs of 10 users, each watched by two sockets, and Redis killed in the middle."""
    users = STORM_USERS[:10]
    # Long enough that the first job still runs when the hundredth is launched.
    STEPS = 150
    # One worker process runs all 100 jobs at once, so its one publisher meets the outage.
    with worker_as(stack, pool="threads", concurrency=100):
        clients = {name: logins[name] for name in users}
        crowd = Crowd(stack.ws_url, stack.origin)
        try:
            sockets = {name: crowd.add(cookie(clients[name]), count=2) for name in users}
            jobs = {
                name: [launch(clients[name], steps=STEPS, delay=0.1)["id"] for _ in range(10)]
                for name in users
            }
            every = [(name, job_id) for name in users for job_id in jobs[name]]
            crowd.wait(
                lambda: all(sockets[name][0].state(job_id) == "PROGRESS" for name, job_id in every),
                timeout=60,
            )
            web, worker = stack.web, stack.worker
            assert web is not None and worker is not None
            marks = len(web.output()), len(worker.output())
            redis.kill()
            # The outage lasts until both sides have felt it: the web's hub and the
            # worker's publisher each failed to reach Redis.
            wait_for(lambda: "Hub receive failed" in web.output()[marks[0] :], 30)
            wait_for(lambda: "Could not" in worker.output()[marks[1] :], 30)
            redis.start()
            took = crowd.wait(
                lambda: all(client.ended(jobs[name]) for name in users for client in sockets[name]),
                timeout=90,
            )
            reached = sum(
                all(
                    client.jobs[job_id]["state"] == "SUCCESS"
                    and client.jobs[job_id]["current"] == STEPS
                    and client.jobs[job_id]["result"] == {"counted": STEPS}
                    for client in sockets[name]
                )
                for name, job_id in every
            )
            assert reached == 100
            # Neither failed nor stalled: each ran about its 5 s, the outage included.
            runs = [_seconds(job_state(clients[name], job_id)) for name, job_id in every]
            assert max(runs) < 5 + 15, runs
            # A client that connects afterwards finds every final state in its snapshot.
            late = {name: crowd.add(cookie(clients[name]))[0] for name in users}
            assert all(late[name].jobs[job_id]["state"] == "SUCCESS" for name, job_id in every)
            # Counted again: the recovery re-registered the sockets Redis forgot.
            stack.check_alive()
        finally:
            crowd.close()
    record_figure("Redis restart: jobs whose final state reached every client", f"{reached}/100")
    record_figure("Redis restart: seconds from restart to the last final state", f"{took:.1f}")
    record_figure(
        f"Redis restart: job run time, median / max ({STEPS * 0.1:.0f} s nominal)",
        f"{statistics.median(runs):.1f} s / {max(runs):.1f} s",
    )


def _seconds(job: dict[str, Any]) -> float:
    started = datetime.fromisoformat(job["started"])
    finished = datetime.fromisoformat(job["finished"])
    return (finished - started).total_seconds()


@pytest.mark.parametrize(
    ("layer", "why"),
    [({"capacity": 1}, "a full channel"), ({"expiry": 1}, "expired messages")],
    ids=["capacity", "expiry"],
)
def test_states_the_layer_drops_are_caught_up_and_the_final_one_arrives(
    stack: Stack, logins: Logins, layer: dict[str, int], why: str
) -> None:
    """channels-redis drops group messages to a full channel and expires old ones, silently.

    The web process is stopped (SIGSTOP) while the job runs, so nothing reads its
    channel: with capacity 1 every message but the first is dropped, final one
    included; with an expiry of 1 s, all of them expire. The client must still end
    on the job's final state.
    """
    with worker_as(stack, TEST_LAYER=json.dumps(layer), TEST_PROGRESS=progress_env(THROTTLE=0)):
        alice = logins["alice"]
        socket = stack.socket(alice)
        assert socket.recv()["type"] == "snapshot"
        job = launch(alice, steps=200, delay=0.01)
        first = socket.until_state(job["id"], "PROGRESS")
        assert stack.web is not None and stack.worker is not None
        worker = stack.worker
        stack.web.signal(signal.SIGSTOP)
        try:
            wait_for(lambda: f"{job['id']}] succeeded" in worker.output(), 30)
            if "expiry" in layer:
                # The fault is the stop itself: it outlasts the expiry, so every message does.
                time.sleep(layer["expiry"] + 1)
        finally:
            stack.web.signal(signal.SIGCONT)
        states = [first, *socket.until_final(job["id"])]
        socket.close()
    final = states[-1]
    assert final["state"] == "SUCCESS" and final["current"] == 200, final
    seqs = [state["seq"] for state in states]
    assert seqs == sorted(set(seqs))
    assert len(seqs) < final["seq"] - first["seq"] + 1, "nothing was missed: no fault happened"
    assert "the channel layer had not delivered" in stack.web.output()
    record_figure(
        f"Layer drops ({why}): states the client received of {final['seq']}, and the final",
        f"{len(seqs)}, {final['state']}",
    )


# Workers


def test_a_worker_child_killed_mid_job_reruns_a_task_marked_safe_to_retry(
    stack: Stack, logins: Logins
) -> None:
    """reports.sales_csv is marked retry_on_worker_lost: Celery queues it again."""
    alice = logins["alice"]
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, "reports.sales_csv", rows=400, seconds=4)
    socket.until_state(job["id"], "PROGRESS")
    _kill_children(stack)
    states = socket.until_final(job["id"], timeout=60)
    socket.close()
    assert "RETRY" in [state["state"] for state in states]
    final = states[-1]
    assert final["state"] == "SUCCESS", final
    lines = alice.get(final["result"]["download"]).text.strip().splitlines()
    assert len(lines) == 401


def test_a_long_silent_step_is_not_mistaken_for_a_lost_worker(stack: Stack, logins: Logins) -> None:
    """Leases are renewed by the worker's publisher thread, not by progress calls."""
    alice = logins["alice"]
    socket = stack.socket(alice)
    socket.recv()
    # Two steps of 5 s without a progress call: past WORKER_LOST_AFTER (3 s) and its bound.
    job = launch(alice, steps=2, delay=5)
    final = socket.until_final(job["id"], timeout=30)[-1]
    socket.close()
    assert final["state"] == "SUCCESS", final


def test_redis_and_the_worker_lost_together_leave_no_view_stale(
    stack: Stack, redis: RedisServer, logins: Logins
) -> None:
    """Any restart of the whole stack: Redis (which keeps nothing) and the job's worker die
    together. The job's numbering restarts from its row, under a new epoch; a socket that
    applies the documented rule ends on the job's true final state, the one HTTP gives."""
    alice = logins["alice"]
    crowd = Crowd(stack.ws_url, stack.origin)
    watcher: subprocess.Popen[str] | None = None
    try:
        (client,) = crowd.add(cookie(alice))
        job = launch(alice, steps=400, delay=0.05)["id"]
        # A terminal's watch, and a job's SSE stream, on the same job: each must converge too.
        watcher = subprocess.Popen(
            [sys.executable, "manage.py", "progress", "watch", job, "--json", "--timeout", "90"],
            cwd=ROOT, env=stack.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        streamed = SseReader(alice, f"/api/jobs/{job}/events/")
        crowd.wait(lambda: client.jobs.get(job, {}).get("seq", 0) > 15, timeout=30)
        held = dict(client.jobs[job])
        assert stack.worker is not None
        stack.worker.signal(signal.SIGKILL, group=True)
        redis.kill()
        stack.worker.stop()
        redis.start()
        back = time.monotonic()
        stack.start_worker()
        crowd.wait(lambda: client.state(job) in FINAL, timeout=60)
        converged = time.monotonic() - back
        shown = client.jobs[job]
        truth = job_state(alice, job)
        assert shown["epoch"] != held["epoch"], "the numbering restarted: a new epoch"
        assert (shown["state"], shown["error"]) == ("FAILURE", WORKER_LOST_ERROR)
        for key in ("state", "error", "epoch", "seq", "current", "message"):
            assert shown[key] == truth[key], (key, shown, truth)
        # A client that connects now finds the same in its snapshot.
        (late,) = crowd.add(cookie(alice))
        assert late.jobs[job]["epoch"] == truth["epoch"] and late.jobs[job]["seq"] == truth["seq"]
        # The watch exits 1, for FAILURE, on the true state; the stream ends on it too.
        output, errors = watcher.communicate(timeout=60)
        assert watcher.returncode == 1, output + errors
        watched = json.loads(output.strip().splitlines()[-1])
        assert (watched["epoch"], watched["seq"], watched["state"]) == (
            truth["epoch"], truth["seq"], "FAILURE",
        ), output  # fmt: skip
        last = streamed.wait_final(timeout=30)
        assert (last["epoch"], last["seq"], last["state"]) == (
            truth["epoch"],
            truth["seq"],
            "FAILURE",
        )
    finally:
        crowd.close()
        if watcher is not None and watcher.poll() is None:
            watcher.kill()
    bound = 2.2 * FAULT_PROGRESS["WORKER_LOST_AFTER"] + FAULT_PROGRESS["WORKER_LOST_AFTER"] / 3
    assert converged <= bound + 5, converged
    record_figure(
        "Redis and worker lost together: seconds from Redis back to the true final state "
        "on an open socket (WORKER_LOST_AFTER = 3 s)",
        f"{converged:.1f}",
    )


@pytest.mark.browser
def test_an_open_job_page_ends_on_the_true_state_after_redis_and_the_worker_are_lost(
    stack: Stack, redis: RedisServer, logins: Logins, browser: Browser
) -> None:
    """The tab of the issue: it held a high seq, Redis and the worker died, and the job's
    numbering restarted lower. The page must end FAILURE with no reload and no live Cancel,
    and its bar must not have moved back while the job was shown running."""
    from playwright.sync_api import expect

    from tests.helpers.browser import log_in

    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "u99")
    job = launch(logins["u99"], steps=400, delay=0.05)["id"]
    page.goto(f"{stack.origin}/jobs/{job}/")
    row = page.locator(f'article[data-job-id="{job}"]')
    page.wait_for_function(
        "id => Number(document.querySelector(`article[data-job-id='${id}']`)?.dataset.seq) > 15",
        arg=job, timeout=30_000,
    )  # fmt: skip
    shown = float(row.locator("progress").get_attribute("value") or 0)
    page.evaluate(
        """() => {
          const bar = document.querySelector("article progress");
          window.lowest = Infinity;
          new MutationObserver(() => {
            const state = bar.closest("article").dataset.state;
            if (!["SUCCESS", "FAILURE", "REVOKED"].includes(state)) {
              window.lowest = Math.min(window.lowest, Number(bar.value));
            }
          }).observe(bar, { attributes: true });
        }"""
    )
    assert stack.worker is not None
    stack.worker.signal(signal.SIGKILL, group=True)
    redis.kill()
    stack.worker.stop()
    redis.start()
    stack.start_worker()
    expect(row).to_have_attribute("data-state", "FAILURE", timeout=60_000)
    truth = job_state(logins["u99"], job)
    expect(row).to_have_attribute("data-seq", str(truth["seq"]))
    expect(row.locator('[data-field="error"]')).to_have_text(WORKER_LOST_ERROR)
    expect(row.locator('[data-action="cancel"]')).to_be_hidden()
    # While it was shown running, the bar never went below what the tab had shown.
    lowest = page.evaluate("window.lowest")
    assert lowest >= shown - 0.01, (lowest, shown)
    context.close()


class SseReader:
    """A job's SSE stream read in a thread, reconnecting as EventSource does (Last-Event-ID)
    and keeping the newest state by the protocol's rule."""

    def __init__(self, client: httpx.Client, path: str) -> None:
        self.client, self.path = client, path
        self.marks = NewestSeqs()
        self.newest: dict[str, Any] = {}
        self.last_id = ""
        self.ended = threading.Event()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        while not self.ended.is_set():
            headers = {"Last-Event-ID": self.last_id} if self.last_id else {}
            try:
                with self.client.stream("GET", self.path, headers=headers, timeout=60) as answer:
                    for line in answer.iter_lines():
                        if line.startswith("id: "):
                            self.last_id = line[4:]
                        elif line.startswith("data: "):
                            self._take(json.loads(line[6:])["job"])
            except httpx.HTTPError:
                time.sleep(0.2)  # The server is back in a moment: EventSource's retry.

    def _take(self, job: dict[str, Any]) -> None:
        if self.marks.note("job", Mark(job["epoch"], job["seq"], job["state"] in FINAL)):
            self.newest = job
            if job["state"] in FINAL:
                self.ended.set()

    def wait_final(self, timeout: float) -> dict[str, Any]:
        assert self.ended.wait(timeout), self.newest
        return self.newest


def test_a_whole_worker_killed_mid_job_ends_its_job_failure_within_the_bound(
    stack: Stack, logins: Logins
) -> None:
    """SIGKILL to the worker and its children: nobody is left to report, but the sweep sees
    the job's lease expire."""
    alice = logins["alice"]
    socket = stack.socket(alice)
    socket.recv()
    job = launch(alice, steps=400, delay=0.05)
    socket.until_state(job["id"], "PROGRESS")
    assert stack.worker is not None
    stack.worker.signal(signal.SIGKILL, group=True)
    killed = time.monotonic()
    final = socket.until_final(job["id"], timeout=30)[-1]
    ended_after = time.monotonic() - killed
    socket.close()
    stack.worker.stop()
    stack.start_worker()
    assert final["state"] == "FAILURE" and final["error"] == WORKER_LOST_ERROR
    # The stated bound: about 2.2 x WORKER_LOST_AFTER, plus a sweep interval of slack.
    bound = 2.2 * FAULT_PROGRESS["WORKER_LOST_AFTER"] + FAULT_PROGRESS["WORKER_LOST_AFTER"] / 3
    assert ended_after <= bound + 1, ended_after
    record_figure(
        "Whole worker SIGKILLed: seconds until FAILURE (WORKER_LOST_AFTER = 3 s)",
        f"{ended_after:.1f} (bound {bound:.1f})",
    )


def test_with_no_socket_anywhere_a_whole_worker_killed_mid_job_still_ends_failure_in_bound(
    tmp_path: Path,
) -> None:
    """The same kill, watched over HTTP only, on a stack of its own on which no socket is ever
    opened (the module's stack has had sockets, and a hub).

    The web process sweeps from the server's start (progress.server, progress.web.chores),
    not from a hub's first socket. Nothing else can end the job: there is no celery beat,
    and the only worker is dead. Before the sweep left the hub, this job stayed PROGRESS.
    """
    redis = RedisServer(tmp_path / "redis")
    redis.start()
    try:
        (tmp_path / "stack").mkdir()
        alone = Stack(tmp_path / "stack", redis.url, TEST_PROGRESS=progress_env())
        with alone.running(), closing(alone.login("alice")) as alice:
            assert alone.worker is not None and alone.web is not None
            job = launch(alice, steps=400, delay=0.05)
            wait_for(lambda: job_state(alice, job["id"])["state"] == "PROGRESS", 30, interval=0.1)
            alone.worker.signal(signal.SIGKILL, group=True)
            killed = time.monotonic()
            final = wait_for(lambda: _ended(alice, job["id"]), timeout=30, interval=0.1)
            ended_after = time.monotonic() - killed
            web_log = alone.web.output()
    finally:
        redis.stop()
    assert final["state"] == "FAILURE" and final["error"] == WORKER_LOST_ERROR, final
    # No socket was ever opened on this server, and its own sweep is what ended the job.
    assert "/ws/progress/" not in web_log
    assert f"Job {job['id']} lost its worker" in web_log
    bound = 2.2 * FAULT_PROGRESS["WORKER_LOST_AFTER"] + FAULT_PROGRESS["WORKER_LOST_AFTER"] / 3
    assert ended_after <= bound + 1, ended_after
    record_figure(
        "Whole worker SIGKILLed, no socket anywhere (HTTP reads only): seconds until FAILURE",
        f"{ended_after:.1f} (bound {bound:.1f})",
    )


def _ended(client: httpx.Client, job_id: str) -> dict[str, Any]:
    """The job's state over HTTP once it is final, else nothing (falsy)."""
    state = job_state(client, job_id)
    return state if state["state"] in FINAL else {}


def _kill_children(stack: Stack) -> None:
    assert stack.worker is not None
    pid = stack.worker.process.pid
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        os.kill(int(child), signal.SIGKILL)


# The ASGI server


def test_a_stopping_server_closes_sockets_with_1001_and_clients_carry_on(
    stack: Stack, logins: Logins
) -> None:
    alice = logins["alice"]
    crowd = Crowd(stack.ws_url, stack.origin)
    try:
        clients = crowd.add(cookie(alice), count=3)
        job = launch(alice, steps=60, delay=0.1)
        crowd.wait(lambda: all(c.state(job["id"]) == "PROGRESS" for c in clients), timeout=20)
        assert stack.web is not None
        stack.web.signal(signal.SIGTERM)
        stopped = time.monotonic()
        # uvicorn shuts down gracefully, then dies of the signal it caught, as it should.
        assert stack.web.wait_exit(20) in (0, -signal.SIGTERM)
        assert "Finished server process" in stack.web.output()
        assert all(c.close_codes[:1] == [1001] for c in clients), [c.close_codes for c in clients]
        stack.start_web()
        crowd.wait(lambda: all(c.snapshots == 2 for c in clients), timeout=30)
        back = time.monotonic() - stopped
        crowd.wait(lambda: all(c.ended([job["id"]]) for c in clients), timeout=30)
        assert all(c.jobs[job["id"]]["state"] == "SUCCESS" for c in clients)
    finally:
        crowd.close()
    record_figure(
        "Server restart: seconds from SIGTERM to all clients back, start-up included", f"{back:.1f}"
    )


@pytest.mark.browser
def test_the_page_reconnects_to_a_restarted_server_and_its_bar_carries_on(
    stack: Stack, logins: Logins, browser: Browser
) -> None:
    from playwright.sync_api import expect

    from tests.helpers.browser import log_in

    context = browser.new_context()
    page = context.new_page()
    log_in(page, stack, "bob")
    job = launch(logins["bob"], steps=80, delay=0.1)
    row = page.locator(f'article[data-job-id="{job["id"]}"]')
    expect(row).to_have_attribute("data-state", "PROGRESS", timeout=15_000)
    assert stack.web is not None
    stack.web.signal(signal.SIGTERM)
    stack.web.wait_exit(20)
    expect(page.locator("[data-connection]")).to_have_text("reconnecting…", timeout=10_000)
    stack.start_web()
    expect(page.locator("[data-connection]")).to_have_text("live", timeout=30_000)
    expect(row.locator('[data-field="state"]')).to_have_text("SUCCESS", timeout=30_000)
    expect(row.locator("progress")).to_have_attribute("value", "100")
    context.close()


def test_a_reconnect_storm_of_1000_sockets_all_get_their_snapshot_and_carry_on(
    stack: Stack, logins: Logins
) -> None:
    """100 users with 10 tabs each; every connection is cut at once, and every client
    reconnects at once, with no backoff (the JS client spreads its reconnects; this
    is the worst case)."""
    clients = {name: logins[name] for name in STORM_USERS}
    crowd = Crowd(stack.ws_url, stack.origin)
    try:
        opened_in = _timed(lambda: [crowd.add(cookie(clients[n]), count=10) for n in STORM_USERS])
        assert len(crowd.clients) == 1000
        crowd.drop_all()
        recovered = crowd.wait(lambda: all(c.snapshots == 2 for c in crowd.clients), timeout=120)
        jobs = {name: launch(clients[name], steps=3, delay=0.01)["id"] for name in STORM_USERS}
        carried = crowd.wait(
            lambda: all(c.ended([job_id]) for c, job_id in _pairs(crowd, jobs)), timeout=120
        )
        assert all(c.jobs[job_id]["state"] == "SUCCESS" for c, job_id in _pairs(crowd, jobs))
    finally:
        crowd.close()
    record_figure("Storm: seconds to open 1,000 sockets", f"{opened_in:.1f}")
    record_figure("Storm: seconds until all 1,000 had a snapshot again", f"{recovered:.1f}")
    record_figure("Storm: then seconds until all saw a new job end", f"{carried:.1f}")


def _pairs(crowd: Crowd, jobs: dict[str, str]) -> list[tuple[Client, str]]:
    """Each client with its user's job: clients were added ten per user, in STORM_USERS order."""
    return [(client, jobs[STORM_USERS[index // 10]]) for index, client in enumerate(crowd.clients)]


def _timed(action: Any) -> float:
    started = time.monotonic()
    action()
    return time.monotonic() - started


# Sessions


def test_a_logout_closes_that_sessions_sockets_at_once_and_no_other(stack: Stack) -> None:
    crowd = Crowd(stack.ws_url, stack.origin)
    with closing(stack.login("alice")) as first, closing(stack.login("alice")) as second:
        try:
            (leaving,) = crowd.add(cookie(first))
            (staying,) = crowd.add(cookie(second))
            leaving.reconnect = staying.reconnect = False
            response = first.post("/accounts/logout/", headers=csrf(first))
            assert response.status_code == 302
            closed_in = crowd.wait(lambda: leaving.close_codes == [4401], timeout=5)
            assert [error["error"] for error in leaving.errors] == ["session_ended"]
            job = launch(second, steps=2, delay=0.01)
            crowd.wait(lambda: staying.ended([job["id"]]), timeout=20)
            assert staying.close_codes == [] and job["id"] not in leaving.jobs
        finally:
            crowd.close()
    record_figure("Logout: seconds until that session's sockets closed (4401)", f"{closed_in:.2f}")


def test_a_deactivated_users_sockets_close_within_the_session_recheck(
    stack: Stack, logins: Logins
) -> None:
    crowd = Crowd(stack.ws_url, stack.origin)
    try:
        (socket,) = crowd.add(cookie(logins["u99"]))
        socket.reconnect = False
        _set_active(stack, "u99", False)
        closed_in = crowd.wait(lambda: socket.close_codes == [4401], timeout=10)
    finally:
        crowd.close()
        _set_active(stack, "u99", True)
    # SESSION_RECHECK is 1 s here; the manage.py call that deactivates takes some of it.
    assert closed_in <= FAULT_PROGRESS["SESSION_RECHECK"] + 2
    record_figure("Deactivated user: seconds until their sockets closed", f"{closed_in:.2f}")


def _set_active(stack: Stack, username: str, active: bool) -> None:
    script = (
        "from django.contrib.auth.models import User; "
        f"User.objects.filter(username={username!r}).update(is_active={active})"
    )
    manage(stack.env, "shell", "-c", script)


# Last, over everything the tests above made the stack log.


def test_no_secret_reaches_the_logs(stack: Stack, logins: Logins) -> None:
    alice = logins["alice"]
    failing = launch(alice, steps=3, delay=0.01, fail_at=2)
    wait_for(lambda: job_state(alice, failing["id"])["state"] in FINAL, 20)
    secrets = {
        "the Redis password": REDIS_PASSWORD,
        "SECRET_KEY": stack.env["SECRET_KEY"],
        "a user's password": PASSWORD,
        "a session key": alice.cookies["sessionid"],
        "a CSRF token": alice.cookies["csrftoken"],
    }
    logs = stack.logs()
    assert "Task demo.count" in logs, "the logs were not read"
    leaked = [name for name, secret in secrets.items() if secret in logs]
    assert leaked == []
