"""Support code for the interop suites (tests/interop, tests/browser).

* ``Relay`` starts the relay under test as a subprocess on a free 127.0.0.1 port with its own data
  directory, waits (bounded) until it serves, and stops it by PID (SIGTERM, then SIGKILL).
  ``GUNRELAY_INTEROP_TARGET`` selects the implementation: ``ours`` (default, ``python -m gunrelay
  serve``) or ``node`` (``tools/node_relay.js``, the reference GunJS relay).
* ``run_gun`` / ``GunProcess`` run ``js/gun_driver.js``: a real GunJS client (``gun/gun``, no local
  persistence) executing a JSON list of steps and printing JSON lines.
* ``RawPeer`` is a hand-driven websocket peer for checking frames exactly.

Every wait here is bounded in time; no helper loops forever.
"""

from __future__ import annotations

import json
import os
import queue
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any, Callable

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "js" / "gun_driver.js"
GUN_DIR = REPO / "node_modules" / "gun"
NODE_RELAY = REPO / "tools" / "node_relay.js"

TARGET = os.environ.get("GUNRELAY_INTEROP_TARGET", "ours").strip().lower() or "ours"
if TARGET not in ("ours", "node"):
    raise RuntimeError(f"GUNRELAY_INTEROP_TARGET must be 'ours' or 'node', not {TARGET!r}")

START_TIMEOUT = 30.0  # seconds to wait for the relay to announce itself and answer /health
STOP_TIMEOUT = 10.0  # seconds between SIGTERM and SIGKILL


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rid(prefix: str = "") -> str:
    """A random message id / soul suffix (never reuse ids: see protocol notes 2.2)."""
    return prefix + secrets.token_hex(6)


def now_ms() -> int:
    return int(time.time() * 1000)


# ---- the relay process ---------------------------------------------------------------------------


class RelayError(AssertionError):
    pass


