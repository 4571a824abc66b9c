"""Who is subscribed to what, and so who receives an accepted write.

A get is a subscription (as on GunJS's AXE relay): to a whole soul, or to one key of it. A query
for a key range subscribes to the whole soul: pushing more than was asked is harmless, clients
filter. Subscriptions live as long as the connection; there is no unsubscribe message in GUN.
So that a peer cannot grow them without bound, one soul's key subscriptions turn into a whole-soul
one past ``MAX_KEYS`` (again: more is pushed, nothing is lost), and the relay caps what one peer
follows: ``count_of`` counts each soul and each key subscription as one, and souls and keys longer
than ``MAX_FOLLOWED_TEXT`` are not followed, so one peer's subscriptions hold at most about
limit x MAX_FOLLOWED_TEXT characters.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator
from typing import Generic, TypeVar

Peer = TypeVar("Peer", bound=Hashable)

ALL_KEYS: frozenset[str] = frozenset()  # marker: the whole soul
MAX_KEYS = 64  # key subscriptions to one soul, per peer, before it follows the whole soul
MAX_FOLLOWED_TEXT = 4096  # characters of a soul or key a peer may follow


class Subscriptions(Generic[Peer]):
    __slots__ = ("_by_soul", "_by_peer", "_weight")

    def __init__(self) -> None:
        # soul -> peer -> set of keys, or ALL_KEYS for the whole soul
        self._by_soul: dict[str, dict[Peer, set[str] | frozenset[str]]] = {}
        self._by_peer: dict[Peer, set[str]] = {}
        self._weight: dict[Peer, int] = {}  # souls plus key subscriptions, per peer

    def subscribe(self, peer: Peer, soul: str, key: str | None = None) -> None:
        peers = self._by_soul.get(soul)
        if peers is None:
            peers = self._by_soul[soul] = {}
        held = peers.get(peer)
        added = 1 if held is None else 0  # the soul itself
        if key is None or (held is not None and held is not ALL_KEYS and key not in held and len(held) >= MAX_KEYS):
            if held is not None and held is not ALL_KEYS:
                added -= len(held)  # its key subscriptions fold into the whole soul
            peers[peer] = ALL_KEYS
        elif held is None:
            peers[peer] = {key}
            added += 1
        elif held is not ALL_KEYS and key not in held:
            held.add(key)  # type: ignore[union-attr]
            added += 1
        if added:
            self._weight[peer] = self._weight.get(peer, 0) + added
        souls = self._by_peer.get(peer)
        if souls is None:
            souls = self._by_peer[peer] = set()
        souls.add(soul)

    def drop_peer(self, peer: Peer) -> None:
        self._weight.pop(peer, None)
        for soul in self._by_peer.pop(peer, ()):
            peers = self._by_soul.get(soul)
            if peers is not None:
                peers.pop(peer, None)
                if not peers:
                    del self._by_soul[soul]

    def covers(self, peer: Peer, soul: str, key: str | None = None) -> bool:
        """Whether ``peer`` already follows ``soul`` (or its ``key``): subscribing again adds nothing."""
        held = self._by_soul.get(soul, {}).get(peer)
        return held is ALL_KEYS or (held is not None and key is not None and key in held)

    def count_of(self, peer: Peer) -> int:
        """What ``peer`` follows: each soul and each key subscription counts one."""
        return self._weight.get(peer, 0)

    def audience(self, soul: str, keys: Iterable[str]) -> Iterator[tuple[Peer, frozenset[str] | None]]:
        """Each subscriber of ``soul`` with the subset of ``keys`` it wants (None: all of them)."""
        peers = self._by_soul.get(soul)
        if not peers:
            return
        key_list = None
        for peer, wanted in peers.items():
            if wanted is ALL_KEYS:
                yield peer, None
                continue
            if key_list is None:
                key_list = list(keys)
            subset = frozenset(k for k in key_list if k in wanted)
            if subset:
                yield peer, subset

    def __len__(self) -> int:
        return len(self._by_soul)
