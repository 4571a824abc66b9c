"""The admin API against its OpenAPI description (``gunrelay.admin.openapi``), property-based.

- The description stays true to the router: every ``/-/api/`` route is described, and nothing else.
- schemathesis fuzzes every described operation on a live relay (valid and invalid requests, its
  coverage cases, then linked sequences): no 5xx, every answer as described, auth enforced.
- Every state-changing request made without the operator token, or with a session but without its
  CSRF token, is refused and changes nothing.
- Regression tests for what the fuzzing found.

The fuzzing runs on relays of its own (own data folder, in a thread, on 127.0.0.1): one for the
per-operation run (shared by its operations, so that listings show what the others made), one for
the linked sequences, one for the refusals; each calls with the operator token. No operation is
excluded: none can lock that caller out (a ban refuses websocket upgrades only, a login lockout
stops logins only, a logout with the token ends nothing, resets, rotations and restores fence data,
not the API), and whatever state the calls leave (bans of 127.0.0.1, privacy mode, fences) dies
with the relay.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import hypothesis
import pytest
import requests
import schemathesis
import uvicorn
from fakes import TOKEN
from hypothesis import HealthCheck, given, strategies as st
from starlette.requests import Request
from starlette.routing import Route
from websockets.sync.client import connect

from gunrelay.server.audit import detail_text
from gunrelay.admin.auth import STATE_CHANGING
from gunrelay.admin import openapi
from gunrelay.admin.gate import MAX_BODY, BadRequest, json_body
from gunrelay.admin.openapi import SPEC
from gunrelay.app import build_app
from gunrelay.app import uvicorn_config
from gunrelay.config import load_config
from gunrelay.core.duration import parse_duration
from gunrelay.server.snapshots import LABEL

ROOT = Path(__file__).resolve().parents[2]
JSON = "application/json"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
OUTSIDE_API = {("get", "/health"), ("get", "/version"), ("get", "/metrics")}
FUZZ_EXAMPLES = 8  # per operation, per test run, on top of schemathesis's coverage cases
# POST /-/api/import takes JSON lines (NDJSON): schemathesis sends the generated text as it is
schemathesis.serializer.alias("application/x-ndjson", "text/plain")


def relay_config(data: Path, **settings: Any) -> Any:
    return load_config(
        {"data": str(data), "gun_dir": str(ROOT / "node_modules" / "gun"), "admin_token": TOKEN, "log_level": "warning", **settings},
        env={},
    )


class ThreadedRelay:
    """A relay served by uvicorn on its own event loop in a thread, so that synchronous clients
    (schemathesis uses requests) can call it from the test's thread."""

    def __init__(self, data: Path, **settings: Any):
        config = relay_config(data, **settings)
        self.app = build_app(config)
        self.server = uvicorn.Server(uvicorn_config(self.app, config))
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.http = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)

    async def _serve(self) -> None:
        self.loop = asyncio.get_running_loop()
        await self.server.serve(sockets=[self.sock])

    def __enter__(self) -> ThreadedRelay:
        self.thread.start()
        for _ in range(500):
            if self.server.started or not self.thread.is_alive():
                break
            threading.Event().wait(0.02)
        if not self.server.started:
            self.__exit__()
            raise AssertionError("relay did not start")
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(20)
        assert not self.thread.is_alive(), "relay did not stop"

    def run(self, coroutine: Any) -> Any:
        """Run a coroutine on the relay's loop (its store is not to be touched from another)."""
        assert self.loop is not None
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result(20)

    def audit(self) -> list[Any]:
        return self.run(self.app.state.store.audit_page(0, 100_000))[0]


