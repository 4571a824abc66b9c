#!/usr/bin/env python3
"""Fleet benchmark (issue 13): one process vs two on PostgreSQL, SQLite, and the Node relay, side by side.

    .venv/bin/python bench/fleet.py [--quick] [--procs N] [--keep]

Theory of operation. One run on 127.0.0.1, each relay started alone (fresh temp folders), measured,
then stopped by PID before the next one starts:

1. ``node``      the reference GunJS relay with radisk, its durable mode (``bench/run.py``'s spec).
2. ``sqlite``    ``gunrelay serve`` on SQLite (synchronous FULL, the default), one process.
3. ``pg1``       ``gunrelay serve --storage postgres``, one process.
4. ``pg2``       the same with ``--workers 2``: two processes on one port (SO_REUSEPORT).

Each gets the same load, ``bench/run.py``'s scenarios driven by Node ``bench/load.js`` processes
(raw GUN wire frames): ``put`` (closed loop, 50 connections x 4 puts in flight: acks/s, ack
latency), ``get`` (10,000 preloaded souls, then closed-loop whole-node gets: gets/s, latency),
``fanout`` (100 raw-websocket subscribers of one soul, one writer, 200 updates every 20 ms: the
time until all 100 have an update) and ``fanout-fast`` (the same at 2 ms: 500 updates/s, so
50,000 deliveries/s offered; delivered per second = deliveries / (sending time + the last
update's lag)). PostgreSQL is one throwaway server (``tests/postgres_server.py``, fsync on) with
a fresh database per relay; its CPU is measured with the relay's and the loaders' over each
measured window (``FleetCpuWindow``), since on this 2-core machine they all compete.

5. ``cross``: a fleet of two ``gunrelay serve`` processes (A and B, two ports, one database, one
   data folder). A raw websocket subscriber on B follows one soul; a writer on A puts one new
   field of it per write, paced on a fixed schedule (``interval_ms``), so no write supersedes
   another; the time from a put leaving the writer until the subscriber on B has its field:
   p50/p99/max, at a moderate rate (50/s), a high one (1,000/s) and a burst (4,000/s). The same
   through A alone (writer and subscriber on A) is the in-process baseline. The writer and the
   subscriber share one asyncio loop in this process: at high rates its own work is part of the
   latency.

A table with the ratios (pg1 / node put-ack, pg2 / pg1, sqlite / pg1) goes to stdout and every
figure to ``bench/results/fleet-<timestamp>.json``. Every wait is bounded; every process started
here is stopped by PID in ``finally`` blocks (PostgreSQL included) and the temp folders removed.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import psycopg
from websockets.asyncio.client import connect

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "bench"), str(REPO / "tests")]

import run  # noqa: E402  (bench/run.py: relay lifecycle, load processes, scenarios, CPU windows)
from postgres_server import PostgresServer  # noqa: E402

RELAYS = ["node", "sqlite", "pg1", "pg2"]
READY_S = 60.0


# ----------------------------------------------------------------------------- CPU, with PostgreSQL


class FleetCpuWindow(run.CpuWindow):
    """``run.CpuWindow`` plus the PostgreSQL server's process tree (postmaster and its backends):
    ``postgres_pct``, taken out of ``other_processes_pct``. ``run_closed_loop`` and ``sc_fanout``
    build their window through ``run.CpuWindow``, which ``measuring_postgres`` points here."""

    postgres_pid: int | None = None

    def _snap(self) -> dict:
        snap = super()._snap()
        pid = FleetCpuWindow.postgres_pid
        snap["postgres"] = 0 if pid is None else sum(run.cpu_ticks(p) or 0 for p in [pid, *run.descendants(pid)])
        self.last = snap
        return snap

    def finish(self) -> dict:
        result = super().finish()
        if not result:
            return result
        dt = self.last["t"] - self.a["t"]
        postgres = round(100.0 * (self.last["postgres"] - self.a["postgres"]) / run.CLK_TCK / dt, 1)
        result["postgres_pct"] = postgres
        if result.get("other_processes_pct") is not None:
            result["other_processes_pct"] = round(result["other_processes_pct"] - postgres, 1)
        return result


def measuring_postgres(pid: int | None) -> None:
    FleetCpuWindow.postgres_pid = pid
    run.CpuWindow = FleetCpuWindow  # type: ignore[misc]  (bench/run.py's scenarios now count PostgreSQL too)


# ----------------------------------------------------------------------------- relays


def ours(*extra: str) -> dict:
    base = run.relay_specs()["ours"]
    return {**base, "cmd": lambda port, data: [*base["cmd"](port, data), *extra]}


def postgres_spec(url: str, *extra: str) -> dict:
    return ours("--storage", "postgres", "--postgres-url", url, *extra)


def api(relay: run.Relay, path: str) -> dict:
    token = (relay.data / "admin-token").read_text().strip()
    request = urllib.request.Request(f"http://127.0.0.1:{relay.port}{path}", headers={"Authorization": f"Bearer {token}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def fleet_processes(relay: run.Relay) -> list[dict]:
    return ((api(relay, "/-/api/stats").get("fleet") or {}).get("processes")) or []


async def fleet_of(relay: run.Relay, count: int, timeout: float = READY_S) -> list[dict]:
    """Until ``relay``'s ``/-/api/stats`` lists ``count`` live processes of its fleet (bounded)."""
    deadline = time.monotonic() + timeout
    seen: list[dict] = []
    while time.monotonic() < deadline:
        try:
            seen = fleet_processes(relay)
        except OSError:
            seen = []
        if len(seen) >= count:
            return seen
        await asyncio.sleep(0.2)
    raise TimeoutError(f"{relay.name}: {len(seen)} of {count} fleet processes up within {timeout} s")


