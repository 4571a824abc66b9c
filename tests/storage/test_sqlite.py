"""What only the SQLite backends promise: durability across reopen, group commit, and which
tables each one's file holds (a peer's graph holds no control tables; the relay's file is the
same as before the graph and the control log were split)."""

import asyncio
import sqlite3

import pytest

from gunrelay.core.bans import Ban
from gunrelay.core.fence import FenceRule, Protected
from gunrelay.core.graph import Field
from gunrelay.core.reset import ResetRecord
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.sqlite import SchemaTooNew, SQLiteGraph, SQLiteStore

PROTECTED = Protected(("~relay", "_system"))
CONTROL_TABLES = {"resets", "fence_souls", "reset_acks", "ttl_rules", "audit", "bans", "stream_cursors", "console_sessions"}


@pytest.fixture(params=[SQLiteGraph, SQLiteStore], ids=["graph", "store"])
def SQLite(request):
    """Both SQLite classes: what holds for the graph holds for the relay's store too."""
    return request.param


def tables_in(path):
    db = sqlite3.connect(path)
    try:
        return {name for (name,) in db.execute("SELECT name FROM sqlite_master WHERE type='table' AND name NOT LIKE 'sqlite_%'")}
    finally:
        db.close()


async def test_acknowledged_writes_survive_reopen_including_tombstones(SQLite, tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLite(path)
    await store.open()
    await store.merge([Field("s", "k", "v", 10), Field("s", "gone", None, 20)])
    await store.close()
    again = SQLite(path)
    await again.open()
    assert await again.merge([Field("s", "gone", "back?", 15)]) == []  # the tombstone held
    assert (await again.read(ReadQuery(soul="s")))["s"] == [("gone", "null", 20), ("k", '"v"', 10)]
    await again.close()


async def test_close_finishes_pending_writes(SQLite, tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLite(path)
    await store.open()
    futures = [store.merge([Field(f"s{i}", "k", i, 1)]) for i in range(500)]
    await store.close()
    assert all(f.done() and not f.exception() for f in futures)
    again = SQLite(path)
    await again.open()
    assert (await again.stats()).fields == 500
    await again.close()


async def test_concurrent_merges_are_grouped_into_few_commits(SQLite, tmp_path):
    store = SQLite(tmp_path / "db.sqlite3")
    await store.open()
    commits = 0
    original = store._writer._run_group  # type: ignore[union-attr]

    def counting(jobs):
        nonlocal commits
        commits += 1
        return original(jobs)

    store._writer._run_group = counting  # type: ignore[union-attr,method-assign]
    results = await asyncio.gather(*(store.merge([Field("s", str(i), i, 1)]) for i in range(300)))
    assert all(len(r) == 1 for r in results)
    assert commits < 300
    await store.close()


async def test_a_failing_job_fails_alone(SQLite, tmp_path):
    store = SQLite(tmp_path / "db.sqlite3")
    await store.open()

    class Bad:
        soul = key = "x"
        state = 1
        value = object()  # cannot be encoded

    bad = store.merge([Bad()])  # type: ignore[list-item]
    good = store.merge([Field("s", "k", 1, 1)])
    results = await asyncio.gather(bad, good, return_exceptions=True)
    assert isinstance(results[0], Exception) and results[1] == [Field("s", "k", 1, 1)]
    await store.close()


async def test_health_clears_only_on_a_commit_that_wrote(SQLite, tmp_path):
    store = SQLite(tmp_path / "db.sqlite3")
    await store.open()
    try:
        await store.merge([Field("s", "k", "new", 10)])
        store.health.failed("the relay's disk is full", 0.0)  # as a refused commit leaves it
        assert await store.merge([Field("s", "k", "stale", 5)]) == []  # loses to the stored value: writes nothing
        assert not store.health.ok  # a commit that changed no page says nothing about the disk
        await store.merge([Field("s", "k", "newer", 20)])
        assert store.health.ok and store.health.failed_commits == 1
    finally:
        await store.close()


async def test_a_stored_link_to_a_soul_no_query_can_name_is_a_dead_end(SQLite, tmp_path):
    # refused at validation now; a store written before that may still hold one
    store = SQLite(tmp_path / "db.sqlite3")
    await store.open()
    try:
        await store.merge([Field("chat/a", "l", {"#": "x\ud800"}, 1), Field("chat/a", "m", {"#": "kept"}, 1)])
        assert await store.reachable_souls("chat", PROTECTED, 100) == {"kept"}
    finally:
        await store.close()


async def test_a_graph_only_file_has_no_control_tables(tmp_path):
    path = tmp_path / "peer.sqlite3"
    graph = SQLiteGraph(path)
    await graph.open()
    try:
        await graph.merge([Field("room", "msgs", {"#": "room/msgs"}, 10), Field("room/msgs", "m1", "hi", 10)])
        await graph.purge(FenceRule("r1", "room", 100.0, souls=frozenset({"room/msgs"})), PROTECTED)
        await graph.probe()
    finally:
        await graph.close()
    assert tables_in(path) == {"fields", "probe", "stream_head"}
    assert not tables_in(path) & CONTROL_TABLES


async def test_the_relays_file_holds_the_graph_and_the_control_tables(tmp_path):
    path = tmp_path / "gunrelay.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    assert tables_in(path) == {"fields", "probe", "stream_head"} | CONTROL_TABLES


# The relay's schema as it was before the graph and the control log were split (and before the
# change stream): a data folder written then must open with its data and control tables as they were,
# the fields gaining their stream numbers.
SCHEMA_BEFORE_THE_SPLIT = """
CREATE TABLE IF NOT EXISTS fields (
    soul  TEXT NOT NULL,
    key   TEXT NOT NULL,
    value TEXT NOT NULL,
    state REAL NOT NULL,
    PRIMARY KEY (soul, key)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS resets (
    reset_id   TEXT PRIMARY KEY,
    record     TEXT NOT NULL,
    purge_done INTEGER NOT NULL DEFAULT 0,
    purged     INTEGER NOT NULL DEFAULT 0,
    superseded_by TEXT,
    published  INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS fence_souls (
    reset_id TEXT NOT NULL,
    soul     TEXT NOT NULL,
    PRIMARY KEY (reset_id, soul)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS reset_acks (
    reset_id TEXT NOT NULL,
    peer_id  TEXT NOT NULL,
    address  TEXT NOT NULL,
    pid      TEXT,
    at       REAL NOT NULL,
    PRIMARY KEY (reset_id, peer_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS ttl_rules (
    prefix TEXT PRIMARY KEY,
    ttl_ms REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    at      REAL NOT NULL,
    who     TEXT NOT NULL,
    address TEXT NOT NULL,
    action  TEXT NOT NULL,
    detail  TEXT NOT NULL,
    outcome TEXT NOT NULL,
    status  INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bans (
    address TEXT PRIMARY KEY,
    until   REAL NOT NULL,
    reason  TEXT NOT NULL
);
"""


def schema_of(path):
    db = sqlite3.connect(path)
    try:
        return sorted(db.execute("SELECT type, name, tbl_name, sql FROM sqlite_master"))
    finally:
        db.close()


async def test_a_data_folder_from_before_the_split_opens_and_gains_the_stream(tmp_path):
    path = tmp_path / "gunrelay.sqlite3"
    record = ResetRecord(reset_id="r1", scope="room", epoch=1, watermark=100.0, issued_at=100.0)
    db = sqlite3.connect(path)
    db.executescript(SCHEMA_BEFORE_THE_SPLIT)
    with db:
        db.execute("INSERT INTO fields VALUES ('room', 'k', '\"v\"', 10), ('rand1', 'k', '1', 10), ('other', 'k', '2', 9)")
        db.execute("INSERT INTO resets (reset_id, record, purged) VALUES ('r1', ?, 0)", (record.to_json(),))
        db.execute("INSERT INTO fence_souls VALUES ('r1', 'rand1')")
        db.execute("INSERT INTO bans VALUES ('10.0.0.1', 100.0, 'spam')")
        db.execute("INSERT INTO ttl_rules VALUES ('tmp', 5000.0)")
    db.close()
    before = schema_of(path)
    store = SQLiteStore(path)
    await store.open()
    try:
        page = await store.changes_since(0, 10)
        assert [(c.soul, c.state) for c in page.changes] == [("other", 9), ("rand1", 10), ("room", 10)]  # state order
        [held] = await store.load_resets()
        assert held.record == record and held.souls == {"rand1"} and not held.purge_done
        assert await store.load_bans() == [Ban("10.0.0.1", 100.0, "spam")] and await store.load_ttls() == {"tmp": 5000.0}
        assert await store.purge(held.rule, PROTECTED) == 2  # the prefix and its installed closure
        assert (await store.read(ReadQuery(soul="other")))["other"] == [("k", "2", 9)]
        [held] = await store.load_resets()
        assert held.purged == 2
        await store.merge([Field("new", "k", 1, 11)])
        assert [c.soul for c in (await store.changes_since(page.cursor, 10)).changes] == ["new"]
    finally:
        await store.close()
    after = schema_of(path)
    unchanged = [entry for entry in before if entry[1] != "fields"]
    assert [entry for entry in after if entry[1] in {e[1] for e in unchanged}] == unchanged
    assert {entry[1] for entry in after} - {entry[1] for entry in before} == {
        "stream_head", "fields_by_seq", "stream_cursors", "console_sessions", "sqlite_autoindex_console_sessions_1",
    }
    assert "seq INTEGER" in next(entry[3] for entry in after if entry[1] == "fields")
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA user_version").fetchone() == (1,)
    db.close()


async def test_a_file_from_a_newer_gunrelay_is_refused(SQLite, tmp_path):
    path = tmp_path / "db.sqlite3"
    db = sqlite3.connect(path)
    db.execute("PRAGMA user_version = 99")
    db.close()
    with pytest.raises(SchemaTooNew, match="newer gunrelay"):
        await SQLite(path).open()


async def test_stream_numbers_are_not_reused_after_the_highest_were_purged_and_the_file_reopened(SQLite, tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLite(path)
    await store.open()
    await store.merge([Field("keep", "k", 1, 10), Field("room/a", "k", 1, 10), Field("room/b", "k", 1, 10)])
    cursor = (await store.changes_since(0, 10)).cursor  # a reader has seen all three
    await store.purge(FenceRule("r1", "room", 100.0), PROTECTED)
    await store.close()
    again = SQLite(path)
    await again.open()
    try:
        await again.merge([Field("later", "k", 1, 20)])
        assert [c.soul for c in (await again.changes_since(cursor, 10)).changes] == ["later"]
    finally:
        await again.close()


async def test_a_closure_larger_than_sqlites_parameter_limit(SQLite, tmp_path):
    # a graph store takes the closure from the rule, however many souls it holds
    graph = SQLite(tmp_path / "db.sqlite3")
    await graph.open()
    try:
        closure = frozenset(f"x{i:05d}" for i in range(40_000))
        await graph.merge([Field(soul, "k", 1, 10) for soul in sorted(closure)] + [Field("y", "k", 1, 10)])
        rule = FenceRule("r1", "room", 100.0, souls=closure)
        assert (await graph.scope_report(rule, PROTECTED)).fields == 40_000
        assert await graph.purge(rule, PROTECTED, batch=15_000) == 40_000
        assert (await graph.stats()).fields == 1
    finally:
        await graph.close()


async def test_a_merge_failing_halfway_does_not_make_two_fields_share_a_number(SQLite, tmp_path):
    store = SQLite(tmp_path / "db.sqlite3")
    await store.open()
    try:
        with pytest.raises(UnicodeEncodeError):  # SQLite cannot take a lone surrogate; the first field is written already
            await store.merge([Field("a", "k", 1, 1), Field("\ud800", "k", 1, 1)])
        await store.merge([Field("b", "k", 1, 1)])
        page = await store.changes_since(0, 10)
        assert [c.soul for c in page.changes] == ["a", "b"] and page.changes[0].seq < page.changes[1].seq
    finally:
        await store.close()


async def test_fields_written_into_the_file_by_hand_are_numbered_after_the_head_on_open(SQLite, tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLite(path)
    await store.open()
    await store.merge([Field("a", "k", 1, 5)])
    cursor = (await store.changes_since(0, 10)).cursor
    await store.close()
    db = sqlite3.connect(path)
    with db:
        db.execute("INSERT INTO fields (soul, key, value, state) VALUES ('hand', 'k', '1', 1)")  # no number
    db.close()
    again = SQLite(path)
    await again.open()
    try:
        assert [c.soul for c in (await again.changes_since(cursor, 10)).changes] == ["hand"]
    finally:
        await again.close()
