"""``gunrelay migrate`` on a large store: rate, time and peak memory, SQLite -> PostgreSQL (and back).

1. A SQLite store (``DIR/gunrelay.sqlite3``) is filled through ``SQLiteStore.merge`` with SOULS x
   KEYS fields (default 100,000 x 10 = 1,000,000; short text values, distinct states), a reset
   with a closure, a ban, a TTL rule and a few audit entries.
2. A throwaway PostgreSQL server (tests/postgres_server.py: initdb in a temp folder, fsync on,
   127.0.0.1, a free port) gets a fresh database.
3. ``gunrelay migrate --from sqlite:DIR --to URL`` runs under ``/usr/bin/time`` (wall time and peak
   RSS of the whole command: Python start, both stores, the copy and the full field-by-field
   verification). Its own report gives the copy and verification times. Rate = fields / copy time
   (and fields / wall time, everything included).
4. With ``--back``, the same from PostgreSQL to a fresh SQLite folder.

Usage: .venv/bin/python bench/migrate_bench.py [--souls N] [--keys K] [--back] [--keep]
Prints a table, and every figure as JSON in bench/results/migrate-<timestamp>.json.
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
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "src"), str(REPO / "tests"), str(REPO / "bench")]

from postgres_server import PostgresServer  # noqa: E402

from gunrelay.core.bans import Ban  # noqa: E402
from gunrelay.core.graph import Field  # noqa: E402
from gunrelay.core.reset import ResetRecord  # noqa: E402
from gunrelay.storage.base import AuditEntry  # noqa: E402
from gunrelay.storage.sqlite import SQLiteStore  # noqa: E402
from radata_import import timed  # noqa: E402  (a command under /usr/bin/time: wall time, peak RSS, output)

BATCH = 5_000


async def fill(path: Path, souls: int, keys: int) -> None:
    store = SQLiteStore(path)
    await store.open()
    try:
        batch: list[Field] = []
        state = 1_700_000_000_000.0
        for s in range(souls):
            for k in range(keys):
                state += 1
                batch.append(Field(f"bench/{s:07d}", f"key{k}", f"value {s} {k} lorem ipsum", state))
                if len(batch) >= BATCH:
                    await store.merge(batch)
                    batch = []
        if batch:
            await store.merge(batch)
        record = ResetRecord(reset_id="bench-reset", scope="gone", epoch=1, watermark=1000.0, issued_at=1000.0)
        await store.install_reset(record, frozenset({"gone", "gone/1"}))
        await store.finish_purge("bench-reset", 0)
        await store.save_ban(Ban("10.0.0.1", 9e12, "bench"))
        await store.save_ttl("tmp", 60_000.0)
        for i in range(10):
            await store.append_audit(AuditEntry(1000.0 + i, "bench", "127.0.0.1", "action", str(i), "ok", 200))
    finally:
        await store.close()



def row(name: str, run: dict[str, Any]) -> dict[str, Any]:
    report = json.loads(run["stdout"])
    fields = report["copied"]["fields"]
    return {
        "step": name, "fields": fields, "wall_s": run["wall_s"], "copy_s": report["copy_seconds"],
        "verify_s": report["verify_seconds"], "fields_per_s_copy": round(fields / report["copy_seconds"]),
        "fields_per_s_wall": round(fields / run["wall_s"]), "peak_rss_mb": round(run["peak_rss_mb"], 1),
        "verification": report["verification"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--souls", type=int, default=100_000)
    parser.add_argument("--keys", type=int, default=10)
    parser.add_argument("--back", action="store_true", help="also migrate PostgreSQL -> a fresh SQLite folder")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder")
    args = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="gunrelay-migrate-bench-"))
    server = PostgresServer()
    rows = []
    try:
        source = scratch / "source"
        source.mkdir()
        began = time.monotonic()
        asyncio.run(fill(source / "gunrelay.sqlite3", args.souls, args.keys))
        print(f"filled {args.souls * args.keys} fields in {time.monotonic() - began:.1f} s", file=sys.stderr)
        server.start()
        url = server.new_database()
        gunrelay = [sys.executable, "-m", "gunrelay", "migrate"]
        rows.append(row("sqlite -> postgres", timed([*gunrelay, "--from", f"sqlite:{source}", "--to", url], scratch, "to-postgres")))
        if args.back:
            back = f"sqlite:{scratch / 'back'}"
            rows.append(row("postgres -> sqlite", timed([*gunrelay, "--from", url, "--to", back], scratch, "to-sqlite")))
    finally:
        server.stop()
        if args.keep:
            print(f"kept {scratch}", file=sys.stderr)
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    for r in rows:
        print(f"{r['step']:20} {r['fields']:>9} fields  wall {r['wall_s']:7.1f} s  copy {r['copy_s']:7.1f} s "
              f"({r['fields_per_s_copy']}/s)  verify {r['verify_s']:6.1f} s  peak RSS {r['peak_rss_mb']} MB")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    target = out / f"migrate-{time.strftime('%Y%m%d-%H%M%S')}.json"
    target.write_text(json.dumps({"souls": args.souls, "keys": args.keys, "runs": rows}, indent=2))
    print(f"figures in {target}", file=sys.stderr)


if __name__ == "__main__":
    main()