# ----------------------------------------------------------------------------- one relay under load


def fast_fanout(p: dict, quick: bool) -> dict:
    return {**p, "updates": 250 if quick else 500, "interval_ms": 2}


def delivered_per_s(result: dict) -> float | None:
    """Deliveries made / (sending time + the largest lag of an update every subscriber got)."""
    expected, missing = result.get("deliveries_expected"), result.get("deliveries_missing")
    lag = (result.get("all_subs_latency") or {}).get("max_ms") or 0.0
    if expected is None or missing is None:
        return None
    span = result["updates"] * result["interval_ms"] / 1000 + lag / 1000
    return round((expected - missing) / span, 1) if span > 0 else None


def wal_counters(server: PostgresServer) -> dict[str, int]:
    """PostgreSQL's server-wide WAL counters (``pg_stat_wal``): ``wal_sync`` counts the WAL fsyncs,
    one per write commit (plus the WAL writer's own), so acks per sync = puts per commit."""
    with psycopg.connect(server.url("postgres"), autocommit=True, connect_timeout=5) as conn:
        row = conn.execute("SELECT wal_records, wal_write, wal_sync FROM pg_stat_wal").fetchone()
    assert row is not None
    return {"wal_records": int(row[0]), "wal_write": int(row[1]), "wal_sync": int(row[2])}


def wal_during(before: dict[str, int], after: dict[str, int], seconds: float, acks: int | None) -> dict[str, Any]:
    syncs = after["wal_sync"] - before["wal_sync"]
    return {
        "seconds": round(seconds, 2), **{k: after[k] - before[k] for k in before},
        "syncs_per_s": round(syncs / seconds, 1) if seconds > 0 else None,
        "acks_per_sync": round(acks / syncs, 2) if acks and syncs > 0 else None,
    }


