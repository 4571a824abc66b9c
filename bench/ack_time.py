"""Time from the operator's reset command until every online client has acknowledged (not a test).

    .venv/bin/python bench/ack_time.py [--sizes 2,20,200] [--per-process 50]

For each size N: a fresh relay, N real GunJS clients (gun/gun + SEA, in Node processes of up to
``--per-process`` clients each) with the gunrelay plugin installed, a first reset so every client
holds a record, then the measured reset: from the POST to /-/api/resets until GET
/-/api/resets/<id> lists no connected peer that has not acknowledged.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run import ROOT, Relay, relay_specs  # noqa: E402

from reset_bench import api  # noqa: E402


def identity(relay: Relay) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/-/identity", timeout=10) as r:
        return json.loads(r.read())["pub"]


async def measure(size: int, per_process: int, workdir: Path) -> dict:
    relay = Relay(f"acks{size}", relay_specs()["ours"], workdir / f"acks{size}")
    relay.workdir.mkdir(parents=True)
    await relay.start()
    procs: list[subprocess.Popen] = []
    try:
        api(relay, "POST", "/-/api/resets", {"scope": "warmup/none", "reason": "so a record exists"})
        pub = identity(relay)
        peer = f"http://127.0.0.1:{relay.port}/gun"
        for start in range(0, size, per_process):
            n = min(per_process, size - start)
            cfg = json.dumps({"peer": peer, "pub": pub, "n": n, "hardMs": 180000})
            procs.append(subprocess.Popen(["node", str(ROOT / "bench" / "ack_clients.js"), cfg], cwd=ROOT,
                                          stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True))
        for p in procs:  # every client connected and holding the current record
            line = await asyncio.wait_for(asyncio.to_thread(p.stdout.readline), 120)
            assert json.loads(line)["event"] == "ready", line
        await asyncio.sleep(1.0)
        connected = json.loads(urllib.request.urlopen(f"http://127.0.0.1:{relay.port}/health").read())["peers"]
        t0 = time.perf_counter()
        record = api(relay, "POST", "/-/api/resets", {"scope": "*", "reason": "ack bench"})[0]["record"]
        deadline = time.monotonic() + 120
        while True:
            status = api(relay, "GET", f"/-/api/resets/{record['reset_id']}")[0]
            if not status["connected_not_acknowledged"] or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - t0
        return {
            "clients": size,
            "connected": connected,
            "acknowledged": len(status["acknowledged"]),
            "missing": len(status["connected_not_acknowledged"]),
            "seconds_until_all_acked": round(elapsed, 3),
        }
    finally:
        for p in procs:
            try:
                p.stdin.write("\n")
                p.stdin.flush()
            except OSError:
                pass
        for p in procs:
            try:
                p.wait(5)
            except subprocess.TimeoutExpired:
                p.kill()
        relay.stop()


async def amain(args: argparse.Namespace) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="gunrelay-ack-bench-"))
    results = []
    try:
        for size in [int(s) for s in args.sizes.split(",")]:
            out = await measure(size, args.per_process, workdir)
            results.append(out)
            print(f"{size:4d} clients: all {out['acknowledged']} acknowledged {out['seconds_until_all_acked']} s after the "
                  f"reset command (missing {out['missing']}, connected {out['connected']})", flush=True)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    path = ROOT / "bench" / "results" / f"acks-{time.strftime('%Y%m%dT%H%M%S')}.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps(results, indent=2))
    print(f"JSON: {path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="2,20,200")
    parser.add_argument("--per-process", type=int, default=50)
    asyncio.run(amain(parser.parse_args()))


if __name__ == "__main__":
    main()
