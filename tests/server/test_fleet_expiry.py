"""TTL rules and reset acknowledgements across the fleet, with two processes' worth of objects
(``Process`` of test_fleet_control: reset control, bans, relay, control sync) on two PostgreSQL
stores of one database, plus each process's ``Expiry``: a rule set through one is in the other's
fence and list when the command returns; either can remove it; a sweep runs in one process at a
time; an acknowledgement recorded through one shows in the other's report, once."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import pytest

from gunrelay.core.graph import Field
from gunrelay.core.link import Link
from gunrelay.server.expiry import SWEEP_LEASE, Expiry
from gunrelay.storage.base import ReadQuery

from test_control import make_identity
from test_fleet_control import Process


class WithExpiry(Process):
    def __init__(self, url: str, identity):
        super().__init__(url, identity)
        self.expiry = Expiry(self.world.control, self.store, sweep_s=3600)

    async def start(self) -> None:
        await super().start()
        await self.expiry.start()

    async def stop(self) -> None:
        await self.expiry.stop()
        await super().stop()


@pytest.fixture
async def pair(postgres_url: str) -> AsyncIterator[tuple[WithExpiry, WithExpiry]]:
    url = postgres_url
    identity = make_identity()
    first, second = WithExpiry(url, identity), WithExpiry(url, identity)
    await first.start()
    await second.start()
    yield first, second
    await second.stop()
    await first.stop()


async def test_a_rule_set_through_one_is_the_others_when_set_returns_and_either_removes_it(pair):
    first, second = pair
    now = time.time() * 1000
    assert await first.expiry.set("tmp", 3600) == {"fleet_not_confirmed": []}
    assert second.expiry.rules == {"tmp": 3_600_000.0}  # no wait: set returned once the second applied it
    assert second.world.control.fence.blocks("tmp/x", now - 7_200_000, now) is not None
    assert await second.expiry.remove("tmp") == {"fleet_not_confirmed": []}  # a rule the second did not set
    assert first.expiry.rules == {} and first.world.control.fence.blocks("tmp/x", now - 7_200_000, now) is None
    assert await first.expiry.remove("tmp") is None  # gone everywhere: nothing left to remove


async def test_a_sweep_runs_in_one_process_at_a_time(pair):
    first, second = pair
    now = time.time() * 1000
    await first.store.merge([Field("tmp/a", "old", 1, now - 7_200_000), Field("tmp/a", "fresh", 2, now - 1000)])
    await first.expiry.set("tmp", 3600)
    release = await first.store.lease(SWEEP_LEASE)  # as if the first were sweeping now
    assert release is not None
    try:
        assert await second.expiry.sweep() == 0  # the second skips this round
        assert set(k for k, _, _ in (await second.store.read(ReadQuery(soul="tmp/a")))["tmp/a"]) == {"old", "fresh"}
    finally:
        await release()
    assert await second.expiry.sweep() == 1
    assert [k for k, _, _ in (await first.store.read(ReadQuery(soul="tmp/a")))["tmp/a"]] == ["fresh"]


async def test_an_ack_through_one_shows_in_the_others_report_once(pair):
    first, second = pair
    issued = await first.world.control.issue(scope="room", reason="test")
    reset_id = issued["record"]["reset_id"]
    peer = Link("link-on-second", "127.0.0.9", time.time())
    peer.pid = "gun-peer-1"
    assert second.world.control.acknowledge(peer, reset_id) is None
    await second.world.finish()  # the ack's write to the store
    await first.world.control.refresh_acks([reset_id])
    acked = first.world.control.describe(reset_id)["acknowledged"]
    assert [(a["peer_id"], a["pid"]) for a in acked] == [("link-on-second", "gun-peer-1")]
    assert first.world.control.acknowledged_peers(reset_id) == 1
    assert second.world.control.acknowledge(peer, reset_id) is None  # said again: still one
    await second.world.finish()
    await first.world.control.refresh_acks()
    assert len(await first.store.acks(reset_id)) == 1
    assert [h["acknowledgements"] for h in first.world.control.history() if h["record"]["reset_id"] == reset_id] == [1]
