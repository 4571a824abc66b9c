"""The storage contract: every backend runs this same suite."""

import pytest

from gunrelay.core.bans import Ban
from gunrelay.core.fence import FenceRule, Protected
from gunrelay.core.graph import Field
from gunrelay.core.lex import parse
from gunrelay.core.reset import ResetRecord
from gunrelay.storage.base import ReadQuery, ResetAck
from gunrelay.storage.memory import MemoryStore
from gunrelay.storage.sqlite import SQLiteStore


@pytest.fixture(params=["memory", "sqlite"])
async def store(request, tmp_path):
    backend = MemoryStore() if request.param == "memory" else SQLiteStore(tmp_path / "db.sqlite3")
    await backend.open()
    yield backend
    await backend.close()


async def test_merge_returns_what_changed_and_read_returns_it(store):
    accepted = await store.merge([Field("s", "a", "x", 1), Field("s", "b", {"#": "t"}, 2.5), Field("s", "c", None, 3)])
    assert len(accepted) == 3
    found = await store.read(ReadQuery(soul="s"))
    assert found == {"s": [("a", '"x"', 1), ("b", '{"#":"t"}', 2.5), ("c", "null", 3)]}


async def test_ham_against_stored_state(store):
    await store.merge([Field("s", "k", "b", 10)])
    assert await store.merge([Field("s", "k", "z", 9)]) == []  # historical
    assert await store.merge([Field("s", "k", "a", 10)]) == []  # equal state, lower value
    assert await store.merge([Field("s", "k", "b", 10)]) == []  # identical
    assert await store.merge([Field("s", "k", "c", 10)]) == [Field("s", "k", "c", 10)]
    assert (await store.read(ReadQuery(soul="s")))["s"] == [("k", '"c"', 10)]


async def test_a_tombstone_is_a_value_that_keeps_its_state(store):
    await store.merge([Field("s", "k", "v", 10)])
    await store.merge([Field("s", "k", None, 20)])
    assert await store.merge([Field("s", "k", "stale", 15)]) == []
    assert (await store.read(ReadQuery(soul="s")))["s"] == [("k", "null", 20)]


async def test_fields_of_one_merge_apply_in_order(store):
    accepted = await store.merge([Field("s", "k", "a", 1), Field("s", "k", "b", 2), Field("s", "k", "old", 0)])
    assert [f.value for f in accepted] == ["a", "b"]


async def test_key_queries_and_budget(store):
    await store.merge([Field("lex", k, "v-" + k, 1) for k in ("apple", "apricot", "banana", "cherry")])
    one = await store.read(ReadQuery(soul="lex", key=parse("banana")))
    assert one == {"lex": [("banana", '"v-banana"', 1)]}
    assert await store.read(ReadQuery(soul="lex", key=parse("nope"))) == {}
    prefix = await store.read(ReadQuery(soul="lex", key=parse({"*": "ap"})))
    assert [r[0] for r in prefix["lex"]] == ["apple", "apricot"]
    rng = await store.read(ReadQuery(soul="lex", key=parse({">": "apricot", "<": "banana"})))
    assert [r[0] for r in rng["lex"]] == ["apricot", "banana"]
    rev = await store.read(ReadQuery(soul="lex", key=parse({"*": "", "-": True})))
    assert [r[0] for r in rev["lex"]] == ["cherry", "banana", "apricot", "apple"]
    # 'v-apple' is 7 long: the budget of 10 is crossed by the second item, which is still sent
    cut = await store.read(ReadQuery(soul="lex", budget=10))
    assert [r[0] for r in cut["lex"]] == ["apple", "apricot"]


async def test_soul_queries(store):
    await store.merge([Field(s, "k", 1, 1) for s in ("room/a", "room/b", "other")])
    found = await store.read(ReadQuery(soul=None, soul_lex=parse({"*": "room/"})))
    assert sorted(found) == ["room/a", "room/b"]


async def test_missing_soul(store):
    assert await store.read(ReadQuery(soul="nothing")) == {}


