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


async def _all_pages(store, query):
    """Read page by page as the relay does, carrying the budget over; (pages, rows in order)."""
    from dataclasses import replace

    pages, rows = 0, []
    for _ in range(10_000):  # bounded
        page = await store.read_page(query)
        pages += 1
        rows += [(soul, row[0]) for soul, soul_rows in page.souls.items() for row in soul_rows]
        if page.resume is None:
            return pages, rows
        budget = None if query.budget is None else query.budget - page.spent
        if budget is not None and budget <= 0:
            return pages, rows
        query = replace(query, after=page.resume, budget=budget, max_fields=query.max_fields - page.fields)
    raise AssertionError("the read never ended")


@pytest.mark.parametrize("reverse", [False, True])
async def test_pages_together_give_exactly_the_whole_answer(store, reverse):
    souls = [f"room/{i:03d}" for i in range(40)] + ["other/1", "roomy"]
    await store.merge([Field(soul, f"k{j:02d}", "x" * 50, 1) for soul in souls for j in range(12)])
    whole_query = ReadQuery(soul=None, soul_lex=parse({"*": "room/", "-": reverse}), key=parse({"*": "k", "-": reverse}))
    whole = await store.read(whole_query)
    expected = [(soul, row[0]) for soul, rows in whole.items() for row in rows]
    assert len(expected) == 40 * 12 and len(set(expected)) == len(expected)
    assert [s for s, _ in expected][0] == ("room/039" if reverse else "room/000")
    for page_bytes, scan_limit in ((1, None), (700, None), (None, 5), (2000, 37)):
        pages, rows = await _all_pages(store, replace_query(whole_query, page_bytes=page_bytes, scan_limit=scan_limit))
        assert rows == expected, (page_bytes, scan_limit)
        assert pages > 1


async def test_one_big_node_in_pages_with_the_budget_carried_over(store):
    await store.merge([Field("big", f"{i:05d}", "v" * 100, 1) for i in range(2000)])
    pages, rows = await _all_pages(store, ReadQuery(soul="big", page_bytes=16 * 1024))
    assert [k for _, k in rows] == [f"{i:05d}" for i in range(2000)] and 10 < pages < 30
    # a budget of 1,000 is crossed by the tenth value of 100: ten fields, across pages of about two
    pages, rows = await _all_pages(store, ReadQuery(soul="big", budget=1000, page_bytes=250))
    assert [k for _, k in rows] == [f"{i:05d}" for i in range(10)] and pages >= 5
    pages, rows = await _all_pages(store, ReadQuery(soul="big", max_fields=7, page_bytes=250))
    assert len(rows) == 7


async def test_a_page_looks_at_a_bounded_number_of_rows_even_when_none_match(store):
    await store.merge([Field(f"s{i:04d}", "k", 1, 1) for i in range(300)])
    page = await store.read_page(ReadQuery(soul=None, soul_lex=parse({">": "s"}), key=parse("absent"), scan_limit=50))
    assert page.souls == {} and page.resume is not None
    pages, rows = await _all_pages(store, ReadQuery(soul=None, soul_lex=parse({">": "s"}), key=parse("absent"), scan_limit=50))
    assert rows == [] and pages >= 6


def replace_query(query, **changes):
    from dataclasses import replace

    return replace(query, **changes)
