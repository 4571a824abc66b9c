"""Helpers shared by the client tests."""

from __future__ import annotations

import asyncio
import json
import math
import time
import urllib.request
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from interop_support import Relay

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


def operator(relay: Relay, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """Our relay's operator API, with the token the relay wrote into its data folder."""
    token = (relay.data_dir / "admin-token").read_text().strip()
    request = urllib.request.Request(
        relay.http_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def reset_done(relay: Relay, reset_id: str, timeout: float = 20.0) -> dict[str, Any]:
    """Wait (bounded) until the reset's purge finished and its record is published."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = operator(relay, "GET", f"/-/api/resets/{reset_id}")
        if status["purge"]["done"] and status["published"]:
            return status
        time.sleep(0.05)
    raise AssertionError(f"reset {reset_id} not done within {timeout} s")
