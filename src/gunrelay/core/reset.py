"""Reset records and where they are published in the graph.

A reset record ``{reset_id, scope, epoch, W, issued_at, reason, message, keep, replacement}`` is
published twice:

- signed, in the relay's own SEA user space, so stock GunJS + SEA verifies it and nobody can
  forge it: ``~<pub>/reset`` holds the latest record, ``~<pub>/resets/<reset_id>`` every record,
  linked from ``~<pub>`` (``reset``, ``resets``). Clients read ``gun.user(pub).get('reset')``.
- for existing apps, unsigned, in the legacy system node (``_whisperz_system`` by default):
  ``reset`` ``{timestamp, reason, message, database}`` and ``config``
  ``{instance, timestamp, resetBy, message, reset}``, the shapes the Whisperz client and the
  original relay use. Peers may write neither place; only the relay does.

Values are GUN values: ``keep`` is a JSON array in a string, a missing ``replacement`` is null, and
the watermark of a rotation (+infinity) is written as the string "Infinity".

Reading a record back (a client, or a relay of the mesh that obeys another's resets):
``record_of`` turns the fields held for a record soul into a ``ResetRecord`` only when

- the soul is one of the issuing relay's record souls (its own key's space: nobody else can sign there),
- every field verifies with ``core.sea.check_field`` (unsigned or forged values count as absent),
- the required fields are present, and all record fields carry one state (one publication: a
  record half-replaced by a newer one waits for its remaining fields).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from . import sea, wire
from .fence import FenceRule
from .graph import Field, State, Value, relation

RECORD_KEYS = frozenset(
    {"reset_id", "scope", "epoch", "W", "issued_at", "reason", "message", "keep", "replacement", "kind", "purge_after"}
)
REQUIRED = ("reset_id", "scope", "epoch", "W")
KINDS = ("reset", "rotation", "restore")


@dataclass(frozen=True)
class ResetRecord:
    reset_id: str
    scope: str
    epoch: int
    watermark: float  # W: the issuing relay's state clock at issue time; +inf for a rotation
    issued_at: float  # ms since the epoch
    reason: str = ""
    message: str = ""
    keep: tuple[str, ...] = ()
    replacement: str | None = None  # a rotation's new scope
    kind: str = "reset"  # reset | rotation | restore
    purge_after: float | None = None  # a rotation purges its old scope only then (ms since the epoch)
    issuer: str = ""  # the pub of the relay that issued it, when another relay of the mesh did (not published)

    def to_json(self) -> str:
        data = asdict(self)
        data["keep"] = list(self.keep)
        data["watermark"] = "Infinity" if math.isinf(self.watermark) else self.watermark
        return json.dumps(data)

    @classmethod
    def from_json(cls, text: str) -> "ResetRecord":
        data = json.loads(text)
        data["keep"] = tuple(data.get("keep") or ())
        data["watermark"] = math.inf if data["watermark"] == "Infinity" else data["watermark"]
        return cls(**data)

    def graph_values(self) -> dict[str, Any]:
        """The record as GUN values, keyed as published."""
        return {
            "reset_id": self.reset_id,
            "scope": self.scope,
            "epoch": self.epoch,
            "W": "Infinity" if math.isinf(self.watermark) else self.watermark,
            "issued_at": self.issued_at,
            "reason": self.reason,
            "message": self.message,
            "keep": json.dumps(list(self.keep)),
            "replacement": self.replacement,
            "kind": self.kind,
            "purge_after": self.purge_after,
        }


def fence_rule(record: ResetRecord, souls: frozenset[str] = frozenset(), purge_done: bool = False) -> FenceRule:
    """The fence a record puts up, on the relay that issued it and on every peer that obeys it.

    A reset refuses and hides everything in scope at or below W. A rotation (W = +inf) refuses
    every write into the old scope but lets its data be read until the purge after its grace
    period; a restore refuses writes at or below its W but serves what it restored (older than W).
    ``souls`` are the souls reachable from a prefix scope when it was reset."""
    serves = (record.kind == "rotation" and not purge_done) or record.kind == "restore"
    return FenceRule(record.reset_id, record.scope, record.watermark, souls=souls, serves=serves)


def signed_space_fields(record: ResetRecord, space: str, state: float) -> list[Field]:
    """Unsigned fields for the relay's user space (the caller signs each value)."""
    latest, entry, index = f"{space}/reset", f"{space}/resets/{record.reset_id}", f"{space}/resets"
    fields = [Field(space, "reset", {"#": latest}, state), Field(space, "resets", {"#": index}, state)]
    fields.append(Field(index, record.reset_id, {"#": entry}, state))
    for soul in (latest, entry):
        fields.extend(Field(soul, key, value, state) for key, value in record.graph_values().items())
    return fields


