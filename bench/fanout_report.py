"""The fan-out scenario's report: tables with ratios against the floor, then a summary.

A table per scenario, then each layer against the floor and polling in a line, and whether the
clients kept up: every ratio is of figures of the same run.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from bench.fanout_results import HANDSHAKES, LABELS, Run
from bench.harness import (
    Metric,
    TextRow,
    figure_rows,
    fmt,
    machine,
    markdown_table,
    percentile,
    text_rows,
    times,
)


def published_cell(run: Run) -> str:
    if not run.published:
        return "n/a"
    low, high = min(run.published), max(run.published)
    text = str(low) if low == high else f"{low}..{high}"
    return f"{text} (exact)" if run.part == "floor" else text


HEAD: list[TextRow[Run]] = [
    ("clients open (sockets or pollers)", lambda r: f"{r.opened}/{r.watchers}"),
    ("states published per job", published_cell),
    ("delivered/published per client, min %", lambda r: fmt(100 * min(r.shares, default=math.nan))),
    ("delivered/published per client, mean %",
     lambda r: fmt(100 * sum(r.shares) / len(r.shares) if r.shares else math.nan)),
    ("final state seen by", lambda r: f"{r.finals}/{r.watchers}"),
]  # fmt: skip
FIGURES: list[Metric[Run]] = [
    ("latency ts->receipt p50 ms", lambda r: percentile(r.latencies_ms, 50), 1, True),
    ("latency p90 ms", lambda r: percentile(r.latencies_ms, 90), 1, True),
    ("latency p99 ms", lambda r: percentile(r.latencies_ms, 99), 1, True),
    ("latency max ms", lambda r: max(r.latencies_ms, default=math.nan), 1, True),
    ("updates delivered", lambda r: float(r.delivered), 0, True),
    ("server CPU s, total", lambda r: r.cpu_s, 2, True),
    ("server CPU s per 1,000 updates", lambda r: r.cpu_per_1000, 3, True),
    ("web (floor: forwarder) CPU µs per update", lambda r: r.front_us, 1, True),
    ("payload bytes per update",
     lambda r: r.payload_bytes / r.delivered if r.delivered else math.nan, 0, True),
]  # fmt: skip
TAIL: list[TextRow[Run]] = [
    ("server CPU split s", lambda r: " / ".join(f"{n} {s:.2f}" for n, s in r.cpu.items())),
    ("HTTP requests (body bytes each)",
     lambda r: f"{r.requests} ({r.payload_bytes / r.requests:.0f})" if r.requests else "-"),
    ("seqs up to the final one no client saw", lambda r: str(r.unseen)),
    ("frames out of order or repeated", lambda r: str(r.disorder)),
    ("client CPU s (busiest process, % of a core)",
     lambda r: f"{r.client_cpu_s:.2f} ({100 * r.client_peak:.0f}%)"),
    ("client processes (client CPU ms to read one state on all its sockets)",
     lambda r: f"{r.procs} ({fmt(r.burst_ms)})" if r.part != "polling" else "1 (main)"),
    ("client loop lag p99 ms", lambda r: fmt(r.lag_p99_ms)),
    ("other processes' CPU s (noise, cores on average)",
     lambda r: f"{r.other_cpu_s:.2f} ({fmt(r.noise, 2)})"),
    ("window s (launch to last final)", lambda r: f"{r.window_s:.1f}"),
    ("launch s (POST /api/jobs/, or the floor's go)", lambda r: f"{r.launch_s:.1f}"),
    ("closed early / failed to open / HTTP errors",
     lambda r: f"{len(r.closed_early)} / {len(r.open_errors)} / {r.request_errors}"),
    ("server ERROR lines", lambda r: str(r.errors)),
    ("negotiated WebSocket extension", lambda r: r.extensions or "none"),
]  # fmt: skip


def table(runs: dict[str, Run]) -> str:
    parts = [part for part in LABELS if part in runs]
    columns = [None if runs[p].failure else runs[p] for p in parts]
    floor = runs.get("floor")
    baseline = floor if floor is not None and not floor.failure else None
    rows = text_rows(columns, HEAD) + figure_rows(columns, baseline, FIGURES)
    rows += text_rows(columns, TAIL)
    return markdown_table(["", *(LABELS[p] for p in parts)], rows)


def scenario_title(scenario: str, args: argparse.Namespace) -> str:
    job = f"demo.count steps={args.states} delay={1 / args.rate:g}"
    if scenario == "users":
        tabs = "1 socket" if args.tabs == 1 else f"1 to {args.tabs} sockets (tabs)"
        return (
            f"users: {args.users} users, each with {tabs} and 1 job ({job}) at once; "
            f"ours with the worker on --pool threads --concurrency {max(2, args.users)}"
        )
    return f"{scenario}: one job ({job}) watched by {scenario[2:]} sockets (pollers) of its owner"


def against(by: dict[str, dict[str, Run]], args: argparse.Namespace) -> list[str]:
    """Each layer against the floor and polling, at every M, as ratios of this run's figures."""
    lines: list[str] = []
    layers = [p for p in ("redis", "pubsub") if any(p in runs for runs in by.values())]
    sweep = [s for s in args.scenarios if s in by]

    def versus_floor(layer: str, show: str, cell: Callable[[Run, Run], str]) -> str:
        pairs = [(s, by[s][layer], by[s].get("floor")) for s in sweep if layer in by[s]]
        cells = [f"{s} {cell(r, f)}" for s, r, f in pairs if f and not f.failure and not r.failure]
        return f"{LABELS[layer]}: {show}: {'; '.join(cells) or 'floor not run'}"

    def latency(r: Run, f: Run) -> str:
        at = [times(percentile(r.latencies_ms, q), percentile(f.latencies_ms, q)) for q in (50, 99)]
        return f"p50 {at[0]}, p99 {at[1]}"

    for layer in layers:
        runs = [(s, by[s][layer]) for s in [*sweep, "users"] if s in by and layer in by[s]]
        short = [
            f"{s} (min {fmt(100 * min(r.shares, default=0))}%, final {r.finals}/{r.watchers}"
            + (f", {r.failure}" if r.failure else "") + ")"
            for s, r in runs if not r.complete
        ]  # fmt: skip
        lines.append(
            f"{LABELS[layer]}: every client received every published state and the final one at "
            f"{', '.join(s for s, r in runs if r.complete) or 'no scenario'}"
            + (f"; not at {'; '.join(short)}" if short else "")
        )
    lines += [versus_floor(layer, "latency against the floor", latency) for layer in layers]
    lines += [
        versus_floor(layer, "server CPU per 1,000 updates against the floor",
                     lambda r, f: times(r.cpu_per_1000, f.cpu_per_1000))
        for layer in layers
    ]  # fmt: skip
    top = f"M={max(args.sockets)}"
    for layer in layers:
        ours, polling = by.get(top, {}).get(layer), by.get(top, {}).get("polling")
        if ours is None or polling is None or ours.failure or polling.failure:
            lines.append(f"{LABELS[layer]}: bar lag at {top} against polling: not measured")
            continue
        p = {q: (percentile(polling.latencies_ms, q), percentile(ours.latencies_ms, q))
             for q in (50, 99)}  # fmt: skip
        lines.append(
            f"{LABELS[layer]}: bar lag at {top}, polling against ours: "
            + ", ".join(
                f"p{q} {fmt(a)} vs {fmt(b)} ms = {times(a, b, 0)}" for q, (a, b) in p.items()
            )
        )
    return lines


