"""The fan-out scenario on ours: one channel layer's stack, its jobs' owners, and its runs.

The stack is a private redis-server, SQLite, and the Procfile's web process and Celery worker;
the owners launch and read its jobs over the API.
"""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

import httpx

from bench.fanout_client import FINAL
from bench.fanout_results import LOCKED, Run, note_coalescing
from bench.fanout_sockets import Target, per_tab, run_sockets, tabs_of
from bench.harness import log
from bench.stack import BenchRun, Sessions, Web, create_users, django_env, migrate
from devstack.processes import RedisServer, Service, wait_for, web_argv, worker_argv

Cookies = httpx.Cookies | dict[str, str]


class Stack:
    """Ours on one channel layer (CHANNEL_LAYER), as the Procfile runs it."""

    def __init__(self, layer: str, bench: BenchRun, throttle: float) -> None:
        self.layer = layer
        self.bench = bench
        self.throttle = throttle
        self.dir = bench.workdir / f"stack-{layer}"
        self.redis: RedisServer | None = None
        self.env: dict[str, str] = {}
        self._web: Web | None = None
        self.worker: Service | None = None
        self.pool = ""
        self.sessions = Sessions("sessionid", {})

    @property
    def web(self) -> Web:
        assert self._web is not None, "the stack is not started"
        return self._web

    @property
    def services(self) -> list[Service]:
        web = [self._web.service] if self._web is not None else []
        return web + ([self.worker] if self.worker is not None else [])

    def pids(self) -> dict[str, int]:
        assert self.worker is not None and self.redis is not None and self.redis.process
        return {"web": self.web.pid, "worker": self.worker.process.pid,
                "redis": self.redis.process.pid}  # fmt: skip

    async def start(self, form_users: list[str], session_users: list[str]) -> None:
        """The M scenarios' users log in through the form; the users scenario's get sessions
        made for them (stack.create_users)."""
        self.dir.mkdir(parents=True)
        self.redis = await asyncio.to_thread(self.bench.redis, f"redis-{self.layer}")
        self.env = django_env(
            self.dir,
            self.redis,
            CHANNEL_LAYER=self.layer,
            PROGRESS_MAX_SOCKETS="0",  # No cap on one user's sockets.
            # Unfinished jobs per user (0 would mean no limit too); the users scenario has 1 each.
            PROGRESS_MAX_RUNNING_JOBS="1000",
            PROGRESS_THROTTLE=str(self.throttle),
        )
        log(f"{self.layer} stack: migrate, collectstatic, users")
        await asyncio.to_thread(migrate, self.env)
        self.sessions = await asyncio.to_thread(create_users, self.env, form_users, session_users)
        self._web = self.bench.web(f"web-{self.layer}", web_argv, self.env)
        await self.start_worker("prefork", 2)
        await asyncio.to_thread(self.web.wait_serving)
        log(f"{self.layer} stack: web on port {self.web.port}, celery worker {self.pool}")

    async def start_worker(self, pool: str, concurrency: int) -> None:
        """The Procfile's worker (prefork, 2 children), or threads for the users scenario."""
        if self.worker is not None:
            await asyncio.to_thread(self.bench.stop, self.worker)
        self.pool = f"--pool {pool} --concurrency {concurrency}"
        worker = self.worker = self.bench.service(
            f"worker-{self.layer}-{pool}", worker_argv(pool, concurrency), self.env
        )

        def ready() -> bool:
            worker.assert_alive()
            return " ready." in worker.output()

        await asyncio.to_thread(wait_for, ready, 60, 0.2)

    async def stop(self) -> None:
        for service in self.services:
            await asyncio.to_thread(self.bench.stop, service)
        self._web = self.worker = None
        if self.redis is not None:
            await asyncio.to_thread(self.bench.stop, self.redis)

    async def csrf_token(self) -> str:
        async with httpx.AsyncClient(base_url=self.web.base_url, timeout=30) as client:
            await client.get("/accounts/login/")
            return str(client.cookies["csrftoken"])


