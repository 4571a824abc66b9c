import pytest

from gunrelay.core import wire
from gunrelay.core.graph import (
    NODE_META,
    Field,
    InvalidGraph,
    check_value,
    fields_of_put,
    is_relation,
    node_states,
    relation,
    relation_target,
)


def node(soul, states, **values):
    return {"_": {"#": soul, ">": states}, **values}


def test_flattens_every_field_with_its_state():
    graph = {"a": node("a", {"x": 1, "y": 2.5}, x="hi", y={"#": "b"}), "b": node("b", {"z": 3}, z=None)}
    assert fields_of_put(graph) == [Field("a", "x", "hi", 1), Field("a", "y", {"#": "b"}, 2.5), Field("b", "z", None, 3)]


@pytest.mark.parametrize(
    "graph, fragment",
    [
        ({}, "empty"),
        ([], "must be an object"),
        ({"a": 5}, "not an object"),
        ({"a": {"x": 1}}, "no meta"),
        ({"a": {"_": {"#": "b", ">": {}}}}, "not its soul"),
        ({"a": {"_": {"#": "a"}}}, "no state map"),
        ({"a": node("a", {}, x=1)}, "has no state"),
        ({"a": node("a", {"x": "1"}, x=1)}, "non-numeric state"),
        ({"a": node("a", {"x": True}, x=1)}, "non-numeric state"),
        ({"a": node("a", {"x": 1}, x=[1])}, "arrays"),
        ({"a": node("a", {"x": 1}, x={"y": 1})}, "relations"),
        ({"a": node("a", {"x": 1}, x={"#": ""})}, "relations"),
        ({"#": "a", ".": "x", ":": 1, ">": 1}, "single-key"),
    ],
)
def test_refuses_what_gunjs_refuses(graph, fragment):
    with pytest.raises(InvalidGraph, match=fragment):
        fields_of_put(graph)


def test_one_bad_node_refuses_the_whole_put():
    with pytest.raises(InvalidGraph):
        fields_of_put({"ok": node("ok", {"x": 1}, x=1), "bad": node("bad", {}, y=2)})


def test_values():
    for good in (None, "", "s", True, False, 0, -1.5, {"#": "soul"}):
        assert check_value(good) is None
    for bad in (float("nan"), float("inf"), [], {"#": 1}, {"#": "a", "b": 1}, {"#": "x\ud800"}, object()):
        assert check_value(bad) is not None


def test_integers_beyond_2_53_become_the_double_javascript_would_hold():
    [field] = fields_of_put({"a": node("a", {"x": 2**60 + 1}, x=2**60 + 1)})
    assert field.state == float(2**60) and type(field.state) is float
    assert type(field.value) is float


def test_relations_and_node_states():
    assert relation("a/b") == {"#": "a/b"} and is_relation(relation("a/b")) and relation_target(relation("a/b")) == "a/b"
    for value in ({"#": ""}, {"#": "a", "x": 1}, {"#": 1}, "a", None, {}):
        assert not is_relation(value)
    node = wire.node("s", [("k", relation("t"), 7), ("n", None, 8)])
    assert node_states(node) == {"k": 7, "n": 8} and NODE_META in node
    assert [(f.key, f.value, f.state) for f in fields_of_put({"s": node})] == [("k", {"#": "t"}, 7), ("n", None, 8)]
