"""The fan-out scenario as celery-progress polls: M pollers GET the job every 500 ms.

They poll the redis stack's web process while the real job runs; one WebSocket watches the job
too, to count the states it publishes.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import random
import ssl
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench.fanout_client import FINAL, LagMeter
from bench.fanout_results import Run, count_log_lines, log_offsets, log_run
from bench.fanout_sockets import Clients, settle, wait_end
from bench.fanout_stack import Owners, Stack
from bench.harness import CpuMarks, log, percentile

POLL_INTERVAL = 0.5


@dataclasses.dataclass
class Poller:
    seqs: list[int] = dataclasses.field(default_factory=list)
    lags_ms: list[float] = dataclasses.field(default_factory=list)
    requests: int = 0
    errors: int = 0
    bytes: int = 0
    final: bool = False


async def poll(
    api: httpx.AsyncClient, job: str, poller: Poller, on_final: Callable[[], None]
) -> None:
    """GETs the job, then again POLL_INTERVAL after each answer, until a final state."""
    await asyncio.sleep(random.uniform(0, POLL_INTERVAL))  # Tabs do not open in step.
    last = 0
    while True:
        try:
            response = await api.get(f"/api/jobs/{job}/")
        except httpx.HTTPError:
            poller.errors += 1
            await asyncio.sleep(POLL_INTERVAL)
            continue
        received = time.time()
        poller.requests += 1
        poller.bytes += len(response.content)
        if response.status_code != 200:
            poller.errors += 1
        else:
            state = response.json()
            if state["seq"] > last:  # The seq rule: a newly seen state.
                last = state["seq"]
                poller.seqs.append(last)
                poller.lags_ms.append((received - state["ts"]) * 1000)
            if state["state"] in FINAL:
                poller.final = True
                on_final()
                return
        await asyncio.sleep(POLL_INTERVAL)


async def polling_run(stack: Stack, scenario: str, args: argparse.Namespace) -> Run:
    count = int(scenario.removeprefix("M="))
    run = Run("polling", scenario, count, opened=count, extensions="n/a (HTTP)", procs=1)
    label = f"{run.label} {scenario}"
    web = stack.web
    cookies = await asyncio.to_thread(web.login, f"poll-{count}")
    # One WebSocket (not a poller) watches the job too, to count the states it publishes.
    reference = Clients(stack.bench, f"polling-{count}-ref")
    owners = Owners(web.base_url, [cookies])
    # One client (connection) per poller, as each tab has its own: one shared pool of 1,000
    # connections costs httpx several times the CPU per request. One SSL context for all keeps
    # creating them cheap.
    context = ssl.create_default_context()
    clients = [
        httpx.AsyncClient(base_url=web.base_url, cookies=cookies, timeout=120, verify=context)
        for _ in range(count)
    ]
    pollers = [Poller() for _ in range(count)]
    tasks: list[asyncio.Task[None]] = []
    lag = LagMeter()
    try:
        await reference.start(
            [{"url": web.ws_url, "headers": web.socket_headers(cookies)}], True, 1
        )
        pids = stack.pids()
        await settle(pids, label)
        offsets = log_offsets(stack.services)
        lag.start()
        begin = CpuMarks.take({**pids, **reference.pids})
        [job] = await owners.launch(args)
        run.launch_s = time.monotonic() - begin.at
        log(f"{label}: job launched; {count} pollers GET it every {POLL_INTERVAL * 1000:.0f} ms")
        done = asyncio.Event()
        finals = 0

        def on_final() -> None:
            nonlocal finals
            finals += 1
            if finals == count:
                done.set()

        tasks = [
            asyncio.create_task(poll(client, job, poller, on_final))
            for client, poller in zip(clients, pollers, strict=True)
        ]

        async def ended() -> bool:
            return await owners.ended([job])

        await wait_end(
            label,
            done,
            count,
            lambda: finals,
            [job],
            lambda: reference.jobs_final | ({job} if finals else set()),
            ended,
            args,
            stack.services,
        )
        run.charge(begin, CpuMarks.take({**pids, **reference.pids}), pids, own_is_client=True)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        run.lag_p99_ms = percentile(lag.stop(), 99)
        records, _lags = await reference.stop()
        row = (await owners.fetch([job]))[0]
        score_polling(run, pollers, records[0]["jobs"].get(job, {}).get("seqs", []), row)
        count_log_lines(stack.services, offsets, run)
        run.notes.append("states published also counts one WebSocket that watched the job")
    except asyncio.CancelledError:
        raise
    except Exception as exc:
        run.failure = f"{type(exc).__name__}: {exc}"
    finally:
        lag.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await reference.close()
        await asyncio.gather(*(client.aclose() for client in clients))
    log_run(run)
    return run


def score_polling(
    run: Run, pollers: list[Poller], reference: list[int], row: dict[str, Any]
) -> None:
    """The delivery figures of the pollers: a state is published if the reference socket, a
    poller or the final row saw its seq."""
    final = int(row["seq"])
    seen = set(reference) | {final}
    for poller in pollers:
        seen.update(poller.seqs)
    run.published = [len(seen)]
    run.unseen = len(set(range(1, final + 1)) - seen)
    for poller in pollers:
        run.shares.append(len(poller.seqs) / len(seen))
        run.finals += poller.final
        run.latencies_ms.extend(poller.lags_ms)
        run.delivered += len(poller.seqs)
        run.payload_bytes += poller.bytes
        run.requests += poller.requests
        run.request_errors += poller.errors
