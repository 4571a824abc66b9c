"""The graph contract: every graph store runs this same suite, the relay's full stores included
(the ``graph`` fixture, tests/storage/conftest.py)."""

import pytest

from gunrelay.core.fence import FenceRule, Protected
from gunrelay.core.graph import Field
from gunrelay.core.lex import parse
from gunrelay.storage.graph import GraphStore, ReadQuery


async def test_merge_returns_what_changed_and_read_returns_it(graph):
    accepted = await graph.merge([Field("s", "a", "x", 1), Field("s", "b", {"#": "t"}, 2.5), Field("s", "c", None, 3)])
    assert len(accepted) == 3
    found = await graph.read(ReadQuery(soul="s"))
    assert found == {"s": [("a", '"x"', 1), ("b", '{"#":"t"}', 2.5), ("c", "null", 3)]}


async def test_ham_against_stored_state(graph):
    await graph.merge([Field("s", "k", "b", 10)])
    assert await graph.merge([Field("s", "k", "z", 9)]) == []  # historical
    assert await graph.merge([Field("s", "k", "a", 10)]) == []  # equal state, lower value
    assert await graph.merge([Field("s", "k", "b", 10)]) == []  # identical
    assert await graph.merge([Field("s", "k", "c", 10)]) == [Field("s", "k", "c", 10)]
    assert (await graph.read(ReadQuery(soul="s")))["s"] == [("k", '"c"', 10)]


async def test_a_tombstone_is_a_value_that_keeps_its_state(graph):
    await graph.merge([Field("s", "k", "v", 10)])
    await graph.merge([Field("s", "k", None, 20)])
    assert await graph.merge([Field("s", "k", "stale", 15)]) == []
    assert (await graph.read(ReadQuery(soul="s")))["s"] == [("k", "null", 20)]


async def test_fields_of_one_merge_apply_in_order(graph):
    accepted = await graph.merge([Field("s", "k", "a", 1), Field("s", "k", "b", 2), Field("s", "k", "old", 0)])
    assert [f.value for f in accepted] == ["a", "b"]


async def test_key_queries_and_budget(graph):
    await graph.merge([Field("lex", k, "v-" + k, 1) for k in ("apple", "apricot", "banana", "cherry")])
    one = await graph.read(ReadQuery(soul="lex", key=parse("banana")))
    assert one == {"lex": [("banana", '"v-banana"', 1)]}
    assert await graph.read(ReadQuery(soul="lex", key=parse("nope"))) == {}
    prefix = await graph.read(ReadQuery(soul="lex", key=parse({"*": "ap"})))
    assert [r[0] for r in prefix["lex"]] == ["apple", "apricot"]
    rng = await graph.read(ReadQuery(soul="lex", key=parse({">": "apricot", "<": "banana"})))
    assert [r[0] for r in rng["lex"]] == ["apricot", "banana"]
    rev = await graph.read(ReadQuery(soul="lex", key=parse({"*": "", "-": True})))
    assert [r[0] for r in rev["lex"]] == ["cherry", "banana", "apricot", "apple"]
    # 'v-apple' is 7 long: the budget of 10 is crossed by the second item, which is still sent
    cut = await graph.read(ReadQuery(soul="lex", budget=10))
    assert [r[0] for r in cut["lex"]] == ["apple", "apricot"]


async def test_soul_queries(graph):
    await graph.merge([Field(s, "k", 1, 1) for s in ("room/a", "room/b", "other")])
    found = await graph.read(ReadQuery(soul=None, soul_lex=parse({"*": "room/"})))
    assert sorted(found) == ["room/a", "room/b"]


async def test_missing_soul(graph):
    assert await graph.read(ReadQuery(soul="nothing")) == {}


async def test_values_round_trip_exactly(graph):
    values = ["\ud800 lone", "quote \" and \\ and \n", "\U0001f600", 0.1, 1e-7, 2**53, -0.0, True, "x" * 65536]
    await graph.merge([Field("v", str(i), v, 1700000000000.001) for i, v in enumerate(values)])
    rows = (await graph.read(ReadQuery(soul="v")))["v"]
    from gunrelay.storage.base import decode_value

    assert {int(k): decode_value(v) for k, v, _ in rows} == dict(enumerate(values))
    assert {s for _, _, s in rows} == {1700000000000.001}