class Relay:
    """One relay subprocess (ours or the reference Node relay) bound to 127.0.0.1."""

    def __init__(self, data_dir: Path, log_dir: Path, target: str = TARGET, port: int | None = None,
                 args: list[str] | None = None, env: dict[str, str] | None = None):
        self.target = target
        self.args = list(args or [])  # more options for `gunrelay serve`
        self.env = dict(env or {})  # more environment for the process (AXE=false for a Node relay)
        self.data_dir = Path(data_dir)
        self.log_dir = Path(log_dir)
        self.port = port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.killed = False  # the last stop() had to SIGKILL
        self.last_exit_code: int | None = None
        self.last_log = ""
        self.starts = 0
        self.log_path: Path | None = None

    # URLs
    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def peer(self) -> str:
        """The peer URL an app would configure (GunJS turns http into ws itself)."""
        return f"{self.http_url}/gun"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gun"

    def command(self) -> list[str]:
        if self.target == "node":
            return ["node", str(NODE_RELAY), str(self.port), str(self.data_dir / "radata")]
        return [sys.executable, "-m", "gunrelay", "serve", "--host", "127.0.0.1",
                "--port", str(self.port), "--data", str(self.data_dir), *self.args]

    def ready_marker(self) -> str:
        if self.target == "node":
            return f"node relay listening on http://127.0.0.1:{self.port}"
        return f"listening on http://127.0.0.1:{self.port}"

    def start(self) -> "Relay":
        assert self.proc is None or self.proc.poll() is not None, "relay already running"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.log_dir.mkdir(parents=True, exist_ok=True)
        self.starts += 1
        self.log_path = self.log_dir / f"relay-{self.target}-{self.port}-{self.starts}.log"
        env = dict(os.environ)
        env["GUNRELAY_GUN_DIR"] = str(GUN_DIR)
        env["MULTICAST"] = "false"
        env.setdefault("PYTHONUNBUFFERED", "1")
        env.update(self.env)
        log = open(self.log_path, "wb")
        try:
            self.proc = subprocess.Popen(self.command(), cwd=str(REPO), env=env, stdout=log,
                                         stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        finally:
            log.close()
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def log_text(self, limit: int = 6000) -> str:
        if not self.log_path or not self.log_path.exists():
            return ""
        text = self.log_path.read_text(errors="replace")
        return text[-limit:]

    def _wait_ready(self) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + START_TIMEOUT
        marker = self.ready_marker()
        announced = False
        last_err = "no attempt"
        for _ in range(int(START_TIMEOUT / 0.05) + 1):
            if self.proc.poll() is not None:
                raise RelayError(f"relay exited with {self.proc.returncode} before it was ready:\n"
                                 f"{self.log_text()}")
            if not announced:
                announced = marker in self.log_text(limit=10**6)
            if announced:
                if self.target == "node":
                    try:
                        with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                            return
                    except OSError as e:
                        last_err = repr(e)
                else:
                    try:
                        with urllib.request.urlopen(self.http_url + "/health", timeout=2) as r:
                            if r.status == 200:
                                json.loads(r.read() or b"null")  # /health answers JSON
                                return
                            last_err = f"/health status {r.status}"
                    except (OSError, urllib.error.URLError, ValueError) as e:
                        last_err = repr(e)
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        raise RelayError(f"relay not ready after {START_TIMEOUT}s (announced={announced}, "
                         f"last error {last_err}):\n{self.log_text()}")

    def stop(self) -> int | None:
        """SIGTERM by PID, wait (bounded), SIGKILL if needed. Returns the exit code."""
        p = self.proc
        if p is None:
            return None
        self.killed = False
        if p.poll() is None:
            try:
                p.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout=STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.killed = True
                p.kill()
                p.wait(timeout=STOP_TIMEOUT)
        return p.returncode

    def restart(self) -> "Relay":
        """Stop (SIGTERM) and start again on the same port and data dir."""
        code = self.stop()
        self.last_exit_code = code
        self.last_log = self.log_text(limit=10**6)  # the stopped run's output
        # the port was ours a moment ago; give the OS a bounded moment if it is not free yet
        for _ in range(100):
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                    s.bind(("127.0.0.1", self.port))
                break
            except OSError:
                time.sleep(0.1)
        return self.start()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


# ---- GunJS clients in Node -----------------------------------------------------------------------


class GunResult:
    """The parsed output of one gun_driver.js run."""

    def __init__(self, results: list[dict[str, Any]], events: list[dict[str, Any]], error: Any,
                 stderr: str, returncode: int | None):
        self.results = results
        self.events = events
        self.error = error
        self.stderr = stderr
        self.returncode = returncode

    def __getitem__(self, i: int | str) -> dict[str, Any]:
        if isinstance(i, str):
            for r in self.results:
                if r.get("name") == i:
                    return r
            raise KeyError(i)
        return self.results[i]

    def __repr__(self) -> str:
        short = json.dumps(self.results)[:3000]
        return f"GunResult(error={self.error!r}, results={short}, stderr_tail={self.stderr[-1500:]!r})"


def _command_arg(command: dict[str, Any], tmpdir: Path | None) -> str:
    text = json.dumps(command)
    if len(text) < 60_000:
        return text
    d = tmpdir or Path(tempfile.gettempdir())
    f = d / f"gun-cmd-{rid()}.json"
    f.write_text(text)
    return "@" + str(f)


def _driver_command(relay: Relay, steps: list[dict[str, Any]], sea: bool, deadline_ms: int,
                    tmpdir: Path | None) -> list[str]:
    cmd = {"peer": relay.peer, "sea": sea, "deadline": deadline_ms, "steps": steps}
    return ["node", str(DRIVER), _command_arg(cmd, tmpdir)]


def _parse_lines(lines: list[str]) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
    events: list[dict[str, Any]] = []
    done = None
    for line in lines:
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            obj = json.loads(line)
        except ValueError:
            continue
        if obj.get("done"):
            done = obj
        else:
            events.append(obj)
    return events, done


def run_gun(relay: Relay, steps: list[dict[str, Any]], *, sea: bool = False, deadline_ms: int = 15000,
            tmpdir: Path | None = None) -> GunResult:
    """Run a fresh GunJS client process to completion (bounded) and return its parsed results."""
    argv = _driver_command(relay, steps, sea, deadline_ms, tmpdir)
    try:
        cp = subprocess.run(argv, cwd=str(REPO), capture_output=True,
                            timeout=deadline_ms / 1000 + 10, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired as e:  # subprocess.run already killed the child
        raise AssertionError(f"gun driver did not exit in time; stderr: {e.stderr!r}") from None
    stdout = cp.stdout.decode("utf-8", "replace")
    stderr = cp.stderr.decode("utf-8", "replace")
    events, done = _parse_lines(stdout.splitlines())
    if done is None:
        raise AssertionError(f"gun driver printed no result (rc={cp.returncode}); stdout tail "
                             f"{stdout[-1500:]!r}; stderr tail {stderr[-3000:]!r}")
    return GunResult(done["results"], events, done.get("error"), stderr, cp.returncode)


class GunProcess:
    """A GunJS client process running in the background, for tests with concurrent clients."""

    def __init__(self, relay: Relay, steps: list[dict[str, Any]], *, sea: bool = False,
                 deadline_ms: int = 20000, tmpdir: Path | None = None, label: str = "gun"):
        self.label = label
        self.deadline_ms = deadline_ms
        argv = _driver_command(relay, steps, sea, deadline_ms, tmpdir)
        self.proc = subprocess.Popen(argv, cwd=str(REPO), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, encoding="utf-8",
                                     errors="replace", bufsize=1)
        self.lines: "queue.Queue[str | None]" = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.done: dict[str, Any] | None = None
        self.ended = False
        self.stderr_chunks: list[str] = []
        self._t_out = threading.Thread(target=self._pump_out, daemon=True)
        self._t_err = threading.Thread(target=self._pump_err, daemon=True)
        self._t_out.start()
        self._t_err.start()

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _pump_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            if len(self.stderr_chunks) < 2000:
                self.stderr_chunks.append(line)

    def _take(self, timeout: float) -> None:
        """Consume one stdout line, waiting at most `timeout` seconds."""
        if self.ended:
            return
        try:
            line = self.lines.get(timeout=max(timeout, 0.0))
        except queue.Empty:
            return
        if line is None:
            self.ended = True
            return
        events, done = _parse_lines([line])
        self.events.extend(events)
        if done is not None:
            self.done = done

    def wait_event(self, pred: Callable[[dict[str, Any]], bool], timeout: float) -> dict[str, Any]:
        """Wait (bounded) for an event line matching pred; earlier events count too."""
        deadline = time.monotonic() + timeout
        seen = 0
        for _ in range(1_000_000):
            while seen < len(self.events):
                ev = self.events[seen]
                seen += 1
                if pred(ev):
                    return ev
            left = deadline - time.monotonic()
            if self.ended or self.done is not None or left <= 0:
                break
            self._take(left)
        raise AssertionError(f"{self.label}: expected event not seen within {timeout}s; "
                             f"events={self.events[-10:]!r} done={self.done!r} stderr={self.stderr()[-1500:]!r}")

    def send(self, obj: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps(obj) + "\n")
        self.proc.stdin.flush()

    def result(self, timeout: float | None = None) -> GunResult:
        timeout = self.deadline_ms / 1000 + 5 if timeout is None else timeout
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            if self.done is not None:
                break
            left = deadline - time.monotonic()
            if left <= 0 or self.ended:
                break
            self._take(left)
        if self.done is None:
            self.kill()
            raise AssertionError(f"{self.label}: no result within {timeout}s; events={self.events[-10:]!r} "
                                 f"stderr={self.stderr()[-2000:]!r}")
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.kill()
        return GunResult(self.done["results"], self.events, self.done.get("error"), self.stderr(),
                         self.proc.returncode)

    def stderr(self) -> str:
        return "".join(self.stderr_chunks)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                pass


# ---- raw websocket peer --------------------------------------------------------------------------


class RawPeer:
    """A minimal hand-driven GUN peer over a websocket (text frames of JSON)."""

    def __init__(self, ws_url: str, open_timeout: float = 5.0):
        from websockets.sync.client import connect

        self.ws = connect(ws_url, open_timeout=open_timeout, max_size=None, compression=None).__enter__()
        self.inbox: list[dict[str, Any]] = []
        self.frames: list[str] = []

    def close(self) -> None:
        try:
            self.ws.__exit__(None, None, None)
        except Exception:
            pass

    def __enter__(self) -> "RawPeer":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, msg: dict[str, Any] | list[dict[str, Any]]) -> None:
        self.ws.send(json.dumps(msg, separators=(",", ":"), ensure_ascii=False))

    def _recv(self, timeout: float) -> bool:
        import websockets

        try:
            raw = self.ws.recv(timeout=max(timeout, 0.001))
        except TimeoutError:
            return False
        except websockets.ConnectionClosed:
            raise AssertionError("relay closed the websocket") from None
        text = raw if isinstance(raw, str) else raw.decode("utf-8", "replace")
        self.frames.append(text)
        data = json.loads(text)
        for m in data if isinstance(data, list) else [data]:
            if isinstance(m, dict):
                self.inbox.append(m)
        return True

    def collect(self, duration: float) -> None:
        deadline = time.monotonic() + duration
        for _ in range(100_000):
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self._recv(left)

    def replies(self, msg_id: str) -> list[dict[str, Any]]:
        return [m for m in self.inbox if m.get("@") == msg_id and "dam" not in m]

    def wait_reply(self, msg_id: str, timeout: float = 5.0,
                   pred: Callable[[dict[str, Any]], bool] | None = None) -> dict[str, Any] | None:
        deadline = time.monotonic() + timeout
        for _ in range(100_000):
            for m in self.replies(msg_id):
                if pred is None or pred(m):
                    return m
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._recv(left)
        return None

    def request(self, msg: dict[str, Any], timeout: float = 5.0) -> dict[str, Any] | None:
        self.send(msg)
        return self.wait_reply(msg["#"], timeout)


def put_msg(soul: str, entries: dict[str, tuple[Any, float]], msg_id: str | None = None) -> dict[str, Any]:
    """A PUT frame for one node: entries maps key -> (value, state)."""
    node: dict[str, Any] = {"_": {"#": soul, ">": {k: st for k, (_, st) in entries.items()}}}
    for k, (v, _) in entries.items():
        node[k] = v
    return {"#": msg_id or rid("p"), "put": {soul: node}}


def get_msg(soul: str, key: str | None = None, msg_id: str | None = None) -> dict[str, Any]:
    g: dict[str, Any] = {"#": soul}
    if key is not None:
        g["."] = key
    return {"#": msg_id or rid("g"), "get": g}


def reply_value(reply: dict[str, Any] | None, soul: str, key: str) -> tuple[bool, Any, Any]:
    """(present, value, state) of soul.key in a GET reply."""
    if not reply or not isinstance(reply.get("put"), dict):
        return False, None, None
    node = reply["put"].get(soul)
    if not isinstance(node, dict) or key not in node:
        return False, None, None
    return True, node[key], ((node.get("_") or {}).get(">") or {}).get(key)


# ---- the relay's operator side (our relay only) ---------------------------------------------------


def operator(relay: Relay, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    """One admin API call with the relay's operator token (its DATA/admin-token, or the env var)."""
    token = os.environ.get("GUNRELAY_ADMIN_TOKEN") or (relay.data_dir / "admin-token").read_text().strip()
    request = urllib.request.Request(
        relay.http_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: never a proxy
    with opener.open(request, timeout=30) as response:
        return json.loads(response.read())  # type: ignore[no-any-return]


def wait_published(relay: Relay, reset_id: str, timeout: float = 30.0) -> dict[str, Any]:
    """Wait (bounded) until the reset's purge finished and its record is published; its status."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        status = operator(relay, "GET", f"/-/api/resets/{reset_id}")
        if status["purge"]["done"] and status["published"]:
            return status
        time.sleep(0.05)
    raise AssertionError(f"reset {reset_id} was not published within {timeout} s")


def reset(relay: Relay, scope: str = "*", **extra: Any) -> dict[str, Any]:
    """Issue a reset; return its record once it is purged and published (bounded)."""
    record = operator(relay, "POST", "/-/api/resets", {"scope": scope, **extra})["record"]
    wait_published(relay, record["reset_id"])
    return record


def identity(relay: Relay) -> str:
    """The relay's SEA pub."""
    with urllib.request.urlopen(relay.http_url + "/-/identity", timeout=10) as response:
        return json.loads(response.read())["pub"]


# ---- a GunJS client with the reset plugin (js/plugin_driver.js) -----------------------------------

PLUGIN_DRIVER = Path(__file__).resolve().parent / "js" / "plugin_driver.js"


def wait_for(what: str, fn: Callable[[], Any], timeout: float = 10.0) -> Any:
    """Poll ``fn`` (bounded) until it returns something true; an exception counts as not yet."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = fn()
        except Exception as e:  # noqa: BLE001 -- e.g. a page in the middle of its reload
            last = e
        if last and not isinstance(last, Exception):
            return last
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout}s (last: {last!r})")


class PluginClient:
    def __init__(self, peers: list[str], relay_pub: str, store: Path | None, *, plugin: bool = True,
                 early: list[dict[str, Any]] | None = None, label: str = "client"):
        self.label = label
        cfg = {"peers": peers, "relayPub": relay_pub, "store": str(store) if store else None, "plugin": plugin,
               "early": early or [], "deadline": 60000}
        self.proc = subprocess.Popen(["node", str(PLUGIN_DRIVER), json.dumps(cfg)], cwd=str(REPO), text=True, bufsize=1,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        self.lines: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.replies: dict[int, dict[str, Any]] = {}
        self.err: list[str] = []
        self.n = 0
        self.ended = False
        threading.Thread(target=self._pump, daemon=True).start()
        threading.Thread(target=lambda: self.err.extend(self.proc.stderr or []), daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                self.lines.put(json.loads(line))
        self.lines.put(None)

    def _take(self, timeout: float) -> bool:
        if self.ended:
            time.sleep(max(min(timeout, 0.1), 0))
            return False
        try:
            m = self.lines.get(timeout=max(timeout, 0.001))
        except queue.Empty:
            return False
        if m is None:
            self.ended = True
            return False
        if "id" in m:
            self.replies[m["id"]] = m
        else:
            self.events.append(m)
        return True

    def cmd(self, op: str, timeout: float = 10.0, **args: Any) -> dict[str, Any]:
        self.n += 1
        n = self.n
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"id": n, "op": op, **args}) + "\n")
        self.proc.stdin.flush()
        deadline = time.monotonic() + timeout
        while n not in self.replies:
            left = deadline - time.monotonic()
            if self.ended or left <= 0:
                raise AssertionError(f"{self.label}: no answer to {op} within {timeout}s (ended: {self.ended}); "
                                     f"stderr: {''.join(self.err)[-2000:]}")
            self._take(left)
        reply = self.replies.pop(n)
        assert "error" not in reply, reply
        return reply

    def event(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 10.0) -> dict[str, Any] | None:
        """The first event matching pred (earlier ones count), or None after timeout."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for ev in self.events[seen:]:
                if pred(ev):
                    return ev
            seen = len(self.events)
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self._take(left)

    def resets(self) -> list[dict[str, Any]]:
        while self._take(0.001):
            pass
        return [e["record"] for e in self.events if e.get("event") == "reset"]

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=5)


# ---- headless Chromium -----------------------------------------------------------------------------

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]


# ---- GunJS clients as the mesh and fleet tests use them ---------------------------------------------


def gun_subscriber(relay: Relay, soul: str, key: str, label: str, tmp_path: Path) -> GunProcess:
    """A GunJS client following ``soul.key`` with a live ``on()``; returns once it subscribed."""
    sub = GunProcess(relay, [
        {"op": "wait_connected"},
        {"op": "subscribe", "path": [soul, key], "name": "s", "stream": True},
        {"op": "emit", "event": "subscribed"},
        {"op": "wait_sub", "name": "s", "until": {"equals": "never"}, "timeout": 25000},
    ], deadline_ms=30000, tmpdir=tmp_path, label=label)
    sub.wait_event(lambda e: e.get("event") == "subscribed", timeout=15)
    return sub


def gun_put(relay: Relay, soul: str, key: str, value: Any, tmp_path: Path) -> None:
    """A fresh GunJS client puts ``soul.key = value``; the relay must acknowledge it."""
    done = run_gun(relay, [{"op": "wait_connected"}, {"op": "put", "path": [soul, key], "value": value}], tmpdir=tmp_path)
    ack = done.results[-1].get("ack")
    assert ack is not None and "err" not in str(ack), done.results


def gun_once(relay: Relay, soul: str, key: str, tmp_path: Path) -> dict[str, Any]:
    """A fresh GunJS client's ``once()`` of ``soul.key``: {defined, value}."""
    done = run_gun(relay, [{"op": "wait_connected"}, {"op": "once", "path": [soul, key], "wait": 400, "timeout": 8000}], tmpdir=tmp_path)
    return done.results[-1]


# ---- a write storm of GunJS clients ---------------------------------------------------------------

STORM = Path(__file__).resolve().parent / "js" / "storm_writer.js"


class Storm:
    """One Node process of GunJS writers; what it reports acked and refused, read as it comes."""

    def __init__(self, relay: Relay, prefix: str, clients: int = 8, inflight: int = 4):
        config = {"peer": relay.peer, "clients": clients, "inflight": inflight, "prefix": prefix,
                  "timeout": 4000, "deadline": 900_000}
        self.relay = relay
        self.log = relay.log_dir / "storm.log"
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(["node", str(STORM), json.dumps(config)], cwd=str(REPO),
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
        self.acked: dict[str, str] = {}
        self.refused: list[dict[str, Any]] = []
        self.summary: dict[str, Any] | None = None
        self._lines: queue.SimpleQueue[str | None] = queue.SimpleQueue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def take(self) -> None:
        for _ in range(1_000_000):
            try:
                line = self._lines.get_nowait()
            except queue.Empty:
                return
            if line is None:
                return
            event = json.loads(line)
            if event.get("done"):
                self.summary = event
            elif "acked" in event:
                self.acked[event["acked"]] = event["v"]
            elif "refused" in event:
                self.refused.append(event)

    def wait_acks(self, more_than: int, timeout: float) -> None:
        try:
            wait_for(f"more than {more_than} acks", lambda: (self.take(), len(self.acked) > more_than)[1], timeout)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\nwriters: {self.log.read_text()[-2000:]}\nrelay: {self.relay.log_text(3000)}") from None

    def stop(self) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write("stop\n")
        self.proc.stdin.flush()
        try:
            self.proc.wait(20)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
        self.take()
        time.sleep(0.1)
        self.take()
        assert self.summary is not None, "the writers printed no summary"
        return self.summary

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
