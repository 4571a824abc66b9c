#!/usr/bin/env python3
"""Mesh benchmark: what linking relays costs, and how fast a write crosses the mesh.

    .venv/bin/python bench/mesh.py [--quick] [--keep]

Runs, in one go on 127.0.0.1 (fresh temp data folders, every process stopped by PID at the end):

1. ``put alone``: relay A by itself, the ``put`` scenario of ``bench/run.py`` (50 connections x 4
   puts in flight, new souls, acks/s over the measured window).
2. ``put linked``: the same A with B (``--peer A``) and C (``--peer B``) linked in a line, the same
   scenario against A. Every write A accepts then also goes to B and on to C, which store it too;
   on a 2-core machine the three relays share the cores, which is part of what this measures.
3. ``two hops``: a raw websocket subscriber on C follows one soul; a writer on A puts ``updates``
   values to it, one every ``interval_ms``, with increasing states; the time from each put leaving
   the writer until the subscriber on C has it (A -> B -> C), p50 and p99.
4. ``reset to C``: B and C trust A (``--trust-relay``); ``rounds`` resets of fresh scopes (100
   fields each, written on A and carried to B and C first) are issued on A through its API; the
   time from the API call until C's API shows the reset installed durably (polled every 5 ms),
   p50 and p99.
5. ``catch-up``: B and C are stopped, ``catchup_fields`` more fields are written to A (500 per
   put), then a fresh relay D (``--peer A``) starts with an empty store; the time from D's start
   until its ``/-/api/mesh`` shows A's stream read to the end (polled every 50 ms) gives the
   catch-up rate in fields per second (every field A holds, over that time).

Figures go to stdout and ``bench/results/mesh-<timestamp>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson
from websockets.asyncio.client import connect

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run import RESULTS, Relay, params, relay_specs, sc_put  # noqa: E402  (bench/run.py's relay lifecycle and put scenario)


def spec_with(*extra: str) -> dict:
    base = relay_specs()["ours"]
    return {**base, "cmd": lambda port, data: [*base["cmd"](port, data), *extra]}


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 2)


async def linked(relay: Relay, count: int, timeout: float = 20.0) -> None:
    """Until ``relay`` shows ``count`` dialled links up (its /-/api/mesh, with its operator token)."""
    import urllib.request

    token = (relay.data / "admin-token").read_text().strip()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        request = urllib.request.Request(f"http://127.0.0.1:{relay.port}/-/api/mesh", headers={"Authorization": f"Bearer {token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            report = json.loads(response.read())
        if sum(1 for link in report["dialled"] if link["state"] == "up") >= count:
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"relay on {relay.port}: {count} link(s) not up within {timeout} s")


async def two_hops(writer_url: str, watcher_url: str, updates: int, interval_ms: int) -> dict:
    soul = f"bench/mesh/{time.time_ns()}"
    sent: dict[str, float] = {}
    seen: dict[str, float] = {}
    async with connect(watcher_url, max_size=None, compression=None) as watcher, connect(writer_url, max_size=None, compression=None) as writer:
        await watcher.send(orjson.dumps({"#": "sub" + soul, "get": {"#": soul}}).decode())
        await asyncio.sleep(1.0)  # the subscription is in place on C (and, through the get, on B and A)

        async def watch() -> None:
            async for frame in watcher:
                data = orjson.loads(frame)
                for message in data if isinstance(data, list) else [data]:
                    node = (message.get("put") or {}).get(soul) if isinstance(message, dict) else None
                    value = node.get("v") if isinstance(node, dict) else None
                    if isinstance(value, str) and value not in seen:
                        seen[value] = time.perf_counter()

        async def drain_writer() -> None:
            async for _ in writer:
                pass

        watching, draining = asyncio.create_task(watch()), asyncio.create_task(drain_writer())
        base = time.time() * 1000
        for i in range(updates):
            value = f"u{i}"
            put = {"#": f"w{i}-{soul}", "put": {soul: {"_": {"#": soul, ">": {"v": base + i}}, "v": value}}}
            sent[value] = time.perf_counter()
            await writer.send(orjson.dumps(put).decode())
            await asyncio.sleep(interval_ms / 1000)
        deadline = time.monotonic() + 5
        while len(seen) < updates and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        watching.cancel()
        draining.cancel()
    latencies = [(seen[v] - sent[v]) * 1000 for v in sent if v in seen]
    return {
        "updates": updates, "interval_ms": interval_ms, "delivered": len(latencies),
        "p50_ms": percentile(latencies, 0.50), "p99_ms": percentile(latencies, 0.99), "max_ms": percentile(latencies, 1.0),
    }


def api(relay: Relay, method: str, path: str, body: dict | None = None) -> dict:
    import urllib.request

    token = (relay.data / "admin-token").read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{relay.port}{path}", method=method, data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


async def reset_to_c(a: Relay, c: Relay, rounds: int) -> dict:
    import urllib.error

    times = []
    async with connect(a.url, max_size=None, compression=None) as writer:
        for n in range(rounds):
            scope = f"bench-reset-{time.time_ns()}"
            graph = {f"{scope}/s{i}": {"_": {"#": f"{scope}/s{i}", ">": {"v": time.time() * 1000}}, "v": i} for i in range(100)}
            await writer.send(orjson.dumps({"#": f"fill{n}-{scope}", "put": graph}).decode())
            await asyncio.sleep(0.5)  # carried to B and C
            started = time.perf_counter()
            reset_id = api(a, "POST", "/-/api/resets", {"scope": scope})["record"]["reset_id"]
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                try:
                    api(c, "GET", f"/-/api/resets/{reset_id}")
                    times.append((time.perf_counter() - started) * 1000)
                    break
                except urllib.error.HTTPError:
                    await asyncio.sleep(0.005)
    return {"rounds": rounds, "installed_on_c": len(times), "p50_ms": percentile(times, 0.5), "p99_ms": percentile(times, 0.99),
            "max_ms": percentile(times, 1.0)}


async def counted(relay: Relay, at_least: int, timeout: float = 60.0) -> int:
    """The relay's stored field count once it reaches ``at_least`` (the console counts every few seconds)."""
    deadline = time.monotonic() + timeout
    fields = 0
    while time.monotonic() < deadline:
        fields = api(relay, "GET", "/-/api/stats")["store"]["fields"]
        if fields >= at_least:
            break
        await asyncio.sleep(0.5)
    return fields


