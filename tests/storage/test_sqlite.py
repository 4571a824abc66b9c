"""What only the SQLite backend promises: durability across reopen, and group commit."""

import asyncio

from gunrelay.core.fence import Protected
from gunrelay.core.graph import Field
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.sqlite import SQLiteStore

PROTECTED = Protected(("~relay", "_system"))


async def test_acknowledged_writes_survive_reopen_including_tombstones(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.merge([Field("s", "k", "v", 10), Field("s", "gone", None, 20)])
    await store.close()
    again = SQLiteStore(path)
    await again.open()
    assert await again.merge([Field("s", "gone", "back?", 15)]) == []  # the tombstone held
    assert (await again.read(ReadQuery(soul="s")))["s"] == [("gone", "null", 20), ("k", '"v"', 10)]
    await again.close()


async def test_close_finishes_pending_writes(tmp_path):
    path = tmp_path / "db.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    futures = [store.merge([Field(f"s{i}", "k", i, 1)]) for i in range(500)]
    await store.close()
    assert all(f.done() and not f.exception() for f in futures)
    again = SQLiteStore(path)
    await again.open()
    assert (await again.stats()).fields == 500
    await again.close()


async def test_concurrent_merges_are_grouped_into_few_commits(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
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


async def test_a_failing_job_fails_alone(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
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


async def test_health_clears_only_on_a_commit_that_wrote(tmp_path):
    store = SQLiteStore(tmp_path / "db.sqlite3")
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


async def test_a_stored_link_to_a_soul_no_query_can_name_is_a_dead_end(tmp_path):
    # refused at validation now; a store written before that may still hold one
    store = SQLiteStore(tmp_path / "db.sqlite3")
    await store.open()
    try:
        await store.merge([Field("chat/a", "l", {"#": "x\ud800"}, 1), Field("chat/a", "m", {"#": "kept"}, 1)])
        assert await store.reachable_souls("chat", PROTECTED, 100) == {"kept"}
    finally:
        await store.close()