async def test_values_round_trip_exactly(store):
    values = ["\ud800 lone", "quote \" and \\ and \n", "\U0001f600", 0.1, 1e-7, 2**53, -0.0, True, "x" * 65536]
    await store.merge([Field("v", str(i), v, 1700000000000.001) for i, v in enumerate(values)])
    rows = (await store.read(ReadQuery(soul="v")))["v"]
    from gunrelay.storage.base import decode_value

    assert {int(k): decode_value(v) for k, v, _ in rows} == dict(enumerate(values))
    assert {s for _, _, s in rows} == {1700000000000.001}


async def test_stats(store):
    await store.merge([Field("a", "k", "v", 1), Field("b", "k", "v", 1), Field("b", "j", "v", 1)])
    stats = await store.stats()
    assert (stats.souls, stats.fields) == (2, 3) and stats.bytes > 0


# -- the reset control plane -------------------------------------------------------------------

PROTECTED = Protected(("~relay", "_system"))


def record(reset_id="r1", scope="*", watermark=100.0, epoch=1):
    return ResetRecord(reset_id=reset_id, scope=scope, epoch=epoch, watermark=watermark, issued_at=watermark)


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


async def test_purge_of_everything_spares_system_souls_and_newer_fields(store):
    await store.merge(
        [Field("a", "old", 1, 50), Field("a", "tie", 1, 100), Field("a", "new", 1, 150), Field("b/c", "k", 1, 10)]
        + [Field("~relay", "k", 1, 10), Field("~relay/reset", "k", 1, 10), Field("_system/config", "k", 1, 10)]
    )
    rule = FenceRule("r1", "*", 100.0)
    report = await store.scope_report(rule, PROTECTED)
    assert (report.souls, report.fields) == (2, 3) and report.bytes > 0
    deleted = 0
    while (batch := await store.purge_batch(rule, PROTECTED, 2)) > 0:
        assert batch <= 2
        deleted += batch
    assert deleted == 3
    left = {(s, r[0]) for s, rows in (await store.read(ReadQuery(soul=None, soul_lex=parse({"*": ""})))).items() for r in rows}
    assert left == {("a", "new"), ("~relay", "k"), ("~relay/reset", "k"), ("_system/config", "k")}


async def test_prefix_purge_takes_the_prefix_and_its_closure_only(store):
    await store.merge(
        [
            Field("room", "msgs", {"#": "room/msgs"}, 10),
            Field("room/msgs", "m1", {"#": "rand1"}, 10),
            Field("rand1", "text", "hi", 10),
            Field("rand1", "author", {"#": "people/bob"}, 10),
            Field("people/bob", "name", "bob", 10),
            Field("roomy", "k", "not in room/", 10),
            Field("other", "link", {"#": "room"}, 10),
        ]
    )
    souls = await store.reachable_souls("room", PROTECTED, 1000)
    assert souls == {"rand1", "people/bob"}
    rule = FenceRule("r2", "room", 100.0, souls=frozenset({"rand1"}))
    await store.install_reset(record("r2", "room"), frozenset({"rand1"}))
    while await store.purge_batch(rule, PROTECTED, 100):
        pass
    found = await store.read(ReadQuery(soul=None, soul_lex=parse({"*": ""})))
    assert sorted(found) == ["other", "people/bob", "roomy"]


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


async def test_publication_is_remembered(store):
    await store.install_reset(record(), frozenset())
    await store.mark_published("r1")
    [held] = await store.load_resets()
    assert held.published


async def test_the_audit_log_pages_newest_first_and_keeps_everything(store):
    from gunrelay.storage.base import AuditEntry

    ids = [await store.append_audit(AuditEntry(1000.0 + i, "admin", "127.0.0.1", f"act{i}", "{}", "ok", 200)) for i in range(7)]
    assert ids == sorted(ids) and len(set(ids)) == 7
    first, total = await store.audit_page(0, 3)
    assert total == 7 and [e.action for e in first] == ["act6", "act5", "act4"] and first[0].id == ids[-1]
    last, _ = await store.audit_page(6, 3)
    assert [e.action for e in last] == ["act0"] and last[0].who == "admin" and last[0].status == 200
    assert (await store.audit_page(7, 3)) == ([], 7)