async def test_stats(graph):
    await graph.merge([Field("a", "k", "v", 1), Field("b", "k", "v", 1), Field("b", "j", "v", 1)])
    stats = await graph.stats()
    assert (stats.souls, stats.fields) == (2, 3) and stats.bytes > 0


def test_every_backend_is_a_graph_store(graph):
    assert isinstance(graph, GraphStore)


async def test_probe_is_a_write_that_succeeds(graph):
    await graph.probe()
    assert graph.health.ok


# -- purges under fence rules: a graph store takes a prefix's closure from the rule itself ----------

PROTECTED = Protected(("~relay", "_system"))
EVERYTHING = ReadQuery(soul=None, soul_lex=parse({"*": ""}))


async def _left(graph):
    return {(s, r[0]) for s, rows in (await graph.read(EVERYTHING)).items() for r in rows}


async def test_purge_of_everything_spares_system_souls_and_newer_fields(graph):
    await graph.merge(
        [Field("a", "old", 1, 50), Field("a", "tie", 1, 100), Field("a", "new", 1, 150), Field("b/c", "k", 1, 10)]
        + [Field("~relay", "k", 1, 10), Field("~relay/reset", "k", 1, 10), Field("_system/config", "k", 1, 10)]
    )
    rule = FenceRule("r1", "*", 100.0)
    report = await graph.scope_report(rule, PROTECTED)
    assert (report.souls, report.fields) == (2, 3) and report.bytes > 0
    deleted = 0
    while (batch := await graph.purge_batch(rule, PROTECTED, 2)) > 0:
        assert batch <= 2
        deleted += batch
    assert deleted == 3
    assert await _left(graph) == {("a", "new"), ("~relay", "k"), ("~relay/reset", "k"), ("_system/config", "k")}


ROOM = [
    Field("room", "msgs", {"#": "room/msgs"}, 10),
    Field("room/msgs", "m1", {"#": "rand1"}, 10),
    Field("rand1", "text", "hi", 10),
    Field("rand1", "author", {"#": "people/bob"}, 10),
    Field("people/bob", "name", "bob", 10),
    Field("roomy", "k", "not in room/", 10),
    Field("other", "link", {"#": "room"}, 10),
]


async def test_reachable_souls_follow_relations_out_of_the_prefix(graph):
    await graph.merge(ROOM)
    assert await graph.reachable_souls("room", PROTECTED, 1000) == {"rand1", "people/bob"}


async def test_prefix_purge_takes_the_prefix_and_the_rules_closure_only(graph):
    await graph.merge(ROOM)
    rule = FenceRule("r2", "room", 100.0, souls=frozenset({"rand1"}))
    report = await graph.scope_report(rule, PROTECTED)
    assert (report.souls, report.fields) == (3, 4)  # room, room/msgs and the closure's rand1
    assert await graph.purge(rule, PROTECTED, batch=100) == 4
    assert sorted(s for s, _ in await _left(graph)) == ["other", "people/bob", "roomy"]


async def test_closure_souls_of_any_text_are_purged_exactly(graph):
    odd = ["nul\x00inside", "nul\x00", "\U0001f600 emoji", 'quote " and \\', "room0", "room/../x"]
    await graph.merge([Field(soul, "k", 1, 10) for soul in odd] + [Field("nul", "k", 1, 10), Field("\U0001f600", "k", 1, 10)])
    rule = FenceRule("r5", "room", 100.0, souls=frozenset(odd))
    assert (await graph.scope_report(rule, PROTECTED)).fields == len(odd)
    assert await graph.purge(rule, PROTECTED) == len(odd)
    assert await _left(graph) == {("nul", "k"), ("\U0001f600", "k")}


async def test_a_prefix_rule_without_a_closure_takes_the_prefix_only(graph):
    await graph.merge(ROOM)
    assert await graph.purge(FenceRule("r3", "room", 100.0), PROTECTED) == 2
    assert {s for s, _ in await _left(graph)} == {"rand1", "people/bob", "roomy", "other"}


async def test_purge_goes_in_batches_and_reports_its_running_total(graph):
    await graph.merge([Field(f"s{i}", "k", 1, 10) for i in range(7)])
    heard: list[int] = []
    assert await graph.purge(FenceRule("r4", "*", 100.0), PROTECTED, batch=3, progress=heard.append) == 7
    assert heard == [3, 6, 7] and await _left(graph) == set()