def bottleneck(runs: list[Run]) -> list[str]:
    """Whether the client kept up, and how much of the latency is its own read queue."""
    ok = [r for r in runs if not r.failure]
    if not ok:
        return ["Client: no run to judge."]
    peak = max(ok, key=lambda r: r.client_peak)
    lag = max(ok, key=lambda r: 0.0 if math.isnan(r.lag_p99_ms) else r.lag_p99_ms)
    lines = [
        f"Client: the busiest client process used at most {100 * peak.client_peak:.0f}% of a "
        f"core ({peak.label} {peak.scenario}); event-loop lag p99 was at most "
        f"{fmt(lag.lag_p99_ms)} ms ({lag.label} {lag.scenario})."
    ]
    flagged = []
    for r in ok:
        p50 = percentile(r.latencies_ms, 50)
        if r.client_peak > 0.85:
            flagged.append(f"{r.label} {r.scenario} ({100 * r.client_peak:.0f}% of a core)")
        elif r.lag_p99_ms > 50 and r.lag_p99_ms > 0.1 * p50:
            flagged.append(f"{r.label} {r.scenario} (loop lag p99 {fmt(r.lag_p99_ms)} ms, "
                           f"latency p50 {fmt(p50)} ms)")  # fmt: skip
    if flagged:
        lines.append(f"It may have held back the results in: {'; '.join(flagged)}.")
    else:
        lines.append(
            "It kept up everywhere (no process above 85% of a core, and no loop lag above "
            "50 ms that mattered next to the latency)."
        )
    queue = [
        f"{r.label} {r.scenario} {fmt(r.burst_ms)} of {fmt(percentile(r.latencies_ms, 50))} ms"
        for r in ok
        if r.burst_ms > 0.3 * percentile(r.latencies_ms, 50)
    ]
    if queue:
        lines.append(
            "But each state reaches a client process's sockets one after the other: where "
            "reading one state on all of them takes it a fair share of the p50 latency, part of "
            "every server's latency is the client's own queue (client CPU ms per state vs p50): "
            + "; ".join(queue) + "."
        )  # fmt: skip
    return lines


