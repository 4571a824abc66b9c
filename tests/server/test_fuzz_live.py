"""A bounded run of the live fuzzer (bench/fuzz_live.py runs a million frames against a relay
subprocess; this runs 20,000 against the in-process live relay, with the same generator and
checker from live_fuzz.py).

Every frame is classified by what the relay must answer (see live_fuzz' docstring); the run
fails on any unmet expectation: a missing or wrong error, a wrong or missing answer, a reply to a
message that must be dropped, a stall, a connection closed that should not be, a put answering
another peer's message passed on to it with fields that did not pass (or not passed on), a value
read back at the end that is not the newest acknowledged one or that a refused put carried,
/health not ok, or GET /-/api/peers failing or listing a pid no peer may be known by.

FUZZ_SEED in the environment picks another seed (the same generator, other frames).
"""

import os

import pytest
from fakes import TOKEN
from live_fuzz import KINDS, SCHEDULED, FuzzConfig, run_fuzz

FRAMES = 20_000
SEED = int(os.environ.get("FUZZ_SEED", "20000"))


@pytest.fixture
def relay_settings() -> dict:
    return {"max_messages_per_s": 0, "max_fields_per_s": 0}  # one fast client per connection, not a flood to refuse


async def test_twenty_thousand_generated_frames_get_exactly_their_answers(live_relay):
    cfg = FuzzConfig(
        ws_url=live_relay.ws,
        http_url=live_relay.http,
        frames=FRAMES,
        conns=4,
        window=32,
        seed=SEED,
        timeout_s=10.0,
        max_frame_bytes=64 * 1024,  # the live relay fixture's
        oversize=20,
        close_big=4,
        huge_100mb=0,  # test_bad_input.py sends one
        invalid_utf8=4,
        multibyte=12,
        admin_token=TOKEN,
        max_seconds=300.0,
    )
    summary = await run_fuzz(cfg)

    assert summary["violations"] == {}, summary["examples"]
    assert summary["stalls"] == 0 and summary["unexpected_closes"] == 0
    # and the warm-up's 7 (ids named like JavaScript internals), and the odd-pid hello before the peers API check
    assert summary["frames"] == FRAMES + 8
    assert summary["errors_received_as_expected"] == summary["errors_expected"] > 1000
    assert summary["frames_with_a_failed_expectation_by_class"] == {}
    assert summary["expected_closes"] == {"1009": 4, "1007": 4} and summary["reconnects"] == 8
    assert summary["final_readback"]["mismatches"] == 0 and summary["final_readback"]["unanswered"] == 0
    assert summary["final_readback"]["queries"] > 100
    assert summary["health"]["ok"] and summary["health"]["peers_api"] == 200
    passed_on = summary["puts_answering_another_peer"]
    assert passed_on.get("missing", 0) == 0 and passed_on.get("passed_on", 0) > 10 and passed_on.get("nothing_passed", 0) > 0, passed_on
    generated = set(summary["frames_by_kind"])
    wanted = {name for name, _ in KINDS} | {k for k in SCHEDULED if k != "huge_100mb"}
    assert wanted <= generated, wanted - generated
    classes = summary["frames_by_class"]
    assert min(classes["good"], classes["bad"], classes["mixed"], classes["silent"]) > 200