async def test_a_ttl_rule_purges_what_is_older_than_its_ttl(graph):
    import time

    now = time.time() * 1000
    await graph.merge([Field("tmp/a", "old", 1, now - 60_000), Field("tmp/a", "fresh", 1, now), Field("keep", "old", 1, now - 60_000)])
    assert await graph.purge(FenceRule("ttl:tmp", "tmp", ttl_ms=10_000), PROTECTED) == 1
    assert await _left(graph) == {("tmp/a", "fresh"), ("keep", "old")}


# -- whole-graph copies ----------------------------------------------------------------------------


async def test_a_snapshot_restores_the_graph_as_it_was(graph, tmp_path):
    await graph.merge([Field("a", "k", "v1", 1), Field("b", "k", None, 2)])
    taken = await graph.snapshot_to(tmp_path / "snap")
    assert (taken.souls, taken.fields) == (2, 2)
    await graph.merge([Field("a", "k", "v2", 3), Field("c", "k", "new", 3)])
    restored = await graph.restore_fields_from(tmp_path / "snap")
    assert (restored.souls, restored.fields) == (2, 2)
    assert await graph.read(EVERYTHING) == {"a": [("k", '"v1"', 1)], "b": [("k", "null", 2)]}


async def _all_pages(graph, query):
    """Read page by page as the relay does, carrying the budget over; (pages, rows in order)."""
    from dataclasses import replace

    pages, rows = 0, []
    for _ in range(10_000):  # bounded
        page = await graph.read_page(query)
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
async def test_pages_together_give_exactly_the_whole_answer(graph, reverse):
    souls = [f"room/{i:03d}" for i in range(40)] + ["other/1", "roomy"]
    await graph.merge([Field(soul, f"k{j:02d}", "x" * 50, 1) for soul in souls for j in range(12)])
    whole_query = ReadQuery(soul=None, soul_lex=parse({"*": "room/", "-": reverse}), key=parse({"*": "k", "-": reverse}))
    whole = await graph.read(whole_query)
    expected = [(soul, row[0]) for soul, rows in whole.items() for row in rows]
    assert len(expected) == 40 * 12 and len(set(expected)) == len(expected)
    assert [s for s, _ in expected][0] == ("room/039" if reverse else "room/000")
    for page_bytes, scan_limit in ((1, None), (700, None), (None, 5), (2000, 37)):
        pages, rows = await _all_pages(graph, replace_query(whole_query, page_bytes=page_bytes, scan_limit=scan_limit))
        assert rows == expected, (page_bytes, scan_limit)
        assert pages > 1


async def test_one_big_node_in_pages_with_the_budget_carried_over(graph):
    await graph.merge([Field("big", f"{i:05d}", "v" * 100, 1) for i in range(2000)])
    pages, rows = await _all_pages(graph, ReadQuery(soul="big", page_bytes=16 * 1024))
    assert [k for _, k in rows] == [f"{i:05d}" for i in range(2000)] and 10 < pages < 30
    # a budget of 1,000 is crossed by the tenth value of 100: ten fields, across pages of about two
    pages, rows = await _all_pages(graph, ReadQuery(soul="big", budget=1000, page_bytes=250))
    assert [k for _, k in rows] == [f"{i:05d}" for i in range(10)] and pages >= 5
    pages, rows = await _all_pages(graph, ReadQuery(soul="big", max_fields=7, page_bytes=250))
    assert len(rows) == 7


async def test_a_page_looks_at_a_bounded_number_of_rows_even_when_none_match(graph):
    await graph.merge([Field(f"s{i:04d}", "k", 1, 1) for i in range(300)])
    page = await graph.read_page(ReadQuery(soul=None, soul_lex=parse({">": "s"}), key=parse("absent"), scan_limit=50))
    assert page.souls == {} and page.resume is not None
    pages, rows = await _all_pages(graph, ReadQuery(soul=None, soul_lex=parse({">": "s"}), key=parse("absent"), scan_limit=50))
    assert rows == [] and pages >= 6


def replace_query(query, **changes):
    from dataclasses import replace

    return replace(query, **changes)


# -- the change stream: what merge accepted, numbered, one entry per field (graph.py) ----------------


