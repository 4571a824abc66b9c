"""Fixtures for the Python GUN client suite: real relays (ours and the reference Node relay),
and fresh peers that are always closed."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))

from interop_support import Relay, rid

from gunrelay.client.peer import GunPeer

TARGETS = ["ours", "node"]


@pytest.fixture(scope="module", params=TARGETS)
def relay(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    """One relay of each kind per test module; tests keep apart by using unique souls."""
    base = tmp_path_factory.mktemp(f"relay-{request.param}")
    r = Relay(base / "data", base / "logs", target=request.param)
    r.start()
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture(params=TARGETS)
def fresh_relay(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Relay]:
    """A relay of its own (to stop and restart), not started yet."""
    r = Relay(tmp_path / "data", tmp_path / "logs", target=request.param)
    try:
        yield r
    finally:
        r.stop()


@pytest.fixture
def our_relay(tmp_path: Path) -> Iterator[Relay]:
    r = Relay(tmp_path / "data", tmp_path / "logs", target="ours")
    r.start()
    try:
        yield r
    finally:
        r.stop()


class Peers:
    """Makes GunPeers and closes every one at teardown."""

    def __init__(self) -> None:
        self.made: list[GunPeer] = []

    def __call__(self, **options: Any) -> GunPeer:
        options.setdefault("ack_timeout", 3.0)
        options.setdefault("get_timeout", 3.0)
        peer = GunPeer(**options)
        self.made.append(peer)
        return peer

    def durable(self, path: Path, **options: Any) -> GunPeer:
        options.setdefault("ack_timeout", 3.0)
        options.setdefault("get_timeout", 3.0)
        peer = GunPeer.durable(path, **options)
        self.made.append(peer)
        return peer

    async def close(self) -> None:
        for peer in self.made:
            await peer.close()


@pytest.fixture
async def peers() -> AsyncIterator[Peers]:
    made = Peers()
    try:
        yield made
    finally:
        await made.close()


@pytest.fixture
def soul(request: pytest.FixtureRequest) -> str:
    return f"py-{request.node.name[:30]}-{rid()}".replace("[", "-").replace("]", "")
