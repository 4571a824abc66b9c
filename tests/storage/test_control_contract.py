"""The control contract: the relay's full stores run this same suite (the ``store`` fixture,
tests/storage/conftest.py); the graph contract runs over them as well."""

from gunrelay.core.bans import Ban
from gunrelay.core.fence import FenceRule, Protected
from gunrelay.core.graph import Field
from gunrelay.core.lex import parse
from gunrelay.core.reset import ResetRecord
from gunrelay.storage.base import AuditEntry, ReadQuery, ResetAck, Store
from test_graph_contract import ROOM  # the graph a prefix reset's closure is tested on

PROTECTED = Protected(("~relay", "_system"))


def record(reset_id="r1", scope="*", watermark=100.0, epoch=1, issued_at=None):
    return ResetRecord(
        reset_id=reset_id, scope=scope, epoch=epoch, watermark=watermark, issued_at=watermark if issued_at is None else issued_at
    )


def test_every_full_store_is_a_store(store):
    assert isinstance(store, Store)


# -- resets ------------------------------------------------------------------------------------


async def test_install_and_load_resets(store):
    await store.install_reset(record(), frozenset({"x/1"}))
    [held] = await store.load_resets()
    assert held.record == record() and held.souls == {"x/1"} and not held.purge_done
    await store.finish_purge("r1", 7)
    [held] = await store.load_resets()
    assert held.purge_done and held.purged == 7


async def test_the_purged_count_grows_with_each_batch(store):
    await store.merge([Field(f"s{i}", "k", 1, 10) for i in range(5)])
    await store.install_reset(record(), frozenset())
    rule = FenceRule("r1", "*", 100.0)
    assert await store.purge_batch(rule, PROTECTED, 2) == 2
    [held] = await store.load_resets()
    assert held.purged == 2 and not held.purge_done  # a crash now leaves the count of what is gone
    assert await store.purge_batch(rule, PROTECTED, 10) == 3
    [held] = await store.load_resets()
    assert held.purged == 5


async def test_an_installed_resets_purge_takes_the_closure_installed_with_it(store):
    await store.merge(ROOM)
    await store.install_reset(record("r2", "room"), frozenset({"rand1"}))
    rule = FenceRule("r2", "room", 100.0)  # the closure comes from the install, not the rule
    assert (await store.scope_report(rule, PROTECTED)).fields == 4
    while await store.purge_batch(rule, PROTECTED, 100):
        pass
    found = await store.read(ReadQuery(soul=None, soul_lex=parse({"*": ""})))
    assert sorted(found) == ["other", "people/bob", "roomy"]
    [held] = await store.load_resets()
    assert held.purged == 4


async def test_publication_is_remembered(store):
    await store.install_reset(record(), frozenset())
    await store.mark_published("r1")
    [held] = await store.load_resets()
    assert held.published


async def test_a_restore_supersedes_the_resets_issued_after_its_snapshot(store):
    await store.install_reset(record("old", issued_at=100.0), frozenset())
    await store.install_reset(record("new", issued_at=300.0), frozenset())
    await store.install_reset(record("restore", issued_at=400.0), frozenset())
    assert await store.supersede_resets(200.0, by="restore") == ["new"]
    assert await store.supersede_resets(200.0, by="restore") == []  # once
    held = {h.record.reset_id: h.superseded_by for h in await store.load_resets()}
    assert held == {"old": None, "new": "restore", "restore": None}


# -- acks, bans, TTL rules, audit ------------------------------------------------------------------


async def test_acks_are_kept_once_per_peer(store):
    ack = ResetAck("r1", "peer1", "127.0.0.1", "pid1", 5.0)
    await store.record_ack(ack)
    await store.record_ack(ResetAck("r1", "peer1", "127.0.0.1", "pid1", 9.0))
    await store.record_ack(ResetAck("r2", "peer2", "127.0.0.2", None, 6.0))
    assert await store.acks("r1") == [ack]


async def test_bans_persist(store):
    await store.save_ban(Ban("10.0.0.1", 100.0, "spam"))
    await store.save_ban(Ban("10.0.0.2", 200.0, ""))
    await store.save_ban(Ban("10.0.0.1", 300.0, "again"))
    await store.delete_ban("10.0.0.2")
    assert await store.load_bans() == [Ban("10.0.0.1", 300.0, "again")]


async def test_ttl_rules_persist(store):
    await store.save_ttl("tmp", 1000.0)
    await store.save_ttl("cache", 5.0)
    await store.save_ttl("tmp", 2000.0)
    await store.delete_ttl("cache")
    await store.delete_ttl("never-set")
    assert await store.load_ttls() == {"tmp": 2000.0}


async def test_stream_cursors_persist_and_never_go_back(store):
    assert await store.load_stream_cursors() == {}
    await store.save_stream_cursor("pubA", 10)
    await store.save_stream_cursor("pubB", 3)
    await store.save_stream_cursor("pubA", 7)  # an older page confirmed late: ignored
    await store.save_stream_cursor("pubB", 40)
    assert await store.load_stream_cursors() == {"pubA": 10, "pubB": 40}


async def test_the_audit_log_pages_newest_first_and_keeps_everything(store):
    ids = [await store.append_audit(AuditEntry(1000.0 + i, "admin", "127.0.0.1", f"act{i}", "{}", "ok", 200)) for i in range(7)]
    assert ids == sorted(ids) and len(set(ids)) == 7
    first, total = await store.audit_page(0, 3)
    assert total == 7 and [e.action for e in first] == ["act6", "act5", "act4"] and first[0].id == ids[-1]
    last, _ = await store.audit_page(6, 3)
    assert [e.action for e in last] == ["act0"] and last[0].who == "admin" and last[0].status == 200
    assert (await store.audit_page(7, 3)) == ([], 7)


async def test_console_sessions_are_kept_by_digest_expire_and_are_bounded(store):
    from gunrelay.storage.control import StoredSession

    def session(n: int, expires: float) -> StoredSession:
        return StoredSession(f"digest{n}", "admin", f"csrf{n}", expires, "127.0.0.1")

    await store.save_session(session(1, 200.0), keep=3, now=100.0)
    assert await store.load_session("digest1", now=150.0) == session(1, 200.0)
    assert await store.load_session("digest1", now=200.0) is None  # expired
    assert await store.load_session("nobody", now=150.0) is None
    await store.delete_session("digest1")
    assert await store.load_session("digest1", now=150.0) is None
    for n in range(2, 7):  # five more, each expiring later: only the newest three are kept
        await store.save_session(session(n, 1000.0 + n), keep=3, now=100.0)
    assert [n for n in range(2, 7) if await store.load_session(f"digest{n}", now=100.0) is not None] == [4, 5, 6]
    await store.save_session(session(7, 2000.0), keep=3, now=1005.5)  # the ones expired by now go
    assert [n for n in range(4, 8) if await store.load_session(f"digest{n}", now=1000.0) is not None] == [6, 7]
