"""A relay moved from SQLite to PostgreSQL with ``gunrelay migrate`` serves its data to real GunJS
clients and keeps its fences; while it runs, the database is refused as a migration source.

GunJS clients write through a relay on SQLite; a reset fences one scope while a stock GunJS client
holds its stale copy. The relay stops, the store is migrated to a throwaway PostgreSQL database,
and a relay on the same data folder (its identity) and port starts on PostgreSQL: a fresh GunJS
client reads everything that was kept, the reset scope stays empty, the stale client's replay is
refused naming the reset, and the reset history is the same.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from interop_support import REPO, TARGET, Relay, operator, reset, rid
from postgres_server import PostgresServer

pytestmark = [
    pytest.mark.interop,
    pytest.mark.skipif(TARGET == "node", reason="the reference Node relay has no migrate"),
]


def gunrelay(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gunrelay", *args], capture_output=True, text=True, timeout=300,
                          cwd=str(REPO), env={"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"})


def read(clients: Any, relay: Relay, *paths: list[str]) -> list[Any]:
    r = clients.run(relay, [{"op": "once", "path": p, "timeout": 5000} for p in paths])
    assert r.error is None, r
    out = []
    for step in r.results:
        assert not step.get("timeout"), step
        out.append(step["value"] if step["defined"] else None)
    return out


def test_a_relay_on_the_migrated_postgres_store_serves_and_keeps_its_fences(
    tmp_path: Path, clients: Any, postgres_server: PostgresServer,
) -> None:
    kept, fenced = f"kept-{rid()}", f"chat-{rid()}"
    on_sqlite = Relay(tmp_path / "data", tmp_path / "logs-sqlite")
    on_sqlite.start()
    try:
        w = clients.run(on_sqlite, [
            {"op": "put", "path": [kept, "topic"], "value": "still here"},
            {"op": "put", "path": [kept, "count"], "value": 42},
            {"op": "set", "path": [kept, "messages"], "items": [{"text": f"m{i}"} for i in range(5)]},
            {"op": "put", "path": [fenced, "msg"], "value": "stale secret"},
        ])
        assert w.error is None, w
        stale = clients.spawn(on_sqlite, [
            {"op": "once", "path": [fenced, "msg"]},  # its copy, with the original state, in memory
            {"op": "emit", "event": "holding"},
            {"op": "wait_line", "timeout": 120000},  # held through the migration
            {"op": "wait_connected", "new": True, "timeout": 20000},
            {"op": "replay", "soul": fenced, "timeout": 5000},
        ], deadline_ms=150000)
        stale.wait_event(lambda e: e.get("event") == "holding", 10)
        record = reset(on_sqlite, fenced, reason="spam")
        history = operator(on_sqlite, "GET", "/-/api/resets")
    finally:
        on_sqlite.stop()

    url = postgres_server.new_database()
    moved = gunrelay("migrate", "--from", f"sqlite:{on_sqlite.data_dir}", "--to", url)
    assert moved.returncode == 0, moved.stderr
    summary = json.loads(moved.stdout)
    assert summary["verification"].startswith("passed") and summary["copied"]["resets"] == 1, summary

    on_postgres = Relay(on_sqlite.data_dir, tmp_path / "logs-postgres", port=on_sqlite.port,
                        args=["--storage", "postgres", "--postgres-url", url])
    on_postgres.start()
    try:
        # the database is in use now: a migration from it is refused, and says why
        refused = gunrelay("migrate", "--from", url, "--to", f"sqlite:{tmp_path / 'copy'}")
        assert refused.returncode == 1 and "in use" in refused.stderr and "Traceback" not in refused.stderr, refused.stderr

        got = clients.run(on_postgres, [
            {"op": "once", "path": [kept, "topic"], "timeout": 5000},
            {"op": "once", "path": [kept, "count"], "timeout": 5000},
            {"op": "map_once", "path": [kept, "messages"], "expect": 5, "timeout": 5000},
            {"op": "once", "path": [fenced, "msg"], "timeout": 3000},
        ])
        assert got.error is None, got
        assert got.results[0]["value"] == "still here" and got.results[1]["value"] == 42, got
        assert sorted(v["text"] for v in got.results[2]["items"].values()) == [f"m{i}" for i in range(5)], got
        assert got.results[3]["defined"] is False, got

        stale.send({"go": True})
        replayed = stale.result(60)
        assert replayed.results[3].get("connected"), replayed
        assert record["reset_id"] in replayed.results[4]["ack"]["err"], replayed
        assert read(clients, on_postgres, [fenced, "msg"]) == [None]
        assert operator(on_postgres, "GET", "/-/api/resets") == history
    finally:
        on_postgres.stop()
