"""Clients that honour resets: the JS plugin the relay serves (gunrelay.js), the demo page, and
the Python GUN peer (``from gunrelay.client import GunPeer``).

The Python peer's modules:

- ``peer``: the public API, ``GunPeer`` (put, set, get, once, load, local, on, hard_reset, ...),
  ``PutResult`` and ``Subscription``; it carries out what the protocol reads.
- ``protocol``: GUN's protocol as a peer speaks it, without I/O: message ids, dedup, encoding and
  decoding through ``core.wire``, requests waiting for answers, admission through
  ``core.admission``, what to send on every connection.
- ``connection``: the websocket to the relay: dial, greet, receive, send, redial with a backoff.
- ``callbacks``: ``on`` subscribers and ``on_reset``, called in order from one task.
- ``resets``: reset records read from the relay's signed space, and the client fence.
- ``outbox``: writes the relay has not acknowledged yet (in memory, or in SQLite).
- ``nodes``: application data to GUN graphs (nested dicts become nodes and relations).
- ``state_clock``: GUN's state clock, the state every field a peer writes carries.
"""

from .peer import GunPeer, PutResult, Subscription

__all__ = ["GunPeer", "PutResult", "Subscription"]