def noise(runs: dict[str, Run]) -> str | None:
    busy = {r.label: r.noise for r in runs.values() if not r.failure and not math.isnan(r.noise)}
    if not busy or max(busy.values()) < 0.25:
        return None
    cores = ", ".join(f"{label} {value:.2f}" for label, value in busy.items())
    return (
        f"noise: other processes kept these cores busy on average during the windows: {cores}; "
        "ratios between columns are less reliable where these differ"
    )


def report(runs: list[Run], args: argparse.Namespace, elapsed: float, code: str) -> None:
    by: dict[str, dict[str, Run]] = {}
    for run in runs:
        by.setdefault(run.scenario, {})[run.part] = run
    print()
    print(
        f"Fan-out bench, {machine()}; code {code}; total {elapsed / 60:.1f} min. S={args.states} "
        f"states at {args.rate:g}/s; sockets opened {HANDSHAKES} at a time; drain timeout "
        f"{args.drain_timeout:g} s. Ratios (xN) are against the floor in the same run."
    )
    for scenario in [*args.scenarios, "users"]:
        if scenario not in by:
            continue
        print(f"\n### {scenario_title(scenario, args)}\n")
        print(table(by[scenario]))
        warning = noise(by[scenario])
        if warning:
            print(f"- {warning}")
        for run in by[scenario].values():
            for note in dict.fromkeys(run.notes):
                print(f"- {run.label}: {note}")
            if run.failure:
                print(f"- {run.label}: FAILED: {run.failure}")
            if run.unseen and not run.failure:
                print(f"- {run.label}: {run.unseen} seqs up to a job's final one reached no "
                      "client, so 'states published' may undercount")  # fmt: skip
            if run.closed_early:
                print(f"- {run.label}: sockets closed early: {sorted(set(run.closed_early))[:3]}")
            if run.open_errors:
                print(f"- {run.label}: sockets failed to open: {sorted(set(run.open_errors))[:3]}")
    print(
        "\nHow it counts:\n"
        "- latency = receipt time.time() - job.ts, over every job frame of every client "
        "(polling: the first answer that shows a seq);\n"
        "- states published = S + 2 for the floor (STARTED, S PROGRESS, SUCCESS); for ours "
        "and polling, the distinct seqs of the job that any client or its final row "
        "(GET /api/jobs/<id>/) shows; in users, per job, with one socket per job;\n"
        "- delivered/published per client = distinct seqs it got / published;\n"
        "- server CPU = utime + stime of the process trees (ours: web + worker + redis; floor: "
        "forwarder + publisher + redis) from just before the launch to the last final state; "
        "ratios of CPU use the per-1,000-updates figure;\n"
        "- payload bytes = WebSocket message bytes (polling: response bodies, per newly seen "
        "state, and per request)."
    )
    print("\nAgainst the floor and polling, from this run:")
    for line in against(by, args):
        print(f"- {line}")
    print()
    for line in bottleneck(runs):
        print(line)