async def catch_up(a: Relay, work: Path, fields: int) -> dict:
    async with connect(a.url, max_size=None, compression=None) as writer:
        tag = f"bench-catchup-{time.time_ns()}"
        state = time.time() * 1000
        for start in range(0, fields, 500):
            soul = f"{tag}/{start // 500}"
            graph = {soul: {"_": {"#": soul, ">": {f"k{i}": state for i in range(500)}}, **{f"k{i}": f"v{start + i}" for i in range(500)}}}
            await writer.send(orjson.dumps({"#": f"c{start}-{tag}", "put": graph}).decode())
            await writer.recv()  # its ack (or the greeting first: the count is what matters, not which)
    total = await counted(a, fields)
    d = Relay("d", spec_with("--peer", a.url), work / "d")
    started = time.perf_counter()
    await d.start()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            [link] = api(d, "GET", "/-/api/mesh")["dialled"]
            if link["stream"] and link["stream"]["caught_up"]:
                break
            await asyncio.sleep(0.05)
        seconds = time.perf_counter() - started
        held = await counted(d, total)
    finally:
        d.stop()
    return {"fields_on_a": total, "fields_on_d": held, "seconds": round(seconds, 2), "fields_per_s": round(total / seconds)}


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="shorter put windows (4 s), 100 updates")
    parser.add_argument("--keep", action="store_true", help="keep the temp folders (logs, data)")
    args = parser.parse_args()
    p = params(args.quick)
    updates = 100 if args.quick else 300
    work = Path(tempfile.mkdtemp(prefix="gunrelay-mesh-bench-"))
    out: dict = {"meta": {"quick": args.quick, "started": time.time()}}
    a = Relay("a", spec_with(), work / "a")
    relays = [a]
    try:
        await a.start()
        (work / "load-alone").mkdir()
        out["put_alone"] = await sc_put(a, p["put"], work / "load-alone", 2, "alone")
        pub_a = api(a, "GET", "/-/identity")["pub"]
        b = Relay("b", spec_with("--peer", a.url, "--trust-relay", pub_a), work / "b")
        relays.append(b)
        await b.start()
        c = Relay("c", spec_with("--peer", b.url, "--trust-relay", pub_a), work / "c")
        relays.append(c)
        await c.start()
        await linked(b, 1)
        await linked(c, 1)
        (work / "load-linked").mkdir()
        out["put_linked"] = await sc_put(a, p["put"], work / "load-linked", 2, "linked")
        out["two_hops"] = await two_hops(a.url, c.url, updates, 20)
        out["reset_to_c"] = await reset_to_c(a, c, 10 if args.quick else 30)
        c.stop()
        b.stop()
        out["catch_up"] = await catch_up(a, work, 20_000 if args.quick else 100_000)
    finally:
        for relay in reversed(relays):
            relay.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    alone, with_mesh = out["put_alone"]["acks_per_s"], out["put_linked"]["acks_per_s"]
    out["put_linked_over_alone"] = round(with_mesh / alone, 3) if alone else None
    RESULTS.mkdir(exist_ok=True)
    path = RESULTS / f"mesh-{time.strftime('%Y%m%d-%H%M%S')}.json"
    path.write_text(json.dumps(out, indent=2))
    hops = out["two_hops"]
    print(f"put acks/s on A alone:            {alone}")
    print(f"put acks/s on A with B, C linked: {with_mesh}  (ratio {out['put_linked_over_alone']})")
    print(f"write on A -> subscriber on C:    p50 {hops['p50_ms']} ms, p99 {hops['p99_ms']} ms "
          f"({hops['delivered']}/{hops['updates']} delivered)")
    resets = out["reset_to_c"]
    print(f"reset on A -> installed on C:     p50 {resets['p50_ms']} ms, p99 {resets['p99_ms']} ms "
          f"({resets['installed_on_c']}/{resets['rounds']})")
    caught = out["catch_up"]
    print(f"catch-up of a fresh relay from A:  {caught['fields_on_a']} fields in {caught['seconds']} s = {caught['fields_per_s']} fields/s "
          f"({caught['fields_on_d']} on D)")
    print(f"figures in {path}")


if __name__ == "__main__":
    asyncio.run(main())
