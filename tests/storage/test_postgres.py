"""What only the PostgreSQL store promises: several processes on one database (each a store with its
own connections here) never store a HAM loser or a fenced field, never let a stream reader skip a
change committed late, and the schema is the relay's to create, migrate and refuse."""

import asyncio
import threading

import psycopg
import pytest

from gunrelay.core.fence import Protected
from gunrelay.core.graph import Field
from gunrelay.core.reset import ResetRecord
from gunrelay.storage.base import ReadQuery, StorageFailure
from gunrelay.storage.postgres import SCHEMA_VERSION, STREAM_CHANNEL, PostgresStore, SchemaTooNew, _install_reset, _merge

PROTECTED = Protected(("~relay", "_system"))


@pytest.fixture
async def two(postgres_url):
    """Two stores on one database: two relay processes of a fleet."""
    first, second = PostgresStore(postgres_url, PROTECTED), PostgresStore(postgres_url, PROTECTED)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def _drain(store, cursor, seen, rounds=10_000):
    for _ in range(rounds):  # bounded
        page = await store.changes_since(cursor, 50)
        if not page.changes:
            return cursor
        seen += [(c.soul, c.key) for c in page.changes]
        cursor = page.cursor
    raise AssertionError("the stream never ended")


# -- the change stream under concurrent writers --------------------------------------------------


async def test_a_writer_that_commits_late_is_not_skipped_by_a_reader(two):
    first, second = two
    holding, release = threading.Event(), threading.Event()

    def slow_merge(conn):  # a merge that has taken its number, then stalls before its commit
        accepted = _merge(conn, [Field("slow", "k", 1, 1)])
        holding.set()
        release.wait(10)
        return accepted

    slow = first._write(slow_merge)
    assert await asyncio.to_thread(holding.wait, 10)
    fast = second.merge([Field("fast", "k", 1, 1)])  # would take a higher number and commit first, with a plain sequence
    seen: list[tuple[str, str]] = []
    cursor = 0
    for _ in range(10):  # a reader polling while the slow writer holds its transaction open
        cursor = await _drain(second, cursor, seen)
        await asyncio.sleep(0.05)
    assert seen == [] and not fast.done()  # nothing committed ahead of the open transaction
    release.set()
    assert await slow == [Field("slow", "k", 1, 1)] and await fast == [Field("fast", "k", 1, 1)]
    await _drain(second, cursor, seen)
    assert seen == [("slow", "k"), ("fast", "k")]


async def test_concurrent_writers_and_a_polling_reader_lose_nothing(two):
    first, second = two
    seen: list[tuple[str, str]] = []
    done = asyncio.Event()

    async def write(store, name):
        for i in range(60):
            await asyncio.gather(*(store.merge([Field(f"{name}/{i}", str(j), j, 1)]) for j in range(3)))

    async def read():
        cursor = 0
        for _ in range(2_000):  # bounded
            cursor = await _drain(first, cursor, seen)
            if done.is_set():
                return await _drain(first, cursor, seen)
            await asyncio.sleep(0.005)
        raise AssertionError("the reader never finished")

    reader = asyncio.create_task(read())
    await asyncio.gather(write(first, "a"), write(second, "b"))
    done.set()
    await reader
    expected = {(f"{name}/{i}", str(j)) for name in "ab" for i in range(60) for j in range(3)}
    assert len(seen) == len(expected) and set(seen) == expected


# -- HAM and the fence, decided in the database ------------------------------------------------------


async def test_two_processes_writing_one_field_at_once_store_the_ham_winner(two):
    first, second = two
    writes = [(first, Field("s", "k", f"v{i:03d}", 100 + i % 7)) for i in range(0, 80, 2)]
    writes += [(second, Field("s", "k", f"v{i:03d}", 100 + i % 7)) for i in range(1, 80, 2)]
    await asyncio.gather(*(store.merge([field]) for store, field in writes))
    # the highest state is 106; among its values the greatest string wins the tie
    best = max((f for _, f in writes if f.state == 106), key=lambda f: f.value)
    assert (await first.read(ReadQuery(soul="s")))["s"] == [("k", f'"{best.value}"', 106)]
    page = await first.changes_since(0, 10)
    assert [(c.key, c.value) for c in page.changes] == [("k", f'"{best.value}"')]


async def test_the_tie_rule_is_javascripts_even_where_byte_order_differs(two):
    first, second = two
    # U+FF61 and U+1F600: in UTF-8 the emoji sorts higher, in JavaScript's UTF-16 lower
    await first.merge([Field("s", "k", "\U0001f600", 10)])
    assert await second.merge([Field("s", "k", "\uff61", 10)]) == [Field("s", "k", "\uff61", 10)]
    assert await first.merge([Field("s", "k", "\U0001f600", 10)]) == []
    assert (await second.read(ReadQuery(soul="s")))["s"] == [("k", '"\uff61"', 10)]


