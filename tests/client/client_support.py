"""Helpers shared by the client tests."""

from __future__ import annotations

import asyncio
import math
import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from gunrelay.core import sea
from gunrelay.core.reset import ResetRecord


async def eventually(check: Any, timeout: float = 5.0) -> Any:
    """Poll an async or sync check (bounded) until it returns something truthy; its last value."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        value = check()
        if asyncio.iscoroutine(value):
            value = await value
        if value or asyncio.get_running_loop().time() > deadline:
            return value
        await asyncio.sleep(0.02)


def now_ms() -> float:
    return time.time() * 1000


def new_key() -> tuple[ec.EllipticCurvePrivateKey, str]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, sea.pub_of(key)


def record(reset_id: str, scope: str, epoch: int, watermark: float, **extra: Any) -> ResetRecord:
    return ResetRecord(reset_id=reset_id, scope=scope, epoch=epoch, watermark=watermark, issued_at=now_ms(), **extra)


def record_graph(
    key: ec.EllipticCurvePrivateKey | None,
    soul: str,
    rec: ResetRecord,
    state: float,
    *,
    drop: tuple[str, ...] = (),
    star: str | None = None,
) -> dict[str, Any]:
    """The wire graph of a reset record at ``soul``, each value signed with ``key`` as the relay
    does (``key`` None: unsigned plain values; ``star``: add GunJS's '*' writer field)."""
    states: dict[str, float] = {}
    node: dict[str, Any] = {"_": {"#": soul, ">": states}}
    for name, value in rec.graph_values().items():
        if name in drop:
            continue
        if key is None:
            wire_value: Any = value if not (isinstance(value, float) and math.isinf(value)) else "Infinity"
        else:
            wire_value = sea.sign_field(key, soul, name, value, state)
            if star is not None:
                wire_value = wire_value[:-1] + f',"*":"{star}"}}'
        states[name] = state
        node[name] = wire_value
    return {soul: node}