def legacy_fields(record: ResetRecord, system_node: str, instance: str, state: float) -> list[Field]:
    reset_soul, config_soul = f"{system_node}/reset", f"{system_node}/config"
    reset_values: dict[str, Value] = {
        "timestamp": record.issued_at,
        "reason": record.reason,
        "message": record.message,
        "database": instance,
    }
    config_values: dict[str, Value] = {
        "instance": instance,
        "timestamp": record.issued_at,
        "resetBy": "gunrelay operator",
        "message": record.message,
        "reset": record.reset_id,
    }
    fields = [Field(system_node, "reset", {"#": reset_soul}, state), Field(system_node, "config", {"#": config_soul}, state)]
    fields.extend(Field(reset_soul, k, v, state) for k, v in reset_values.items())
    fields.extend(Field(config_soul, k, v, state) for k, v in config_values.items())
    return fields


# -- relays of a mesh acknowledge the resets they obey -----------------------------------------
#
# A relay that installed another's reset says so in its own SEA space, signed:
# ``~<its pub>/mesh-acks`` key <reset_id> = JSON text {"issuer", "fence", "purged"}. The write
# travels the mesh like any other and the issuer reads it back with ``mesh_ack_of``.

MESH_ACKS = "mesh-acks"
MESH_TTL = "ttl"  # ``~<pub>/ttl``: a relay's TTL rules, prefix -> time to live in ms (null: lifted), signed


def ttl_soul(relay_pub: str) -> str:
    return f"~{relay_pub}/{MESH_TTL}"


def ttl_of(soul: str, key: str, value: Any, state: State, now_ms: float) -> tuple[str, float | None] | None:
    """(prefix, ttl in ms or None for a lifted rule) from a verified field of a ``~<pub>/ttl`` soul, or None."""
    relay = sea.user_space_pub(soul)
    if relay is None or soul != ttl_soul(relay) or not key or sea.check_field(soul, key, value, state, now_ms) is not None:
        return None
    ttl = sea.signed_payload(value)
    if ttl is None:
        return key, None
    if type(ttl) in (int, float) and ttl > 0 and ttl == ttl and ttl != float("inf"):
        return key, float(ttl)
    return None


def mesh_ack_soul(relay_pub: str) -> str:
    return f"~{relay_pub}/{MESH_ACKS}"


def mesh_ack_value(issuer: str, purged: bool) -> str:
    return json.dumps({"issuer": issuer, "fence": True, "purged": purged}, separators=(",", ":"))


@dataclass(frozen=True)
class MeshAck:
    relay: str  # the pub of the relay that obeys the reset
    reset_id: str
    issuer: str
    purged: bool
    at: float  # its state: when it said so (ms since the epoch)


def mesh_ack_of(soul: str, key: str, value: Any, state: State, now_ms: float) -> MeshAck | None:
    """The acknowledgement a verified field of a ``~<pub>/mesh-acks`` soul spells, or None."""
    relay = sea.user_space_pub(soul)
    if relay is None or soul != mesh_ack_soul(relay) or sea.check_field(soul, key, value, state, now_ms) is not None:
        return None
    text = sea.signed_payload(value)
    try:
        data = json.loads(text) if isinstance(text, str) else None
    except ValueError:
        return None
    if not isinstance(data, dict) or not isinstance(data.get("issuer"), str) or data.get("fence") is not True:
        return None
    return MeshAck(relay, key, data["issuer"], data.get("purged") is True, float(state))