async def test_a_reset_installed_by_another_process_fences_the_merge(two):
    first, second = two
    await first.install_reset(ResetRecord(reset_id="r1", scope="room", epoch=1, watermark=100.0, issued_at=100.0), frozenset({"rand1"}))
    offered = [Field("room/a", "k", "old", 100), Field("rand1", "k", "old", 50), Field("room/a", "n", "new", 101), Field("else", "k", "x", 1)]
    assert await second.merge(offered) == [Field("room/a", "n", "new", 101), Field("else", "k", "x", 1)]
    await first.install_reset(ResetRecord(reset_id="r2", scope="*", epoch=1, watermark=200.0, issued_at=200.0), frozenset())
    assert await second.merge([Field("else", "k", "y", 150), Field("~relay/reset", "k", 1, 150)]) == [Field("~relay/reset", "k", 1, 150)]
    # a restore that undid both: they fence nothing any more
    assert await first.supersede_resets(0.0, by="restore") == ["r1", "r2"]
    assert await second.merge([Field("else", "k", "y", 150)]) == [Field("else", "k", "y", 150)]


async def test_a_write_racing_a_reset_on_another_process_is_refused(two):
    first, second = two
    holding, release = threading.Event(), threading.Event()
    record = ResetRecord(reset_id="r1", scope="room", epoch=1, watermark=100.0, issued_at=100.0)

    def slow_install(conn):  # the reset is written but not yet committed
        _install_reset(conn, record, frozenset())
        holding.set()
        release.wait(10)

    installing = first._write(slow_install)
    assert await asyncio.to_thread(holding.wait, 10)
    racing = second.merge([Field("room/a", "k", "stale", 50), Field("other", "k", 1, 50)])
    await asyncio.sleep(0.3)  # with no fleet-wide ordering the racing write would commit now, unfenced
    release.set()
    await installing
    assert await racing == [Field("other", "k", 1, 50)]
    assert await second.read(ReadQuery(soul="room/a")) == {}


async def test_a_ttl_rule_fences_old_writes_in_every_process(two):
    import time

    first, second = two
    now = time.time() * 1000
    await first.save_ttl("tmp", 10_000.0)
    assert await second.merge([Field("tmp/a", "old", 1, now - 60_000), Field("tmp/a", "fresh", 1, now)]) == [Field("tmp/a", "fresh", 1, now)]
    await first.delete_ttl("tmp")
    assert await second.merge([Field("tmp/a", "old", 1, now - 60_000)]) == [Field("tmp/a", "old", 1, now - 60_000)]
    await first.save_ttl("*", 10_000.0)  # the whole graph but the protected souls
    offered = [Field("any", "old", 1, now - 60_000), Field("~relay", "old", 1, now - 60_000)]
    assert await second.merge(offered) == [Field("~relay", "old", 1, now - 60_000)]


async def test_a_tie_that_would_win_is_still_fenced(two):
    first, second = two
    await first.merge([Field("room", "k", "a", 100)])
    await first.install_reset(ResetRecord(reset_id="r1", scope="room", epoch=1, watermark=100.0, issued_at=100.0), frozenset())
    assert await second.merge([Field("room", "k", "b", 100)]) == []
    assert (await second.read(ReadQuery(soul="room")))["room"] == [("k", '"a"', 100)]


# -- the schema, durability, the server going away --------------------------------------------------


async def test_the_schema_is_versioned_and_a_newer_one_is_refused(postgres_url):
    opened = await asyncio.gather(*(_opened(postgres_url) for _ in range(3)))  # three processes starting at once
    await opened[0].merge([Field("s", "k", "v", 1)])
    for store in opened:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
        conn.execute("UPDATE schema_version SET version = %s", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaTooNew, match="newer gunrelay"):
        await PostgresStore(postgres_url).open()


async def test_a_database_at_an_older_schema_is_migrated_in_place(postgres_url):
    from gunrelay.storage.postgres import MIGRATIONS

    with psycopg.connect(postgres_url) as conn:  # as the first version of the store left it
        conn.execute(MIGRATIONS[1])
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (1)")
        conn.execute("INSERT INTO fields VALUES ('\\x73'::bytea, '\\x6b'::bytea, '1', 5, nextval('stream_seq'))")
    store = await _opened(postgres_url)
    try:
        assert (await store.read(ReadQuery(soul="s")))["s"] == [("k", "1", 5)]
        await store.save_stream_cursor("pubA", 4)
        assert await store.load_stream_cursors() == {"pubA": 4}
    finally:
        await store.close()
    with psycopg.connect(postgres_url) as conn:
        assert conn.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]


