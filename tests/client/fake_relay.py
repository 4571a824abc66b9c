"""A scripted in-process relay for checking the peer's wire behaviour exactly: it greets with
``{"dam": "?"}``, records every message, answers gets from a graph the test controls, acks puts
(unless told not to), and pushes whatever frames a test hands it."""

from __future__ import annotations

import json
import secrets
from typing import Any

from websockets.asyncio.server import Server, ServerConnection, serve


class FakeRelay:
    def __init__(self, ack_puts: bool = True):
        self.ack_puts = ack_puts
        self.received: list[dict[str, Any]] = []
        self.frames: list[str] = []
        self.graph: dict[str, dict[str, Any]] = {}  # soul -> wire node, served to gets
        self.hello_id = "hello" + secrets.token_hex(3) + "x"
        self.clients: set[ServerConnection] = set()
        self.server: Server | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gun"

    async def start(self) -> FakeRelay:
        self.server = await serve(self._handle, "127.0.0.1", self.port, compression=None, max_size=None)
        self.port = self.server.sockets[0].getsockname()[1] if not self.port else self.port
        return self

    async def stop(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None

    async def _handle(self, ws: ServerConnection) -> None:
        self.clients.add(ws)
        await ws.send(json.dumps({"#": self.hello_id, "dam": "?", "pid": "fakerelay"}))
        try:
            async for frame in ws:
                assert isinstance(frame, str)
                self.frames.append(frame)
                data = json.loads(frame)
                for msg in data if isinstance(data, list) else [data]:
                    self.received.append(msg)
                    await self._answer(ws, msg)
        finally:
            self.clients.discard(ws)

    async def _answer(self, ws: ServerConnection, msg: dict[str, Any]) -> None:
        reply: dict[str, Any] = {"#": secrets.token_hex(5) + "r", "@": msg.get("#")}
        if "get" in msg:
            soul, key = msg["get"].get("#"), msg["get"].get(".")
            node = self.graph.get(soul)
            if node is not None and key is not None:
                node = {"_": {"#": soul, ">": {key: node["_"][">"][key]}}, key: node[key]} if key in node else None
            if node is not None:
                reply["put"] = {soul: node}
            await ws.send(json.dumps(reply))
        elif "put" in msg and "@" not in msg and self.ack_puts:
            reply["ok"] = True
            await ws.send(json.dumps(reply))
        elif msg.get("dam") == "reset-ack":
            await ws.send(json.dumps({**reply, "dam": "reset-ack", "ok": True}))

    async def push(self, frame: Any) -> None:
        text = frame if isinstance(frame, str) else json.dumps(frame)
        for ws in list(self.clients):
            await ws.send(text)

    def messages(self, kind: str) -> list[dict[str, Any]]:
        if kind in ("?", "hi", "reset-ack"):
            return [m for m in self.received if m.get("dam") == kind]
        return [m for m in self.received if kind in m and "dam" not in m]