async def measure(name: str, spec: dict, p: dict, nprocs: int, keep: bool, quick: bool, processes: int,
                  server: PostgresServer | None = None) -> dict:
    workdir = Path(tempfile.mkdtemp(prefix=f"gunrelay-fleet-bench-{name}-"))
    relay = run.Relay(name, spec, workdir)
    out: dict[str, Any] = {"name": name, "cmd": spec["cmd"](relay.port, relay.data), "scenarios": {}}
    tag = f"{name}{time.time_ns()}"
    scenarios = {
        "put": (lambda: run.sc_put(relay, p["put"], workdir, nprocs, tag), p["put"]["warmup_s"] + p["put"]["duration_s"] + 150),
        "get": (lambda: run.sc_get(relay, p["get"], workdir, nprocs, tag), p["get"]["preload_max_s"] + p["get"]["duration_s"] + 200),
        "fanout": (lambda: run.sc_fanout(relay, p["fanout"], workdir, tag + "a"), 240),
        "fanout_fast": (lambda: run.sc_fanout(relay, fast_fanout(p["fanout"], quick), workdir, tag + "b"), 240),
    }
    try:
        try:
            out["startup_s"] = round(await relay.start(timeout=READY_S), 2)
            if spec["health"]:
                out["fleet_at_start"] = len(await fleet_of(relay, processes)) if processes > 1 else 1
        except Exception as e:
            out["start_error"] = f"{type(e).__name__}: {e}"[-1500:]
            print(f"[{name}] failed to start: {out['start_error'][-400:]}", flush=True)
            return out
        print(f"[{name}] started pid {relay.proc.pid} port {relay.port} in {out['startup_s']} s", flush=True)
        for scenario, (make, budget) in scenarios.items():
            if not relay.alive():
                out["scenarios"][scenario] = {"ok": False, "error": f"relay not running (exit {relay.proc.returncode})"}
                continue
            print(f"[{name}] {scenario} ... (loadavg {run.loadavg()})", flush=True)
            began, load = time.monotonic(), run.loadavg()
            wal_before = wal_counters(server) if server is not None and scenario == "put" else None
            try:
                result = await asyncio.wait_for(make(), budget)
                result["ok"] = True
                if scenario.startswith("fanout"):
                    result["delivered_per_s"] = delivered_per_s(result)
            except Exception as e:
                result = {"ok": False, "error": f"{type(e).__name__}: {e}"[:3000], "trace": traceback.format_exc()[-3000:]}
                print(f"[{name}] {scenario} FAILED: {result['error'][:300]}", flush=True)
            result["elapsed_s"], result["loadavg_before"] = round(time.monotonic() - began, 2), load
            out["scenarios"][scenario] = result
            await asyncio.sleep(1.5)  # (and PostgreSQL's backends report their WAL counters, at most once a second)
            if wal_before is not None and result["ok"] and server is not None:
                # over the whole put scenario (warm-up, window, drain), with all its acks
                result["wal"] = wal_during(wal_before, wal_counters(server), time.monotonic() - began, result.get("acks_total"))
        if processes > 1 and relay.alive():
            # how the kernel spread the connections over the workers (messages each process took in)
            out["fleet_after"] = [{k: proc.get(k) for k in ("pid", "port", "messages_in", "messages_out")} for proc in fleet_processes(relay)]
    finally:
        out["stop"] = relay.stop()
        out["relay_log_tail"] = relay.log_tail(2000)
        if not keep:
            shutil.rmtree(workdir, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- cross-process fan-out


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def write_to_watch(writer_url: str, watcher_url: str, writes: int, interval_ms: float, drain_s: float = 10.0) -> dict:
    """A subscriber on ``watcher_url`` follows one soul; ``writes`` puts of a new field each go to
    ``writer_url``, the i-th at start + i * interval_ms; per field, put sent -> field received."""
    soul = f"bench/fleet/{time.time_ns()}"
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    acked: dict[str, float] = {}
    async with connect(watcher_url, max_size=None, compression=None) as watcher, connect(writer_url, max_size=None, compression=None) as writer:
        subscribed = asyncio.get_running_loop().create_future()

        async def watch() -> None:
            async for frame in watcher:
                data = orjson.loads(frame)
                for message in data if isinstance(data, list) else [data]:
                    if not isinstance(message, dict):
                        continue
                    if message.get("@") == "sub-" + soul and not subscribed.done():
                        subscribed.set_result(True)
                    node = (message.get("put") or {}).get(soul)
                    if isinstance(node, dict):
                        now = time.perf_counter()
                        for key in node:
                            if key in sent and key not in seen:
                                seen[key] = now

        async def read_acks() -> None:
            async for frame in writer:
                data = orjson.loads(frame)
                for message in data if isinstance(data, list) else [data]:
                    key = message.get("@", "").partition("/")[0] if isinstance(message, dict) else ""
                    if key in sent and key not in acked and "err" not in message:
                        acked[key] = time.perf_counter()

        watching, reading = asyncio.create_task(watch()), asyncio.create_task(read_acks())
        try:
            first = {"#": f"init/{soul}", "put": {soul: {"_": {"#": soul, ">": {"init": time.time() * 1000}}, "init": True}}}
            await writer.send(orjson.dumps(first).decode())  # the soul exists before the subscriber asks for it
            await asyncio.sleep(0.2)
            await watcher.send(orjson.dumps({"#": "sub-" + soul, "get": {"#": soul}}).decode())
            await asyncio.wait_for(subscribed, 10)
            await asyncio.sleep(0.5)
            began = time.perf_counter()
            for i in range(writes):
                delay = began + i * interval_ms / 1000 - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
                key = f"k{i}"
                # the state is the wall clock at sending: one ahead of it would wait for its time in the relay
                put = {"#": f"{key}/{soul}", "put": {soul: {"_": {"#": soul, ">": {key: time.time() * 1000}}, key: i}}}
                sent[key] = time.perf_counter()
                await writer.send(orjson.dumps(put).decode())
            sending_s = time.perf_counter() - began
            deadline = time.monotonic() + drain_s
            while (len(seen) < writes or len(acked) < writes) and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        finally:
            watching.cancel()
            reading.cancel()
    latencies = [(seen[k] - sent[k]) * 1000 for k in sent if k in seen]
    acks = [(acked[k] - sent[k]) * 1000 for k in sent if k in acked]
    return {
        "writes": writes, "interval_ms": interval_ms, "offered_per_s": round(1000 / interval_ms, 1),
        "sent_per_s": round(writes / sending_s, 1) if sending_s > 0 else None,
        "delivered": len(latencies), "acked": len(acks),
        "p50_ms": percentile(latencies, 0.50), "p90_ms": percentile(latencies, 0.90),
        "p99_ms": percentile(latencies, 0.99), "max_ms": percentile(latencies, 1.0),
        "ack_p50_ms": percentile(acks, 0.50), "ack_p99_ms": percentile(acks, 0.99),
        # writes / (first put sent -> last field received): what got through, when more was offered
        "through_per_s": round(len(latencies) / (max(seen.values()) - began), 1) if seen else None,
    }


async def cross_process(url: str, quick: bool, keep: bool) -> dict:
    work = Path(tempfile.mkdtemp(prefix="gunrelay-fleet-bench-cross-"))
    a = run.Relay("fleet-a", postgres_spec(url), work / "a")
    b = run.Relay("fleet-b", postgres_spec(url), work / "b")
    b.data = a.data  # one data folder: A creates the identity and token, B finds them
    b.workdir.mkdir(parents=True)  # (Relay.start makes only its data folder, here A's)
    out: dict[str, Any] = {}
    rates = [("moderate", 20.0, 150 if quick else 500), ("high", 1.0, 1000 if quick else 3000), ("burst", 0.25, 1000 if quick else 4000)]
    try:
        await a.start(timeout=READY_S)
        await b.start(timeout=READY_S)
        out["fleet"] = len(await fleet_of(a, 2))
        print(f"[cross] A pid {a.proc.pid} port {a.port}, B pid {b.proc.pid} port {b.port}", flush=True)
        for label, interval, writes in rates:
            print(f"[cross] {label}: {writes} writes every {interval} ms, A -> B, and A -> A", flush=True)
            out[f"a_to_b_{label}"] = await asyncio.wait_for(write_to_watch(a.url, b.url, writes, interval), writes * interval / 1000 + 60)
            out[f"a_to_a_{label}"] = await asyncio.wait_for(write_to_watch(a.url, a.url, writes, interval), writes * interval / 1000 + 60)
    finally:
        out["stop"] = [b.stop(), a.stop()]
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    return out


# ----------------------------------------------------------------------------- report


def view(doc: dict, name: str) -> dict:
    return {k: v for k, v in (doc["relays"].get(name, {}).get("scenarios") or {}).items() if v.get("ok")}


METRICS = [
    ("put: acks/s", ("put", "acks_per_s")),
    ("put: ack p50 ms", ("put", "latency", "p50_ms")),
    ("put: ack p99 ms", ("put", "latency", "p99_ms")),
    ("put: err acks + timeouts", None),
    ("get: gets/s", ("get", "gets_per_s")),
    ("get: p50 ms", ("get", "latency", "p50_ms")),
    ("get: p99 ms", ("get", "latency", "p99_ms")),
    ("get: misses + partial", None),
    ("fanout 20ms: all-100 p50 ms", ("fanout", "all_subs_latency", "p50_ms")),
    ("fanout 20ms: all-100 p99 ms", ("fanout", "all_subs_latency", "p99_ms")),
    ("fanout 20ms: missing", ("fanout", "deliveries_missing")),
    ("fanout 2ms: deliveries/s", ("fanout_fast", "delivered_per_s")),
    ("fanout 2ms: all-100 p50 ms", ("fanout_fast", "all_subs_latency", "p50_ms")),
    ("fanout 2ms: all-100 p99 ms", ("fanout_fast", "all_subs_latency", "p99_ms")),
    ("fanout 2ms: missing", ("fanout_fast", "deliveries_missing")),
    ("  ..superseded (coalesced)", ("fanout_fast", "missing_superseded")),
    ("  ..lost", ("fanout_fast", "missing_lost")),
]


def value(v: dict, label: str, path: tuple[str, ...] | None) -> Any:
    if path is not None:
        return run.g(v, *path)
    if label.startswith("put"):
        return None if "put" not in v else (v["put"].get("err_acks") or 0) + (v["put"].get("timeouts") or 0)
    return None if "get" not in v else (v["get"].get("misses") or 0) + (v["get"].get("partial") or 0)


def ratios(doc: dict) -> dict:
    views = {n: view(doc, n) for n in RELAYS}

    def r(a: str, b: str, *path: str) -> float | None:
        return run.ratio(run.g(views[a], *path), run.g(views[b], *path))

    out = {
        "pg1_over_node_put_acks": r("pg1", "node", "put", "acks_per_s"),
        "pg1_over_node_gets": r("pg1", "node", "get", "gets_per_s"),
        "pg2_over_pg1_put_acks": r("pg2", "pg1", "put", "acks_per_s"),
        "pg2_over_pg1_gets": r("pg2", "pg1", "get", "gets_per_s"),
        "pg2_over_pg1_fanout_fast_deliveries": r("pg2", "pg1", "fanout_fast", "delivered_per_s"),
        "sqlite_over_pg1_put_acks": r("sqlite", "pg1", "put", "acks_per_s"),
        "sqlite_over_pg1_gets": r("sqlite", "pg1", "get", "gets_per_s"),
        "sqlite_over_pg1_fanout_fast_deliveries": r("sqlite", "pg1", "fanout_fast", "delivered_per_s"),
    }
    cross = doc.get("cross") or {}
    put_ratio = out["pg1_over_node_put_acks"]
    out["targets"] = {"pg1_put_acks_at_least_5x_node": {"value": put_ratio, "met": None if put_ratio is None else put_ratio >= 5}}
    for label in ("moderate", "high", "burst"):
        p99 = (cross.get(f"a_to_b_{label}") or {}).get("p99_ms")
        out["targets"][f"cross_process_p99_under_50ms_{label}"] = {"value": p99, "met": None if p99 is None else p99 < 50}
    return out


def print_report(doc: dict) -> None:
    fmt = run.fmt
    print()
    print("=" * 100)
    print(f"fleet benchmark {doc['meta']['timestamp']} {'(quick)' if doc['meta']['quick'] else ''} cpus={doc['meta']['cpus']} "
          f"load processes={doc['meta']['load_procs']}")
    print("=" * 100)
    for n in RELAYS:
        relay = doc["relays"].get(n, {})
        if relay.get("start_error"):
            print(f"{n}: FAILED TO START: {relay['start_error'][-300:]}")
        for sc, res in (relay.get("scenarios") or {}).items():
            if not res.get("ok"):
                print(f"{n}: {sc} FAILED: {res.get('error', '')[:300]}")
    views = {n: view(doc, n) for n in RELAYS}
    print(f"{'metric':30}" + "".join(f"{n:>12}" for n in RELAYS))
    for label, path in METRICS:
        print(f"{label:30}" + "".join(f"{fmt(value(views[n], label, path)):>12}" for n in RELAYS))
    print()
    print("ratios:")
    for key, v in doc["ratios"].items():
        if key != "targets":
            print(f"  {key:42} {fmt(v)}")
    print()
    print("CPU over each measured window, % of one core (machine = 200):")
    for n in RELAYS:
        for sc in ("put", "get"):  # (a fan-out window runs until every delivery or the drain limit: not a rate)
            c = run.g(views[n], sc, "cpu")
            if c:
                loaders = round(sum((c.get("loaders_pct") or {}).values()), 1)
                print(f"  {n:7}{sc:12} relay {fmt(c.get('relay_pct')):>6}  loaders {fmt(loaders):>6}  postgres {fmt(c.get('postgres_pct')):>6}  "
                      f"irq {fmt(c.get('irq_softirq_pct')):>5}  other {fmt(c.get('other_processes_pct')):>5}  "
                      f"busy {fmt(c.get('machine_busy_pct_of_one_core'))}")
            note = run.g(views[n], sc, "bottleneck")
            if note:
                print(f"         NOTE: {note}")
    for n in ("pg1", "pg2"):
        wal = run.g(views[n], "put", "wal")
        if wal:
            print(f"  {n:7}put: PostgreSQL WAL syncs {wal['wal_sync']} in {wal['seconds']} s = {wal['syncs_per_s']}/s, "
                  f"{wal['acks_per_sync']} acks per sync (puts per commit)")
    spread = doc["relays"].get("pg2", {}).get("fleet_after")
    if spread:
        print(f"  pg2 workers after the run: {spread}")
    cross = doc.get("cross") or {}
    if cross.get("error"):
        print(f"\ncross-process FAILED: {cross['error'][:300]}")
    print()
    print("cross-process fan-out (write through A, subscriber on B; A -> A is the same-process baseline):")
    for key in (f"a_to_{side}_{label}" for label in ("moderate", "high", "burst") for side in "ba"):
        c = cross.get(key)
        if c:
            print(f"  {key:16} {c['writes']} writes @ {c['offered_per_s']}/s (sent {c['sent_per_s']}/s): delivered {c['delivered']}, "
                  f"p50 {c['p50_ms']} p99 {c['p99_ms']} max {c['max_ms']} ms; writer ack p50 {c['ack_p50_ms']} p99 {c['ack_p99_ms']} ms; "
                  f"through {c['through_per_s']}/s")
    print()
    print("targets:")
    for key, t in doc["ratios"]["targets"].items():
        print(f"  {key:42} {fmt(t['value']):>10}  {dict([(True, 'MET'), (False, 'NOT MET'), (None, 'n/a')])[t['met']]}")


# ----------------------------------------------------------------------------- main


async def amain(args: argparse.Namespace) -> dict:
    p = run.params(args.quick)
    doc: dict[str, Any] = {
        "meta": {
            "timestamp": time.strftime("%Y%m%d-%H%M%S"), "quick": args.quick, "params": p, "load_procs": args.procs,
            "fanout_fast": fast_fanout(p["fanout"], args.quick), "cpus": os.cpu_count(), "loadavg_start": run.loadavg(),
            "python": sys.version.split()[0], "platform": platform.platform(), "pythonpath": os.environ.get("PYTHONPATH"),
            "commit": subprocess.run(["git", "-C", str(REPO), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10).stdout.strip(),
            "node": subprocess.run(["node", "--version"], capture_output=True, text=True, timeout=10).stdout.strip(),
        },
        "relays": {},
    }
    server = PostgresServer()
    try:
        measuring_postgres(None)
        doc["relays"]["node"] = await measure("node", run.relay_specs()["node"], p, args.procs, args.keep, args.quick, 1)
        doc["relays"]["sqlite"] = await measure("sqlite", ours(), p, args.procs, args.keep, args.quick, 1)
        server.start()
        assert server.process is not None
        doc["meta"]["postgres_pid"] = server.process.pid
        measuring_postgres(server.process.pid)
        doc["relays"]["pg1"] = await measure("pg1", postgres_spec(server.new_database()), p, args.procs, args.keep, args.quick, 1,
                                            server)
        doc["relays"]["pg2"] = await measure("pg2", postgres_spec(server.new_database(), "--workers", "2"), p, args.procs, args.keep,
                                             args.quick, 2, server)
        try:
            doc["cross"] = await cross_process(server.new_database(), args.quick, args.keep)
        except Exception as e:
            doc["cross"] = {"error": f"{type(e).__name__}: {e}"[:3000], "trace": traceback.format_exc()[-3000:]}
    finally:
        server.stop()
    doc["meta"]["loadavg_end"] = run.loadavg()
    doc["ratios"] = ratios(doc)
    return doc


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 s windows, fewer updates and writes")
    parser.add_argument("--procs", type=int, default=2, help="load processes for put and get (default 2)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs, data)")
    args = parser.parse_args()
    run.raise_open_files(8192)
    # the relays run this checkout's gunrelay, whatever the venv's install points at (they inherit it)
    os.environ["PYTHONPATH"] = os.pathsep.join([str(REPO / "src"), *filter(None, [os.environ.get("PYTHONPATH")])])
    doc = asyncio.run(amain(args))
    run.RESULTS.mkdir(exist_ok=True)
    path = run.RESULTS / f"fleet-{doc['meta']['timestamp']}.json"
    path.write_text(json.dumps(doc, indent=2, default=str))
    print_report(doc)
    print(f"\nJSON: {path}")


if __name__ == "__main__":
    main()
