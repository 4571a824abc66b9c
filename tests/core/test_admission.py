"""Admission, the one path for incoming fields (the relay's puts, the client's pushes and replies)."""

import math

from gunrelay.core import admission
from gunrelay.core.fence import Fence, FenceRule, Protected
from gunrelay.core.graph import Field

NOW = 1_700_000_000_000
SPACE = "~" + "A" * 43 + "." + "B" * 43  # the relay's
OTHER = "~" + "C" * 43 + "." + "D" * 43  # somebody's


def test_each_rule_in_order_and_the_rest_ready_or_later():
    fence = Fence([FenceRule("r1", "room", NOW - 10)], protected=Protected((SPACE, "_system")))
    judged = admission.admit(
        [
            Field("room", "old", 1, NOW - 20),  # fenced
            Field("_system/reset", "x", 1, NOW),  # system space
            Field("far", "x", 1, NOW + 10_000),  # too far ahead
            Field(OTHER + "/profile", "x", "unsigned", NOW),  # SEA
            Field("soon", "x", 1, NOW + 500),  # waits for its state
            Field("room", "new", 1, NOW),
        ],
        NOW, fence, 1_000,
    )
    assert [kind for kind, _ in judged.refused] == [admission.FENCED, admission.SYSTEM_SPACE, admission.FUTURE_STATE, admission.SEA]
    assert "r1" in judged.refused[0][1] and [f.soul for f in judged.fenced] == ["room"]
    assert [f.key for f in judged.later] == ["x"] and [(f.soul, f.key) for f in judged.ready] == [("room", "new")]


def test_a_client_takes_the_relays_writes_into_the_protected_space():
    fence = Fence([FenceRule("all", "*", NOW)], protected=Protected(("_system",)))
    fields = [Field("_system/reset", "reason", "cleared", NOW - 5), Field("chat", "x", 1, NOW - 5)]
    relay = admission.admit(fields, NOW, fence, 1_000)
    assert sorted(kind for kind, _ in relay.refused) == [admission.FENCED, admission.SYSTEM_SPACE]
    client = admission.admit(fields, NOW, fence, 1_000, refuse_protected=False)
    # still out of the reset of '*' (protected), now taken; the fence still refuses the rest
    assert [f.soul for f in client.ready] == ["_system/reset"] and [k for k, _ in client.refused] == [admission.FENCED]


def test_without_a_bound_a_future_state_waits_and_is_never_refused():
    judged = admission.admit([Field("s", "k", 1, NOW + 10**9)], NOW, Fence(), math.inf)
    assert not judged.refused and len(judged.later) == 1
