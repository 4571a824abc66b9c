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
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from .fence import FenceRule
from .graph import Field, Value


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