# -- reading records back ---------------------------------------------------------------------


def reset_soul(relay_pub: str) -> str:
    """Where the relay keeps its latest record."""
    return f"~{relay_pub}/reset"


def index_soul(relay_pub: str) -> str:
    """Where the relay lists every record it issued: reset id -> relation to the record."""
    return f"~{relay_pub}/resets"


def _is_record_soul(soul: str, relay_pub: str) -> bool:
    if sea.user_space_pub(soul) != relay_pub:
        return False
    return soul == reset_soul(relay_pub) or soul.startswith(index_soul(relay_pub) + "/")


def index_entries(rows: list[tuple[str, Value, State]], relay_pub: str, now_ms: float) -> dict[str, str]:
    """The verified entries of the relay's index: reset id -> the soul of its record."""
    soul = index_soul(relay_pub)
    entries: dict[str, str] = {}
    for key, value, state in rows:
        if sea.check_field(soul, key, value, state, now_ms) is not None:
            continue
        entry = f"{soul}/{key}"
        if sea.signed_payload(value) == relation(entry):
            entries[key] = entry
    return entries


def _number(value: Any) -> float | None:
    if type(value) in (int, float) and math.isfinite(value):
        return value  # type: ignore[no-any-return]
    return None


def record_of(soul: str, rows: list[tuple[str, Value, State]], relay_pub: str, now_ms: float) -> ResetRecord | None:
    """The reset record the verified fields of ``soul`` spell, or None (forged, incomplete, malformed)."""
    if not _is_record_soul(soul, relay_pub):
        return None
    values: dict[str, Any] = {}
    states: dict[str, State] = {}
    for key, value, state in rows:
        if key not in RECORD_KEYS:
            continue
        if sea.check_field(soul, key, value, state, now_ms) is not None:
            continue  # unsigned or forged: as if absent
        values[key], states[key] = sea.signed_payload(value), state  # verified: a signed value
    if any(key not in values for key in REQUIRED):
        return None
    if len(set(states.values())) != 1:
        return None  # fields of two publications: the rest of the newer one is on its way
    record = _parse(values)
    if record is not None and soul != reset_soul(relay_pub) and soul != f"{index_soul(relay_pub)}/{record.reset_id}":
        return None  # an entry must be filed under its own id
    return record


def _parse(values: dict[str, Any]) -> ResetRecord | None:
    reset_id, scope, kind = values["reset_id"], values["scope"], values.get("kind") or "reset"
    epoch = _number(values["epoch"])
    watermark = math.inf if values["W"] == "Infinity" else _number(values["W"])
    if not (isinstance(reset_id, str) and reset_id and isinstance(scope, str) and scope and kind in KINDS):
        return None
    if epoch is None or epoch != int(epoch) or watermark is None:
        return None
    keep_text = values.get("keep") or "[]"
    try:
        keep = wire.loads(keep_text) if isinstance(keep_text, str) else None
    except ValueError:
        keep = None
    if type(keep) is not list or not all(isinstance(k, str) for k in keep):
        return None
    replacement, reason, message = values.get("replacement"), values.get("reason"), values.get("message")
    return ResetRecord(
        reset_id=reset_id,
        scope=scope,
        epoch=int(epoch),
        watermark=watermark,
        issued_at=_number(values.get("issued_at")) or 0,
        reason=reason if isinstance(reason, str) else "",
        message=message if isinstance(message, str) else "",
        keep=tuple(keep),
        replacement=replacement if isinstance(replacement, str) else None,
        kind=kind,
        purge_after=_number(values.get("purge_after")),
    )