async def _stream(graph, cursor=0, limit=1000):
    """Every entry after ``cursor`` as (soul, key, value JSON, state), read in pages of ``limit``; and the last cursor."""
    out = []
    for _ in range(10_000):  # bounded
        page = await graph.changes_since(cursor, limit)
        assert len(page.changes) <= limit
        assert [c.seq for c in page.changes] == sorted({c.seq for c in page.changes})
        assert all(c.seq > cursor for c in page.changes)
        out += [(c.soul, c.key, c.value, c.state) for c in page.changes]
        if not page.changes:
            assert page.cursor == cursor
            return out, cursor
        cursor = page.cursor
    raise AssertionError("the stream never ended")


async def test_the_stream_holds_what_merges_accepted_in_order(graph):
    assert await _stream(graph) == ([], 0)
    await graph.merge([Field("s", "a", "x", 1), Field("t", "b", {"#": "s"}, 2)])
    await graph.merge([Field("s", "a", "older", 0), Field("u", "c", None, 3)])  # the loser is not a change
    changes, cursor = await _stream(graph, limit=1)
    assert changes == [("s", "a", '"x"', 1), ("t", "b", '{"#":"s"}', 2), ("u", "c", "null", 3)]
    await graph.merge([Field("v", "d", 1.5, 4)])
    more, next_cursor = await _stream(graph, cursor)
    assert more == [("v", "d", "1.5", 4)] and next_cursor > cursor
    assert (await graph.changes_since(cursor, 0)).changes == []


async def test_a_field_changed_again_moves_to_the_end_with_its_new_value_only(graph):
    await graph.merge([Field("s", "a", "first", 1), Field("s", "b", "b", 1)])
    first = await graph.changes_since(0, 100)
    await graph.merge([Field("s", "a", "second", 2)])
    changes, _ = await _stream(graph)
    assert changes == [("s", "b", '"b"', 1), ("s", "a", '"second"', 2)]  # kept: the latest change per field
    after = await graph.changes_since(first.cursor, 100)
    assert [(c.soul, c.key, c.value) for c in after.changes] == [("s", "a", '"second"')]
    assert after.changes[0].seq > max(c.seq for c in first.changes)


async def test_a_reader_behind_gets_each_field_once_at_its_current_value(graph):
    for state in range(1, 6):
        await graph.merge([Field("s", "k", f"v{state}", state), Field("other", str(state), state, state)])
    changes, _ = await _stream(graph, limit=2)
    assert [c for c in changes if c[0] == "s"] == [("s", "k", '"v5"', 5)]
    assert len(changes) == 6


async def test_purged_fields_leave_the_stream_and_numbers_are_never_reused(graph):
    await graph.merge([Field("keep", "k", 1, 10), Field("room/a", "k", 1, 10)])
    _, cursor = await _stream(graph)  # a reader has seen both, the highest number included
    assert await graph.purge(FenceRule("r1", "room", 100.0), PROTECTED) == 1
    changes, _ = await _stream(graph)
    assert changes == [("keep", "k", "1", 10)]  # a fenced field is never handed out
    await graph.merge([Field("new", "k", 2, 20)])
    assert (await _stream(graph, cursor))[0] == [("new", "k", "2", 20)]  # not hidden behind the reader's cursor


async def test_a_restore_is_new_to_every_reader(graph, tmp_path):
    await graph.merge([Field("a", "k", "v1", 1), Field("b", "k", "v1", 1)])
    await graph.snapshot_to(tmp_path / "snap")
    await graph.merge([Field("a", "k", "v2", 2)])
    _, cursor = await _stream(graph)
    await graph.restore_fields_from(tmp_path / "snap")
    changes, _ = await _stream(graph, cursor)
    assert sorted(changes) == [("a", "k", '"v1"', 1), ("b", "k", '"v1"', 1)]
    assert sorted((await _stream(graph))[0]) == sorted(changes)


async def test_a_page_from_any_cursor_is_the_next_entries_in_order(graph):
    for i in range(40):
        await graph.merge([Field(f"s{i % 10}", "k", i, i)])  # ten fields, each changed four times
    whole = (await graph.changes_since(0, 1000)).changes
    assert [c.soul for c in whole] == [f"s{i}" for i in range(10)] and [c.value for c in whole] == [str(30 + i) for i in range(10)]
    numbers = [c.seq for c in whole]
    for cursor in range(0, numbers[-1] + 2):
        page = await graph.changes_since(cursor, 3)
        expected = [c for c in whole if c.seq > cursor][:3]
        assert page.changes == expected, cursor
        assert page.cursor == (expected[-1].seq if expected else cursor)