def seed(relay: ThreadedRelay) -> None:
    """Something for the listings to show: a reset, a rotation, a TTL rule, a snapshot, a ban."""
    with requests.Session() as http:
        http.headers.update(AUTH)
        for method, path, body in (
            ("POST", "/-/api/resets", {"scope": "seeded", "reason": "seed"}),
            ("POST", "/-/api/rotations", {"scope": "old", "to": "new", "grace": "1h"}),
            ("POST", "/-/api/ttl", {"prefix": "tmp", "ttl": "1d"}),
            ("POST", "/-/api/snapshots", {"label": "seed"}),
            ("POST", "/-/api/bans", {"address": "203.0.113.9", "duration": "1h"}),
        ):
            r = http.request(method, relay.http + path, json=body, timeout=20)
            assert r.status_code == 201, (path, r.text)


@contextlib.contextmanager
def gun_peers(relay: ThreadedRelay, count: int) -> Iterator[list[Any]]:
    """``count`` websocket peers connected (for the peers to list, kick and ban); closed at the end,
    whatever the calls did to them."""
    with contextlib.ExitStack() as stack:
        sockets = []
        for _ in range(count):
            ws = stack.enter_context(connect(relay.http.replace("http", "ws") + "/gun", open_timeout=10))
            assert json.loads(ws.recv(timeout=10))["dam"] == "?"
            sockets.append(ws)
        yield sockets


def schemathesis_config(**extra: Any) -> schemathesis.Config:
    return schemathesis.Config.from_dict(
        {
            # no made-up session cookies or CSRF tokens beside the real token: they would pass for the auth used
            "generation": {"mode": "all", "max-examples": FUZZ_EXAMPLES, "database": "none", "with-security-parameters": False},
            "phases": {"examples": {"enabled": True}, "coverage": {"enabled": True}, "fuzzing": {"enabled": True}},
            # The schema cannot say everything the relay refuses (a duration must be over 0 and at
            # most ten years, a rotation's scopes must not overlap...), so valid-looking requests
            # may get a 400: "positive data acceptance" does not hold. The converse is checked.
            "checks": {"positive_data_acceptance": {"enabled": False}},
            "suppress-health-check": ["all"],
            "request-timeout": 20,
            **extra,
        }
    )


# -- the description and the router ---------------------------------------------------------------


def routed(app: Any) -> set[tuple[str, str]]:
    """(method, path) of every route the app serves, HEAD aside (Starlette adds it to GETs)."""
    return {
        (method.lower(), route.path)
        for route in app.app.routes
        if isinstance(route, Route)
        for method in route.methods or ()
        if method != "HEAD"
    }


def described() -> set[tuple[str, str]]:
    return {(method, path) for path, item in SPEC["paths"].items() for method in item}


def test_every_admin_route_is_described_and_nothing_else(tmp_path):
    app = build_app(relay_config(tmp_path))
    routes = routed(app)
    api = {(m, p) for m, p in routes if p.startswith("/-/api/")}
    assert api and api == {(m, p) for m, p in described() if p.startswith("/-/api/")}
    assert OUTSIDE_API <= routes and described() - api == OUTSIDE_API
    for route in app.app.routes:  # path parameters by the router's names
        if isinstance(route, Route) and route.path in SPEC["paths"]:
            for method, operation in SPEC["paths"][route.path].items():
                named = {p["name"] for p in operation.get("parameters", ()) if p["in"] == "path"}
                assert named == set(route.param_convertors), (method, route.path)


