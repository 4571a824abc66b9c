"""The peer's ledger of applied resets: durable, and taken over from a graph file written before the split."""

import sqlite3

from gunrelay.client.ledger import SQLiteResetLedger
from gunrelay.core.reset import ResetRecord
from gunrelay.storage.sqlite import SQLiteGraph, SQLiteStore

T0 = 1_800_000_000_000.0


def record(reset_id: str, scope: str, epoch: int) -> ResetRecord:
    return ResetRecord(reset_id=reset_id, scope=scope, epoch=epoch, watermark=T0, issued_at=T0 + epoch)


async def test_the_ledger_keeps_what_was_applied_across_a_restart(tmp_path):
    ledger = SQLiteResetLedger(tmp_path / "peer-resets")
    await ledger.open()
    await ledger.install_reset(record("r1", "room", 1), frozenset({"x", "y"}))
    await ledger.finish_purge("r1", 7)
    await ledger.install_reset(record("r2", "*", 1), frozenset())
    assert await ledger.supersede_resets(T0 + 0.5, by="back") == ["r1", "r2"]
    await ledger.close()
    again = SQLiteResetLedger(tmp_path / "peer-resets")
    await again.open()
    held = {h.record.reset_id: h for h in await again.load_resets()}
    await again.close()
    assert held["r1"].souls == {"x", "y"} and held["r1"].purge_done and held["r1"].purged == 7
    assert held["r1"].superseded_by == "back" and not held["r2"].purge_done


async def test_a_graph_file_from_before_the_split_hands_its_applied_resets_over_once(tmp_path):
    old = SQLiteStore(tmp_path / "peer")  # what a durable peer's graph file used to be
    await old.open()
    await old.install_reset(record("r1", "room", 1), frozenset({"room/a"}))
    await old.finish_purge("r1", 3)
    await old.close()
    graph = SQLiteGraph(tmp_path / "peer")  # the same file opens as a graph store
    await graph.open()
    await graph.close()
    ledger = SQLiteResetLedger(tmp_path / "peer-resets", graph_file=tmp_path / "peer")
    await ledger.open()
    [held] = await ledger.load_resets()
    await ledger.install_reset(record("r2", "room", 2), frozenset())
    await ledger.close()
    assert held.record.reset_id == "r1" and held.souls == {"room/a"} and held.purge_done and held.purged == 3
    reopened = SQLiteResetLedger(tmp_path / "peer-resets", graph_file=tmp_path / "peer")
    await reopened.open()  # not empty any more: nothing is taken over twice
    assert sorted(h.record.reset_id for h in await reopened.load_resets()) == ["r1", "r2"]
    await reopened.close()


async def test_a_new_peer_file_has_no_control_tables(tmp_path):
    graph = SQLiteGraph(tmp_path / "fresh")
    await graph.open()
    await graph.close()
    tables = {n for (n,) in sqlite3.connect(tmp_path / "fresh").execute("SELECT name FROM sqlite_master WHERE type='table'")}
    assert "resets" not in tables and "audit" not in tables and "bans" not in tables