class Owners:
    """The logged-in users who launch and read the jobs, one per job, over fresh connections.

    uvicorn closes a connection idle for 5 s; reusing one as it does so fails the request, so
    each call opens its own (and a read is tried twice).
    """

    def __init__(self, base_url: str, cookies: list[Cookies]) -> None:
        self.base_url = base_url
        self.cookies = cookies

    def client(self, cookies: Cookies) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.base_url, cookies=cookies, timeout=60)

    async def launch(self, args: argparse.Namespace) -> list[str]:
        """POST /api/jobs/ for demo.count, one job per owner, all at once; returns the ids."""
        params = {"steps": args.states, "delay": round(1 / args.rate, 6)}

        async def one(cookies: Cookies) -> str:
            async with self.client(cookies) as api:
                response = await api.post(
                    "/api/jobs/",
                    json={"task": "demo.count", "params": params},
                    headers={"X-CSRFToken": api.cookies["csrftoken"]},
                )
            if response.status_code != 201:
                raise RuntimeError(
                    f"POST /api/jobs/ answered {response.status_code}: {response.text[:300]}"
                )
            return str(response.json()["id"])

        return list(await asyncio.gather(*(one(cookies) for cookies in self.cookies)))

    async def fetch(self, jobs: list[str]) -> list[dict[str, Any]]:
        """GET /api/jobs/<id>/ of each job, with its owner's cookies."""

        async def one(cookies: Cookies, job: str) -> dict[str, Any]:
            for attempt in (1, 2):
                try:
                    async with self.client(cookies) as api:
                        response = await api.get(f"/api/jobs/{job}/")
                    response.raise_for_status()
                    data: dict[str, Any] = response.json()
                    return data
                except httpx.HTTPError:
                    if attempt == 2:
                        raise
                    await asyncio.sleep(0.5)
            raise AssertionError("unreachable")

        pairs = zip(self.cookies, jobs, strict=True)
        return list(await asyncio.gather(*(one(cookies, job) for cookies, job in pairs)))

    async def ended(self, jobs: list[str]) -> bool:
        try:
            return all(job["state"] in FINAL for job in await self.fetch(jobs))
        except httpx.HTTPError as exc:
            log(f"could not read the jobs' states ({exc!r}); trying again")
            return False


def ours_target(stack: Stack, owners: Owners, args: argparse.Namespace) -> Target:
    async def final_seqs(jobs: list[str]) -> dict[str, int]:
        return {row["id"]: int(row["seq"]) for row in await owners.fetch(jobs)}

    return Target(
        stack.layer,
        stack.pids,
        stack.services,
        snapshot=True,
        launch=lambda: owners.launch(args),
        ended=owners.ended,
        final_seqs=final_seqs,
    )


async def ours_run(stack: Stack, scenario: str, args: argparse.Namespace) -> Run:
    """One job of one owner, watched by M of the owner's sockets."""
    count = int(scenario.removeprefix("M="))
    cookies = await asyncio.to_thread(stack.web.login, f"fan-{count}")
    headers = stack.web.socket_headers(cookies)
    sockets = [{"url": stack.web.ws_url, "headers": headers} for _ in range(count)]
    target = ours_target(stack, Owners(stack.web.base_url, [cookies]), args)
    run = await run_sockets(target, scenario, sockets, lambda jobs: jobs * count, args, stack.bench)
    note_coalescing(run, args)
    return run


async def users_run(stack: Stack, args: argparse.Namespace) -> Run:
    """--users users at once, each with one job and 1 to --tabs sockets; the worker on threads,
    since prefork's 2 children cannot run 100 jobs at once."""
    log(f"{stack.layer} stack: restarting the worker with --pool threads for the users scenario")
    await stack.start_worker("threads", max(2, args.users))
    csrf = await stack.csrf_token()
    sessions = stack.sessions
    names = sorted(sessions.by_user)
    cookies: list[Cookies] = [
        {sessions.cookie: sessions.by_user[name], "csrftoken": csrf} for name in names
    ]
    sockets = [
        {"url": stack.web.ws_url, "headers": stack.web.socket_headers(cookies[index])}
        for index in range(len(names))
        for _tab in range(tabs_of(index, args))
    ]
    target = ours_target(stack, Owners(stack.web.base_url, cookies), args)
    run = await run_sockets(
        target, "users", sockets, lambda jobs: per_tab(jobs, args), args, stack.bench
    )
    note_coalescing(run, args)
    run.notes.append(
        f"worker ran with {stack.pool} (prefork's 2 children cannot run {len(names)} jobs at once)"
    )
    run.notes.append(
        f"the {len(names)} POSTs took {run.launch_s:.1f} s; '{LOCKED}' appeared {run.locked} "
        "times in the server logs"
    )
    return run