def test_the_description_says_who_may_call_what():
    token_or_session = [{"operatorToken": []}, {"session": []}]
    token_or_session_and_csrf = [{"operatorToken": []}, {"session": [], "csrf": []}]
    open_to_all = {("post", "/-/api/login"), ("get", "/-/api/openapi.json")} | OUTSIDE_API
    for method, path in described():
        operation = SPEC["paths"][path][method]
        if (method, path) in open_to_all:
            assert operation["security"] == [], (method, path)
        elif method.upper() in STATE_CHANGING:
            assert operation["security"] == token_or_session_and_csrf, (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
            assert "audit log" in operation["description"], (method, path)
        else:
            assert operation["security"] == token_or_session, (method, path)
            assert {"401", "403"} <= set(operation["responses"]), (method, path)
    schemes = SPEC["components"]["securitySchemes"]
    assert schemes["session"]["name"] == "gunrelay_session" and schemes["csrf"]["name"].lower() == "x-csrf-token"


def test_the_description_limits_are_the_codes():
    assert openapi.LABEL_PATTERN == "^(" + LABEL.pattern[1:-1] + ")?$"
    assert parse_duration(openapi.MAX_DURATION_S) == openapi.MAX_DURATION_S
    assert parse_duration(openapi.MIN_DURATION_S) == openapi.MIN_DURATION_S
    for beyond in (openapi.MAX_DURATION_S + 0.001, openapi.MIN_DURATION_S - 0.001):
        with pytest.raises(ValueError):
            parse_duration(beyond)
    assert f"At most {MAX_BODY} bytes" in SPEC["paths"]["/-/api/resets"]["post"]["requestBody"]["description"]
    # a quarantine's reason is the reset's own: the body's "reason" is not read (the description said it was)
    quarantine = SPEC["paths"]["/-/api/resets/{reset_id}/quarantine"]["post"]["requestBody"]["content"][JSON]["schema"]
    assert set(quarantine["properties"]) == {"duration"}


async def test_the_description_is_served_without_secrets_but_only_inside_the_allowlist(tmp_path):
    app = build_app(relay_config(tmp_path, admin_allow="10.0.0.0/8"))
    for address, status in (("10.1.2.3", 200), ("127.0.0.1", 403)):
        transport = httpx.ASGITransport(app=app, client=(address, 1234))
        async with httpx.AsyncClient(transport=transport, base_url="http://relay") as http:
            r = await http.get("/-/api/openapi.json")
            assert r.status_code == status, address
            if status == 200:
                assert r.json() == json.loads(json.dumps(SPEC)) and r.json()["openapi"].startswith("3.1")
                assert (await http.get("/-/api/resets")).status_code == 401  # the rest still needs the token


# -- schemathesis on a live relay ------------------------------------------------------------------


@pytest.fixture(scope="module")
def fuzzed_relay(tmp_path_factory):
    """One relay for every operation's fuzzing (its listings are the fuller for it)."""
    with ThreadedRelay(tmp_path_factory.mktemp("fuzzed") / "data") as relay, gun_peers(relay, 2):
        seed(relay)
        yield relay
        errors = [(e.action, e.status, e.detail) for e in relay.audit() if e.status >= 500]
    assert not errors, f"actions that ended in a server error: {errors}"


# Loaded from the module's dict (the lazy ``schemathesis.pytest.from_fixture`` does not run on
# pytest 9: it sets ``Node._nodeid``); that what is served is this dict is checked above.
schema = schemathesis.openapi.from_dict(SPEC, config=schemathesis_config())


@schema.parametrize()
def test_the_admin_api_keeps_to_its_description(case, fuzzed_relay):
    case.call_and_validate(base_url=fuzzed_relay.http, headers=AUTH)


def test_linked_sequences_keep_to_the_description(tmp_path):
    """Linked calls (create a ban, then lift it; take a snapshot, then restore or delete it...)."""
    with ThreadedRelay(tmp_path / "data") as relay, gun_peers(relay, 3):
        seed(relay)
        loaded = schemathesis.openapi.from_url(f"{relay.http}/-/api/openapi.json", config=schemathesis_config())
        calls: list[tuple[str, int]] = []

        class Workflow(loaded.as_state_machine()):  # type: ignore[misc]
            def get_call_kwargs(self, case: Any) -> dict[str, Any]:
                return {"headers": AUTH}

            def after_call(self, response: Any, case: Any) -> None:
                super().after_call(response, case)
                calls.append((case.operation.label, response.status_code))

            def validate_response(self, response: Any, case: Any, additional_checks: Any = None, **kwargs: Any) -> None:
                case.validate_response(response, headers=AUTH, transport_kwargs=kwargs, recorder=self.recorder)

        for attempt in range(3):  # bounded
            try:
                Workflow.run(
                    settings=hypothesis.settings(
                        max_examples=12, stateful_step_count=6, deadline=None, database=None, suppress_health_check=list(HealthCheck)
                    )
                )
                break
            except hypothesis.errors.FlakyStrategyDefinition:
                # the links draw from the relay's answers (a ban's address, a snapshot's name), so a
                # replay can draw differently and Hypothesis gives up on the run; a fresh run is
                # just as strict (a relay that broke the description fails with another error)
                if attempt == 2:
                    raise
        assert any(200 <= status < 300 for _, status in calls), calls  # the token was used
        assert len({label for label, _ in calls}) >= 5, calls
        assert not [e for e in relay.audit() if e.status >= 500]


# -- refusals -------------------------------------------------------------------------------------

CHANGES = sorted((path, method) for method, path in described() if method.upper() in STATE_CHANGING and path != "/-/api/login")


def test_state_changing_requests_without_the_token_or_the_csrf_token_are_refused_and_change_nothing(tmp_path):
    with ThreadedRelay(tmp_path / "data") as relay:
        loaded = schemathesis.openapi.from_url(
            f"{relay.http}/-/api/openapi.json",
            config=schemathesis_config(generation={"mode": "positive", "with-security-parameters": False, "database": "none"}),
        )
        with requests.Session() as browser:
            csrf = browser.post(relay.http + "/-/api/login", json={"password": TOKEN}, timeout=20).json()["csrf"]
            cookie = {"gunrelay_session": browser.cookies["gunrelay_session"]}
        with requests.Session() as other:  # a second console session: its CSRF token is not ours
            other_csrf = other.post(relay.http + "/-/api/login", json={"password": TOKEN}, timeout=20).json()["csrf"]
        callers = [  # (headers, cookies, the status every state-changing request gets)
            ({}, {}, 401),
            ({"Authorization": "Bearer wrong"}, {}, 401),
            ({"Authorization": TOKEN}, {}, 401),  # the token without "Bearer"
            ({"Authorization": f"Bearer {TOKEN}x"}, cookie, 401),  # a wrong token is not saved by a session
            ({"X-CSRF-Token": csrf}, {}, 401),  # a CSRF token is no credential by itself
            ({}, cookie, 403),
            ({"X-CSRF-Token": ""}, cookie, 403),
            ({"X-CSRF-Token": "wrong"}, cookie, 403),
            ({"X-CSRF-Token": other_csrf}, cookie, 403),
        ]
        operations = [loaded[path][method] for path, method in CHANGES]

        def send(case: Any) -> bool:
            """``case`` from every caller: each refused; whether it reached the API (not only the router)."""
            case.headers = {k: v for k, v in (case.headers or {}).items() if k.lower() not in ("authorization", "x-csrf-token", "cookie")}
            reached = True
            for headers, cookies, status in callers:
                with requests.Session() as http:
                    r = case.call(session=http, headers=headers, cookies=cookies, allow_redirects=False, timeout=20)
                if r.status_code == status:
                    assert r.json()["error"], r.text
                else:
                    # a path parameter holding '/', '.' or nothing misses every route: the router answers
                    # (in plain text), before the gate or any handler
                    assert r.status_code in (307, 404, 405) and not r.headers.get("content-type", "").startswith(JSON), (
                        case.method, case.formatted_path, headers, cookies, r.status_code, r.text)
                    reached = False
            return reached

        for operation in operations:
            plain = {p.name: "x" for p in operation.iter_parameters() if p.location == "path"}
            body = {"body": {}} if "requestBody" in SPEC["paths"][operation.path][operation.method.lower()] else {}
            assert send(operation.Case(path_parameters=plain, **body)), operation.label

            @hypothesis.settings(max_examples=4, deadline=None, database=None, suppress_health_check=list(HealthCheck))
            @given(case=operation.as_strategy(generation_mode=schemathesis.GenerationMode.POSITIVE))
            def refused(case: Any) -> None:
                send(case)

            refused()
        state = relay.app.state
        assert [e.action for e in relay.audit()] == ["login", "login"]  # refused requests are not even audited
        assert state.control.history() == [] and state.access.active() == [] and state.expiry.rules == {}
        assert asyncio.run(state.snapshots.list()) == [] and state.relay.fence.version == 0  # files: no loop needed
        with requests.Session() as http:  # the session lives on, and privacy mode is still off
            r = http.get(relay.http + "/-/api/session", cookies=cookie, timeout=20)
            assert r.status_code == 200 and r.json()["privacy"] is False


# -- what the fuzzing found (regressions) -----------------------------------------------------------


async def test_a_deeply_nested_body_is_refused_and_audited_not_a_server_error(live_relay):
    deep = "[" * 600 + "]" * 600  # orjson reads up to 1024 levels but writes only 254: the audit entry failed
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        r = await http.post("/-/api/resets", content=f'{{"scope": "room", "reason": {deep}}}')
        assert r.status_code == 400 and "'reason' must be a string" in r.json()["error"]
        r = await http.post("/-/api/privacy", content=f'{{"enabled": true, "x": {deep}}}')
        assert r.status_code == 200  # unknown fields are ignored, however deep
        entries = (await http.get("/-/api/audit")).json()["entries"]
    assert [(e["action"], e["status"]) for e in entries] == [("privacy.set", 200), ("reset.create", 400)]
    assert entries[1]["detail"] == '{"scope":"room","reason":' + "[" * 19 + '"..."' + "]" * 19 + "}"  # 20 levels kept
    assert detail_text({"a": json.loads(deep)}) == '{"a":' + "[" * 19 + '"..."' + "]" * 19 + "}"


async def test_query_numbers_that_int_refuses_are_a_bad_request_not_a_server_error(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for query in (
            "audit?page=%C2%B2",  # "²".isdigit() is true, int("²") fails
            "audit?per_page=%D9%A1%D9%A2",  # Arabic-Indic "١٢": int() reads it, the API says 0-9
            "logs?limit=" + "9" * 5000,  # int() refuses over 4300 digits
            "audit?page=",
            "audit?page=-1",
            "logs?limit=5001",
        ):
            r = await http.get("/-/api/" + query)
            assert r.status_code == 400 and "whole number" in r.json()["error"], (query[:30], r.text)
        assert (await http.get("/-/api/logs?limit=" + "0" * 5000 + "7")).status_code == 200
        page = (await http.get("/-/api/audit?page=0001&per_page=000")).json()
        assert page == {"error": "'per_page' must be a whole number from 1 to 500"}
        assert (await http.get("/-/api/audit?page=0001&per_page=007")).json()["per_page"] == 7


async def test_flags_must_be_true_or_false(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for path, body in (
            ("/-/api/resets", {"scope": "room", "dry_run": "yes"}),
            ("/-/api/resets", {"scope": "room", "dry_run": 0}),  # bool(0) is False: this issued a real reset
            ("/-/api/resets", {"scope": "room", "dry_run": "false"}),
            ("/-/api/resets", {"scope": "room", "snapshot": {"a": 1}}),  # any truthy value took a snapshot
            ("/-/api/resets", {"scope": "room", "snapshot": "no"}),
            ("/-/api/bans", {"connected": "true", "address": "203.0.113.5", "duration": "1h"}),
            ("/-/api/bans", {"connected": 1, "address": "203.0.113.5", "duration": "1h"}),
        ):
            r = await http.post(path, json=body)
            assert r.status_code == 400 and "must be true or false" in r.json()["error"], (body, r.text)
    state = live_relay.app.state
    assert state.control.history() == [] and state.access.active() == [] and await state.snapshots.list() == []


async def test_durations_are_written_in_ascii_digits(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for duration in ("\u0661h", "\uff15m", "1\u0660s"):  # Arabic-Indic, fullwidth: core.duration's \d read them
            r = await http.post("/-/api/bans", json={"address": "203.0.113.5", "duration": duration})
            assert r.status_code == 400 and "not a duration" in r.json()["error"], (duration, r.text)
        assert live_relay.app.state.access.active() == []
        r = await http.post("/-/api/bans", json={"address": "203.0.113.5", "duration": "\u00a05m\x1c"})  # white space around is fine
        assert r.status_code == 201 and round(r.json()["banned"][0]["until"] - time.time()) == 300


async def test_null_flags_are_left_out(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        r = await http.post("/-/api/resets", json={"scope": "room", "dry_run": None, "snapshot": None, "ban_connected": None})
        assert r.status_code == 201 and r.json()["dry_run"] is False and "snapshot" not in r.json()
        r = await http.post("/-/api/bans", json={"connected": None, "address": "203.0.113.5", "duration": "1h"})
        assert r.status_code == 201 and r.json()["banned"][0]["address"] == "203.0.113.5"


async def test_a_snapshot_label_outside_its_pattern_is_refused(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for label in ("seed\n", "a/b", "x" * 49, "é", 5):  # "seed\n" made a file whose name ends in a newline
            r = await http.post("/-/api/snapshots", json={"label": label})
            assert r.status_code == 400 and "label" in r.json()["error"], (label, r.text)
        assert (await http.post("/-/api/snapshots", json={"label": "x" * 48})).status_code == 201
    folder = Path(live_relay.app.state.snapshots.shelf.folder)
    assert [s.name[17:] for s in await live_relay.app.state.snapshots.list()] == ["x" * 48]
    assert sorted(p.name[17:] for p in folder.iterdir()) == ["x" * 48 + ".json", "x" * 48 + ".sqlite3"]


async def test_a_method_a_path_lacks_is_405_naming_every_method_it_takes(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        for path, methods in (("/-/api/ttl", {"GET", "HEAD", "POST", "DELETE"}), ("/-/api/resets", {"GET", "HEAD", "POST"}),
                              ("/-/api/bans", {"GET", "HEAD", "POST"}), ("/-/api/snapshots", {"GET", "HEAD", "POST"})):
            for method in ("OPTIONS", "PATCH", "PUT"):
                r = await http.request(method, path)
                assert r.status_code == 405 and set(r.headers["allow"].split(", ")) == methods, (method, path)
            assert (await http.head(path)).status_code == 200
        assert (await http.get("/-/api/ttl")).json()["ttl"] == []  # each method still reaches its own handler
        assert (await http.delete("/-/api/ttl?prefix=x")).status_code == 404


async def test_a_body_field_cannot_mask_a_path_parameter_in_the_audit_log(live_relay):
    async with httpx.AsyncClient(base_url=live_relay.http, headers=AUTH) as http:
        r = await http.post("/-/api/resets/r1/quarantine", json={"duration": "1m", "reset_id": "another"})
        assert r.status_code == 404
        [entry] = (await http.get("/-/api/audit")).json()["entries"]
    assert json.loads(entry["detail"]) == {"duration": "1m", "reset_id": "r1"}


@pytest.mark.parametrize("declared", ["²", "9" * 5000, "0" * 5000 + "1"])
async def test_a_declared_length_that_int_refuses_is_not_a_server_error(declared):
    async def receive() -> dict:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    request = Request({"type": "http", "method": "POST", "path": "/", "headers": [(b"content-length", declared.encode())]}, receive)
    try:
        assert await json_body(request) == {}
    except BadRequest as exc:
        assert "over" in str(exc) and declared == "9" * 5000