async def _opened(url):
    store = PostgresStore(url)
    await store.open()
    return store


async def test_acknowledged_writes_and_the_stream_survive_reopen(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    await store.merge([Field("s", "k", "v", 10), Field("s", "gone", None, 20)])
    cursor = (await store.changes_since(0, 10)).cursor
    await store.close()
    again = PostgresStore(postgres_url)
    await again.open()
    try:
        assert await again.merge([Field("s", "gone", "back?", 15)]) == []
        await again.merge([Field("t", "k", 1, 30)])
        assert [c.soul for c in (await again.changes_since(cursor, 10)).changes] == ["t"]
    finally:
        await again.close()


async def test_a_connection_dropped_between_groups_is_replaced_and_the_next_group_goes_through(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.merge([Field("s", "a", 1, 1)])
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()")
        assert [f.key for f in await store.merge([Field("s", "b", 1, 1)])] == ["b"]  # nothing of it had reached the dead one
        assert store.health.ok and store.health.failed_commits == 0
        assert [key for key, _, _ in (await store.read(ReadQuery(soul="s")))["s"]] == ["a", "b"]
    finally:
        await store.close()


async def test_a_connection_lost_in_the_middle_of_a_group_fails_it_unacknowledged_and_the_next_reconnects(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        # one job in one group: a field written, then the server ends the session before the commit
        def write_then_cut(conn):
            _merge(conn, [Field("s", "lost", 1, 1)])
            conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")

        with pytest.raises(StorageFailure, match="PostgreSQL"):
            await store._write(write_then_cut)
        assert not store.health.ok and "PostgreSQL" in (store.health.error or "")
        assert [f.key for f in await store.merge([Field("s", "next", 1, 1)])] == ["next"]  # a new connection
        assert store.health.ok and store.health.failed_commits == 1
        assert [key for key, _, _ in (await store.read(ReadQuery(soul="s")))["s"]] == ["next"]  # the lost group is not there
    finally:
        await store.close()


async def test_control_text_with_a_nul_fails_its_own_call_only(two):
    from gunrelay.core.bans import Ban
    from gunrelay.core.errors import RemoteError

    first, _ = two
    merged = first.merge([Field("s", "k", "v", 1)])
    with pytest.raises(RemoteError, match="NUL"):
        await first.save_ban(Ban("10.0.0.1", 100.0, "bad\x00reason"))
    with pytest.raises(RemoteError, match="NUL"):
        await first.install_reset(ResetRecord(reset_id="r\x00", scope="*", epoch=1, watermark=1.0, issued_at=1.0), frozenset())
    assert await merged == [Field("s", "k", "v", 1)]
    assert await first.load_bans() == [] and await first.load_resets() == []


def test_storage_postgres_is_a_setting_that_needs_its_url():
    from gunrelay.app import make_store
    from gunrelay.config import InvalidSetting, load_config

    with pytest.raises(InvalidSetting, match="--postgres-url"):
        load_config({"storage": "postgres"}, {})
    config = load_config({}, {"GUNRELAY_STORAGE": "postgres", "GUNRELAY_POSTGRES_URL": "postgresql://u@127.0.0.1:1/db"})
    store = make_store(config, PROTECTED)
    assert isinstance(store, PostgresStore) and store.url == config.postgres_url and store.protected == PROTECTED


async def test_merges_sent_together_keep_their_own_outcomes(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        # submitted in one go, they reach the server in one pipeline
        futures = [
            store.merge([Field("s", "k", "a", 10)]),
            store.merge([Field("\ud800", "k", 1, 1)]),  # cannot be encoded: fails alone
            store.merge([Field("s", "k", "c", 10)]),
            store.merge([Field("s", "k", "b", 10), Field("t", "k", 1, 1)]),
        ]
        outcomes = await asyncio.gather(*futures, return_exceptions=True)
        assert outcomes[0] == [Field("s", "k", "a", 10)] and isinstance(outcomes[1], UnicodeEncodeError)
        assert outcomes[2] == [Field("s", "k", "c", 10)] and outcomes[3] == [Field("t", "k", 1, 1)]
        assert (await store.read(ReadQuery(soul="s")))["s"] == [("k", '"c"', 10)]
    finally:
        await store.close()


# -- the fleet: other processes' entries, the head, the nudge --------------------------------------


async def test_a_process_reads_only_the_entries_others_wrote_and_its_cursor_passes_its_own(two):
    first, second = two
    head = await second.stream_head()
    await first.merge([Field("f", "a", 1, 1)])
    await second.merge([Field("f", "b", 2, 1)])
    await first.merge([Field("f", "c", 3, 1)])
    page = await second.others_since(head, 100)
    assert [(c.key, c.value) for c in page.changes] == [("a", "1"), ("c", "3")]
    assert page.cursor == (await second.changes_since(head, 100)).cursor  # past its own entry too
    assert (await second.others_since(page.cursor, 100)).changes == []
    mine = await first.others_since(head, 100)
    assert [c.key for c in mine.changes] == ["b"]


async def test_a_field_another_process_overwrites_is_its_entry_again(two):
    first, second = two
    await first.merge([Field("o", "k", "mine", 1)])
    cursor = await first.stream_head()
    assert await second.merge([Field("o", "k", "theirs", 2)]) != []
    assert [(c.value, c.state) for c in (await first.others_since(cursor, 10)).changes] == [('"theirs"', 2)]
    assert await second.merge([Field("o", "k", "loser", 1)]) == []  # a HAM loser is no entry at all
    assert (await first.others_since(await first.stream_head(), 10)).changes == []


async def test_the_head_is_the_last_number_taken(postgres_url):
    store = await _opened(postgres_url)
    try:
        assert await store.stream_head() == 0
        await store.merge([Field("h", "a", 1, 1), Field("h", "b", 1, 1)])
        assert await store.stream_head() == (await store.changes_since(0, 10)).cursor == 2
    finally:
        await store.close()


async def test_a_commit_that_accepted_fields_nudges_every_listener(two):
    first, second = two
    nudged = asyncio.Event()
    second.listen({STREAM_CHANNEL: nudged.set})
    await asyncio.wait_for(nudged.wait(), 10)  # the first nudge: whatever was missed before listening
    nudged.clear()
    assert await first.merge([Field("n", "k", 1, 5)]) != []
    await asyncio.wait_for(nudged.wait(), 10)
    nudged.clear()
    assert await first.merge([Field("n", "k", 1, 4)]) == []  # nothing accepted: no notification
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(nudged.wait(), 2.5)


async def test_a_database_at_schema_2_gains_the_writer_column(postgres_url):
    from gunrelay.storage.postgres import MIGRATIONS

    with psycopg.connect(postgres_url) as conn:
        conn.execute(MIGRATIONS[1])
        conn.execute(MIGRATIONS[2])
        conn.execute("CREATE TABLE schema_version (version integer NOT NULL)")
        conn.execute("INSERT INTO schema_version VALUES (2)")
        conn.execute("INSERT INTO fields VALUES ('\\x73'::bytea, '\\x6b'::bytea, '1', 5, nextval('stream_seq'))")
    store = await _opened(postgres_url)
    try:  # an entry from before the fleet has no writer: every process reads it as another's
        assert [c.soul for c in (await store.others_since(0, 10)).changes] == ["s"]
    finally:
        await store.close()


async def test_a_database_another_relay_keeps_is_refused_saying_whose_it_is(postgres_url):
    from gunrelay.storage.postgres import StoreMisconfigured

    first = PostgresStore(postgres_url, Protected(("~relayA", "_system")))
    await first.open()
    await first.close()
    again = PostgresStore(postgres_url, Protected(("~relayA", "_other_system_node")))  # the same relay, another system node
    await again.open()
    await again.close()
    stranger = PostgresStore(postgres_url, Protected(("~relayB", "_system")))
    with pytest.raises(StoreMisconfigured, match="store of relay relayA.*identity is relayB.*identity.json"):
        await stranger.open()


async def test_a_snapshot_in_the_database_is_whole_listed_restored_and_deleted(postgres_url):
    store = PostgresStore(postgres_url)
    await store.open()
    try:
        await store.merge([Field("room", "a", "1", 10), Field("room", "b", "2", 11), Field("other", "k", "x", 12)])
        stats, size = await store.snapshot_into_database("20261204T000000Z-x", 1000.0)
        assert (stats.souls, stats.fields) == (2, 3) and size == stats.bytes > 0
        assert await store.database_snapshots() == [("20261204T000000Z-x", 1000.0, size, 3)]
        with pytest.raises(StorageFailure):  # the same name again: refused whole, the first one intact
            await store.snapshot_into_database("20261204T000000Z-x", 2000.0)
        assert await store.database_snapshots() == [("20261204T000000Z-x", 1000.0, size, 3)]

        await store.merge([Field("room", "a", "changed", 20), Field("new", "k", "y", 21)])
        restored = await store.restore_fields_from_database_snapshot("20261204T000000Z-x")
        assert restored.fields == 3
        assert (await store.read(ReadQuery(soul="room")))["room"] == [("a", '"1"', 10), ("b", '"2"', 11)]
        assert (await store.read(ReadQuery(soul="new"))).get("new", []) == []
        assert await store.delete_database_snapshot("20261204T000000Z-x") is True
        assert await store.delete_database_snapshot("20261204T000000Z-x") is False
        assert await store.database_snapshots() == []
    finally:
        await store.close()
