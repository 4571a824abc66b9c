"""The relay's wall clock jumps (injected clocks, fake sockets): it reports the jump, refuses what
it cannot judge with an error (never a false ack), holds destructive time-based actions, and
comes back to normal when the clock is right again."""

import asyncio

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from fakes import Socket, put, settle

from gunrelay.core import sea
from gunrelay.core.errors import OperatorError
from gunrelay.server.control import ResetControl
from gunrelay.server.expiry import Expiry
from gunrelay.server.identity import Identity
from gunrelay.server.relay import Relay
from gunrelay.storage.base import ReadQuery
from gunrelay.storage.memory import MemoryStore

T0 = 1_800_000_000_000.0
HOUR = 3_600_000.0


class Clocks:
    """The relay's wall clock (which the test steps) and the monotonic one (which only advances)."""

    def __init__(self) -> None:
        self.true_ms = T0  # what the writers' clocks say
        self.step_ms = 0.0  # how far the relay's wall clock is off
        self.mono = 1000.0

    def wall(self) -> float:
        return self.true_ms + self.step_ms

    def advance(self, seconds: float) -> None:
        self.true_ms += seconds * 1000
        self.mono += seconds


@pytest.fixture
async def world():
    clocks = Clocks()
    store = MemoryStore()
    key = ec.generate_private_key(ec.SECP256R1())
    control = ResetControl(store, Identity(pub=sea.pub_of(key), epub=sea.pub_of(key), private_key=key), clock_ms=clocks.wall)
    relay = Relay(store, fence=control.fence, acknowledge=control.acknowledge, clock_ms=clocks.wall, monotonic=lambda: clocks.mono, clock_settle_s=600)
    control.connect_relay(relay)
    await control.start()
    expiry = Expiry(control, store, sweep_s=3600)
    await expiry.start()
    yield clocks, relay, control, expiry, store
    await expiry.stop()
    await control.stop()


async def reply(sock: Socket, msg_id: str) -> dict:
    for _ in range(50):
        await settle()
        for message in sock.messages():
            if message.get("@") == msg_id:
                return message
        await asyncio.sleep(0.005)
    raise AssertionError(f"no reply to {msg_id}")


async def test_a_clock_stepped_back_refuses_writes_with_an_error_and_holds_resets(world):
    clocks, relay, control, _, store = world
    writer = Socket(relay)
    writer.send(put("before", "chat/1", state=clocks.true_ms, text="hello"))
    assert (await reply(writer, "before"))["ok"] is True
    clocks.advance(2)
    clocks.step_ms = -HOUR  # the relay's clock is set an hour back
    relay.check_clock()
    assert relay.clock_watch.jumps == 1
    writer.send(put("during", "chat/1", state=clocks.true_ms, text="lost?"))
    refused = await reply(writer, "during")
    assert "ahead of the relay's clock" in refused["err"] and "ok" not in refused
    with pytest.raises(OperatorError, match="jumped -3600.0 s"):
        await control.issue("*")
    with pytest.raises(OperatorError, match="jumped"):
        await control.rotate("chat", "chat2", grace_s=60)
    assert control.resets == {} and not relay.fence  # nothing was fenced
    dry = await control.issue("*", dry_run=True)  # a dry run changes nothing, so it may run
    assert dry["dry_run"] is True
    clocks.advance(2)
    clocks.step_ms = 0.0  # NTP puts it right: a jump again
    relay.check_clock()
    writer.send(put("after", "chat/1", state=clocks.true_ms, text="back"))
    assert (await reply(writer, "after"))["ok"] is True
    stored = await store.read(ReadQuery(soul="chat/1"))
    assert [value for _, value, _ in stored["chat/1"]] == ['"back"']
    clocks.advance(601)
    relay.check_clock()
    assert (await control.issue("*"))["dry_run"] is False  # settled: resets run again


async def test_a_clock_stepped_forward_expires_nothing_and_refuses_instead_of_acking(world):
    clocks, relay, _, expiry, store = world
    await expiry.set("ephemeral", 3600)
    writer = Socket(relay)
    writer.send(put("fresh", "ephemeral/a", state=clocks.true_ms, text="minutes old"))
    assert (await reply(writer, "fresh"))["ok"] is True
    clocks.advance(2)
    clocks.step_ms = 2 * HOUR  # the relay's clock runs two hours ahead
    relay.check_clock()
    assert await expiry.sweep() == 0  # held: a wrong clock must not delete fresh data
    assert (await store.read(ReadQuery(soul="ephemeral/a")))["ephemeral/a"]
    writer.send(put("newer", "ephemeral/a", state=clocks.true_ms, text="now"))
    refused = await reply(writer, "newer")
    assert refused["err"].startswith("Expired") and "ok" not in refused  # refused, never a false ack
    clocks.advance(2)
    clocks.step_ms = 0.0
    relay.check_clock()
    writer.send(put("newest", "ephemeral/a", state=clocks.true_ms, text="right again"))
    assert (await reply(writer, "newest"))["ok"] is True
    reader = Socket(relay)
    reader.send({"#": "read", "get": {"#": "ephemeral/a"}})
    assert (await reply(reader, "read"))["put"]["ephemeral/a"]["text"] == "right again"
