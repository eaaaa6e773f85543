"""Redis Sentinel made real: a primary, a replica, three sentinels, and a failover mid-job."""

# Every client of the stack (the channel layer, Celery's broker, the job states) must
# reach Redis through the sentinels: REDIS_URL points at a closed port and gives only
# the password and database number, so a client that bypassed Sentinel would fail.

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis

from progress.core.store import CLIENT_NAME
from tests.helpers.stack import Stack, launch
from tests.support import free_port, record_figure, redis_server_binary, wait_for

pytestmark = pytest.mark.scale

MASTER = "mymaster"
QUORUM = 2
DOWN_AFTER_MS = 1000
FAILOVER_TIMEOUT_MS = 5000
# The data servers' password: every client must carry REDIS_URL's through Sentinel.
PASSWORD = "sentinel-test-password"


class Node:
    """A redis-server process (a data server or a sentinel) with its config in a temp dir."""

    def __init__(
        self, workdir: Path, name: str, config: str, sentinel: bool = False, password: str = ""
    ) -> None:
        self.workdir = workdir / name
        self.workdir.mkdir(parents=True)
        self.port = free_port()
        # A sentinel rewrites its config file, so each needs one of its own.
        path = self.workdir / "redis.conf"
        path.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.workdir}\n"
            f"logfile {self.workdir / 'redis.log'}\n{config}"
        )
        argv = [redis_server_binary(), str(path), *(["--sentinel"] if sentinel else [])]
        self.process: subprocess.Popen[bytes] | None = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        self.client = redis.Redis(
            port=self.port,
            password=password or None,
            socket_timeout=2,
            socket_connect_timeout=2,
            decode_responses=True,
        )
        wait_for(self.client.ping, timeout=10)

    def kill(self) -> None:
        """Kills the server at once, as a crash of its machine would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait(10)
            self.process = None

    def freeze(self) -> None:
        """Stops the server answering, as a hung machine or a network partition would."""
        if self.process is not None:
            self.process.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGCONT)

    def stop(self) -> None:
        """Runs when the test is done."""
        self.client.close()
        if self.process is not None:
            self.thaw()
            self.process.terminate()
            self.process.wait(10)
            self.process = None


class Sentinels:
    """One primary, one replica and three sentinels (quorum 2) watching them, on loopback."""

    def __init__(self, workdir: Path) -> None:
        data = (
            'save ""\nappendonly no\nmaxmemory-policy noeviction\n'
            f"requirepass {PASSWORD}\nmasterauth {PASSWORD}\n"
        )
        self.primary = Node(workdir, "primary", data, password=PASSWORD)
        self.nodes = [self.primary]
        replica = f"{data}replicaof 127.0.0.1 {self.primary.port}\n"
        self.replica = Node(workdir, "replica", replica, password=PASSWORD)
        self.nodes.append(self.replica)
        wait_for(lambda: self.replica.client.info("replication")["master_link_status"] == "up")
        monitor = (
            f"sentinel monitor {MASTER} 127.0.0.1 {self.primary.port} {QUORUM}\n"
            f"sentinel down-after-milliseconds {MASTER} {DOWN_AFTER_MS}\n"
            f"sentinel failover-timeout {MASTER} {FAILOVER_TIMEOUT_MS}\n"
            f"sentinel parallel-syncs {MASTER} 1\n"
            f"sentinel auth-pass {MASTER} {PASSWORD}\n"
        )
        self.sentinels = [Node(workdir, f"sentinel-{n}", monitor, sentinel=True) for n in range(3)]
        self.nodes += self.sentinels
        # A failover needs each sentinel to know the replica and its two peers.
        wait_for(lambda: all(self._sees_all(node) for node in self.sentinels), timeout=30)

    def _sees_all(self, sentinel: Node) -> bool:
        state = sentinel.client.sentinel_master(MASTER)
        # A dict from a client of one sentinel; redis-py's types also allow the bool that
        # its Sentinel class returns without return_responses.
        assert isinstance(state, dict), state
        return bool(state["num-slaves"] == 1 and state["num-other-sentinels"] == 2)

    @property
    def addresses(self) -> str:
        return ",".join(f"127.0.0.1:{node.port}" for node in self.sentinels)

    def primary_port(self) -> int:
        """The primary's port, as a majority of the sentinels name it."""
        ports = [master_port(node) for node in self.sentinels]
        return max(set(ports), key=ports.count)

    def stop(self) -> None:
        """Runs when the test is done."""
        for node in reversed(self.nodes):
            node.stop()


@pytest.fixture
def sentinels(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sentinels]:
    group = Sentinels(tmp_path_factory.mktemp("sentinel"))
    try:
        yield group
    finally:
        group.stop()


