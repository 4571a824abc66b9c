import math

from gunrelay.core.fence import Fence, FenceRule, Protected, in_prefix

PROTECTED = Protected(("~relaypub", "_whisperz_system"))


def test_no_rules_blocks_nothing():
    assert Fence().blocks("anything", 0, now=1) is None and not Fence()


def test_everything_scope_spares_system_souls_and_ties_go_to_the_reset():
    rule = FenceRule("r1", "*", 100.0)
    fence = Fence([rule], PROTECTED)
    assert fence.blocks("chat/room", 99.999, now=500) is rule
    assert fence.blocks("chat/room", 100.0, now=500) is rule  # at W: the data loses
    assert fence.blocks("chat/room", 100.001, now=500) is None
    assert fence.blocks("~relaypub", 1, now=500) is None
    assert fence.blocks("~relaypub/reset", 1, now=500) is None
    assert fence.blocks("_whisperz_system/config", 1, now=500) is None
    assert fence.blocks("~relaypubX", 1, now=500) is rule


def test_prefix_scope_with_its_closure():
    rule = FenceRule("r2", "room", 100.0, souls=frozenset({"l2k3j4random"}))
    fence = Fence([rule], PROTECTED)
    assert fence.blocks("room", 50, now=0) is rule
    assert fence.blocks("room/msgs", 50, now=0) is rule
    assert fence.blocks("l2k3j4random", 50, now=0) is rule
    assert fence.blocks("roomy", 50, now=0) is None and fence.blocks("other", 50, now=0) is None


def test_rotation_is_read_only_and_ttl_moves_with_time():
    fence = Fence([FenceRule("rot", "old", math.inf), FenceRule("ttl:tmp", "tmp", ttl_ms=1000)], PROTECTED)
    assert fence.blocks("old/x", 10**15, now=0) is not None
    assert fence.blocks("tmp/x", 4000, now=5000) is not None  # older than now - ttl
    assert fence.blocks("tmp/x", 4500, now=5000) is None
    assert fence.blocks("tmp/x", 4500, now=6000) is not None  # the same field expires later


def test_remove_and_prefix_rule():
    fence = Fence([FenceRule("r", "a", 10.0)])
    fence.remove("r")
    assert fence.blocks("a", 1, now=0) is None
    assert in_prefix("a/b", "a") and in_prefix("a", "a") and not in_prefix("ab", "a")


def test_a_read_only_rule_refuses_writes_but_not_reads():
    fence = Fence([FenceRule("rot", "old", math.inf, serves=True)])
    assert fence.blocks("old/x", 5, now=0) is not None
    assert fence.blocks("old/x", 5, now=0, serving=True) is None
    assert Fence([FenceRule("r", "a", 10.0)]).blocks("a", 5, now=0, serving=True) is not None


def test_ceiling_bounds_every_rule_and_version_counts_changes():
    fence = Fence([FenceRule("r", "*", 100.0), FenceRule("t", "tmp", ttl_ms=50)])
    assert fence.ceiling(now=120) == 100.0 and fence.ceiling(now=500) == 450
    assert fence.blocks("tmp/x", 449, now=500) is not None and fence.blocks("x", 451, now=500) is None
    before = fence.version
    fence.remove("t")
    assert fence.version == before + 1 and fence.ceiling(now=500) == 100.0
    fence.remove("missing")
    assert fence.version == before + 1
    assert Fence().ceiling(now=0) == -math.inf
