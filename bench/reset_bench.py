"""Benchmark of the reset control plane (not a test).

    .venv/bin/python bench/reset_bench.py [--fields 1000000] [--rounds 2] [--quick]

1. Fence overhead on put-ack throughput: two relays, one without any fence rule and one with a
   '*' reset, a prefix reset and a TTL rule in force (none of them refuses the load's fresh
   writes, but every field is checked against all three). The same put load as bench/run.py
   (50 connections x 4 in flight) runs against each, alternating, ``--rounds`` times.
2. For stores of 100,000 and ``--fields`` fields: the time from the operator's POST until the
   fence is live and durable (the API answers only then), and the purge rate the relay reports.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import sqlite3
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, Relay, params, relay_specs, sc_put  # noqa: E402


def api(relay: Relay, method: str, path: str, body: dict | None = None) -> tuple[dict, float]:
    token = (relay.data / "admin-token").read_text().strip()
    request = urllib.request.Request(
        f"http://127.0.0.1:{relay.port}{path}", method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    t0 = time.perf_counter()
    with urllib.request.urlopen(request, timeout=600) as response:
        data = json.loads(response.read())
    return data, time.perf_counter() - t0


def preload(data_dir: Path, fields: int) -> float:
    """Write ``fields`` old fields straight into a fresh store (the relay creates the schema)."""
    sys.path.insert(0, str(ROOT / "src"))
    from gunrelay.storage.sqlite import SCHEMA

    data_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(data_dir / "gunrelay.sqlite3")
    db.executescript(SCHEMA)
    old = time.time() * 1000 - 3_600_000
    t0 = time.perf_counter()
    with db:
        db.executemany(
            "INSERT INTO fields (soul, key, value, state) VALUES (?, ?, ?, ?)",
            ((f"chat/{i // 20}", f"m{i % 20}", json.dumps(f"message number {i}"), old + i * 1e-3) for i in range(fields)),
        )
    db.close()
    return time.perf_counter() - t0


async def fence_overhead(workdir: Path, rounds: int, quick: bool) -> dict:
    spec = relay_specs()["ours"]
    plain, fenced = Relay("plain", spec, workdir / "plain"), Relay("fenced", spec, workdir / "fenced")
    for r in (plain, fenced):
        r.workdir.mkdir(parents=True)
        await r.start()
    api(fenced, "POST", "/-/api/resets", {"scope": "*", "reason": "bench"})
    api(fenced, "POST", "/-/api/resets", {"scope": "room42", "reason": "bench"})
    api(fenced, "POST", "/-/api/ttl", {"prefix": "ephemeral", "ttl": "1d"})
    p = params(quick)["put"]
    runs: dict[str, list[float]] = {"plain": [], "fenced": []}
    try:
        for i in range(rounds):
            for relay in (plain, fenced):
                out = await sc_put(relay, p, relay.workdir, 2, f"r{i}")
                runs[relay.name].append(out["acks_per_s"])
                print(f"  round {i + 1} {relay.name:7s} {out['acks_per_s']:9.1f} acks/s  err {out['err_acks']}", flush=True)
    finally:
        plain.stop()
        fenced.stop()
    mean = {k: sum(v) / len(v) for k, v in runs.items()}
    return {"runs": runs, "mean_acks_per_s": mean, "overhead_pct": round(100 * (1 - mean["fenced"] / mean["plain"]), 2)}


async def fence_and_purge(workdir: Path, fields: int) -> dict:
    relay = Relay(f"store{fields}", relay_specs()["ours"], workdir / f"store{fields}")
    relay.workdir.mkdir(parents=True)
    load_s = preload(relay.data, fields)
    await relay.start(timeout=120)
    try:
        result, live_s = api(relay, "POST", "/-/api/resets", {"scope": "*", "reason": "bench"})
        reset_id = result["record"]["reset_id"]
        deadline = time.monotonic() + 600
        while True:
            status, _ = api(relay, "GET", f"/-/api/resets/{reset_id}")
            if status["purge"]["done"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        purge = status["purge"]
    finally:
        relay.stop()
    return {
        "fields": fields,
        "preload_s": round(load_s, 2),
        "fence_live_ms": round(live_s * 1000, 2),
        "purged": purge["fields_removed"],
        "purge_s": purge["seconds"],
        "purge_fields_per_s": round(purge["fields_removed"] / purge["seconds"]) if purge["seconds"] else None,
    }


async def amain(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gunrelay-reset-bench-"))
    try:
        print("fence overhead on put-ack throughput:", flush=True)
        overhead = await fence_overhead(workdir, args.rounds, args.quick)
        print(f"  mean plain {overhead['mean_acks_per_s']['plain']:.1f}, fenced {overhead['mean_acks_per_s']['fenced']:.1f}"
              f" -> overhead {overhead['overhead_pct']}% (target < 5%)", flush=True)
        stores = []
        for n in sorted({100_000, args.fields}):
            out = await fence_and_purge(workdir, n)
            stores.append(out)
            print(f"store of {n:,} fields: fence live and durable {out['fence_live_ms']} ms (target < 50 ms); "
                  f"purge {out['purged']:,} in {out['purge_s']:.2f} s = {out['purge_fields_per_s']:,} fields/s "
                  f"(target >= 100,000)", flush=True)
        doc = {"when": time.strftime("%Y%m%dT%H%M%S"), "fence_overhead": overhead, "stores": stores}
        out_dir = ROOT / "bench" / "results"
        out_dir.mkdir(exist_ok=True)
        path = out_dir / f"reset-{doc['when']}.json"
        path.write_text(json.dumps(doc, indent=2))
        print(f"JSON: {path}")
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--fields", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