@pytest.fixture
def stack(tmp_path_factory: pytest.TempPathFactory, sentinels: Sentinels) -> Iterator[Stack]:
    through_sentinels = Stack(
        tmp_path_factory.mktemp("sentinel-stack"),
        # Port 1 is closed: only the password and database number of this URL may be used.
        f"redis://:{PASSWORD}@127.0.0.1:1/0",
        REDIS_SENTINELS=sentinels.addresses,
        REDIS_SENTINEL_MASTER=MASTER,
        TEST_PROGRESS=json.dumps({"RECONCILE_INTERVAL": 0.5, "WORKER_LOST_AFTER": 10}),
    )
    with through_sentinels.running() as running:
        yield running


@pytest.mark.parametrize("fault", ["kill", "freeze"])
def test_a_failover_mid_job_loses_no_final_state(
    stack: Stack, sentinels: Sentinels, fault: str
) -> None:
    """The primary killed (or frozen, then back as a replica) mid-job: the replica is promoted
    and the job still ends SUCCESS."""
    client = stack.login("alice")
    watcher = stack.socket(client)
    try:
        assert watcher.recv()["type"] == "snapshot"
        job_id = launch(client, steps=60, delay=0.1)["id"]
        watcher.until_state(job_id, "PROGRESS", timeout=30)
        assert sentinels.primary_port() == sentinels.primary.port
        old = sentinels.primary
        if fault == "kill":
            old.kill()
        else:
            old.freeze()
        killed = time.monotonic()
        wait_for(lambda: sentinels.primary_port() == sentinels.replica.port, timeout=30)
        promoted = time.monotonic() - killed
        assert sentinels.replica.client.info("replication")["role"] == "master"
        if fault == "freeze":
            # Back, still a primary in its own eyes, with connections clients still hold,
            # until the sentinels demote it (some 8 s later): a split brain to survive.
            old.thaw()
            # No job-state connection stays on it, as none would if the pool asked the
            # sentinels only when it connects (one did, in a run without the re-check).
            wait_for(lambda: store_clients(old) == 0, timeout=3)
            assert old.client.info("replication")["role"] == "master"

        try:
            # The socket open since before the fault: the hub's re-reads of running jobs
            # (every RECONCILE_INTERVAL) must carry the final state over the failover.
            job = watcher.until_state(job_id, "SUCCESS", timeout=30)
            via = "the socket open since before the fault"
        except TimeoutError:
            # Else, as a tab that reconnects would, a new socket's snapshot.
            job = wait_for(lambda: snapshot_job(stack, client, job_id, "SUCCESS"), timeout=30)
            via = "a new socket's snapshot, not the open socket"
        took = time.monotonic() - killed
        # Since the worker ended the job: what the failover added to the job's own time.
        lag = time.time() - datetime.fromisoformat(str(job["finished"])).timestamp()
        assert job["state"] == "SUCCESS"
        if fault == "freeze":
            wait_for(lambda: old.client.info("replication")["role"] == "slave", timeout=30)
        stored = client.get(f"/api/jobs/{job_id}/").json()
        assert stored["state"] == "SUCCESS", stored
        # The web process queues and the worker's consumer takes a new job through
        # the promoted primary, and its states reach the same socket.
        after = launch(client, steps=3, delay=0.05)["id"]
        again = time.monotonic()
        watcher.until_state(after, "SUCCESS", timeout=60)
        next_job = time.monotonic() - again
        stack.check_alive()
    finally:
        watcher.close()
        client.close()
    what = "killed" if fault == "kill" else "frozen"
    record_figure(f"Sentinel: primary {what} to replica promoted", f"{promoted:.1f} s")
    record_figure(
        f"Sentinel: primary {what} to SUCCESS in the client",
        f"{took:.1f} s, {lag:.2f} s after the job ended ({via})",
    )
    record_figure(f"Sentinel ({fault}): a job launched after the failover", f"{next_job:.1f} s")


def master_port(sentinel: Node) -> int:
    """The primary's port as `sentinel` names it."""
    address = sentinel.client.sentinel_get_master_addr_by_name(MASTER)
    # A (host, port) pair from a client of one sentinel, as for _sees_all's dict.
    assert isinstance(address, tuple), address
    return int(address[1])


def store_clients(node: Node) -> int:
    """How many of the service's job-state connections (progress/core/store.py) `node` holds."""
    return sum(client.get("name") == CLIENT_NAME for client in node.client.client_list())


def snapshot_job(stack: Stack, client: httpx.Client, job_id: str, state: str) -> dict[str, Any]:
    """The job as a new socket's snapshot shows it, if it is in `state`; else an empty dict
    (falsy, for wait_for)."""
    fresh = stack.socket(client)
    try:
        frame = fresh.recv(5)
    finally:
        fresh.close()
    for job in frame.get("jobs", []):
        if job["id"] == job_id and job["state"] == state:
            found: dict[str, Any] = job
            return found
    return {}
