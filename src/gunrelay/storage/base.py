"""The relay's store: a graph store and a control log in one (tests/storage runs one suite against each backend).

Theory of operation. The storage contract comes in two parts:

- ``graph.GraphStore``: the GUN graph -- merge by HAM, reads in pages, purges under fence rules,
  closures over relations, stats, whole-graph copies. A Python peer's local copy is one
  (``memory.MemoryGraph``, ``sqlite.SQLiteGraph``), and it holds nothing else.
- ``control.ControlLog``: the relay's bookkeeping -- resets with their closures, purge progress
  and publication marks, acks, bans, TTL rules, the audit log.

The relay's ``Store`` is both at once (``memory.MemoryStore``, ``sqlite.SQLiteStore``), in one
database with one writer: a reset's install orders with the merges around it, and a purge batch
and the reset's running ``purged`` count commit together. The names the relay imports from here
(``ReadQuery``, ``StoredReset``, ...) stay importable from this module.
"""

from __future__ import annotations

from .control import AuditEntry, ControlLog, ResetAck, StoredReset
from .graph import (
    Change,
    ChangePage,
    GraphStore,
    ReadPage,
    ReadQuery,
    Row,
    StorageFailure,
    StorageHealth,
    StoreStats,
    as_state,
    decode_value,
    encode_value,
    ham_tie_wins,
    ham_wins,
    reachable_from,
    relation_targets,
    value_cost,
)


class Store(GraphStore, ControlLog):
    """The relay's store: its graph and its control log, opened, written and closed as one."""


__all__ = [
    "AuditEntry",
    "Change",
    "ChangePage",
    "ControlLog",
    "GraphStore",
    "ReadPage",
    "ReadQuery",
    "ResetAck",
    "Row",
    "StorageFailure",
    "StorageHealth",
    "Store",
    "StoreStats",
    "StoredReset",
    "as_state",
    "decode_value",
    "encode_value",
    "ham_tie_wins",
    "ham_wins",
    "reachable_from",
    "relation_targets",
    "value_cost",
]
