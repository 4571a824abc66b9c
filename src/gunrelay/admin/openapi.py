"""The admin API described in OpenAPI 3.1, served at ``GET /-/api/openapi.json``.

The description is written by hand to say what the code does (``tests/server/test_admin_schema.py``
keeps it true: every ``/-/api/`` route is described and nothing else, and schemathesis checks live
answers against it). It holds no secret, so it is served without a token or session, but only to
addresses inside ``--admin-allow`` (like ``/metrics``), as every other ``/-/api/`` endpoint.

Request schemas are as wide as the code: a body the schema refuses is refused by the relay (400),
while some bodies the schema allows are still refused for reasons a schema cannot say (a duration
of zero or over ten years, a rotation onto an overlapping scope, a scope inside the relay's own
system space...). Unknown body fields are ignored.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from .. import __version__
from .auth import COOKIE, ConsoleAuth
from .gate import MAX_BODY, Handler, client_address, error

JSON = "application/json"
MIN_DURATION_S = 1.0  # core.duration's bounds
MAX_DURATION_S = 10 * 365 * 86400
# core.duration's syntax: numbers with an optional unit (s, m, h, d, w; any case), e.g. 90, 5m, 1h30m,
# in ASCII; around it, white space as Python's str.strip sees it (which takes \x1c-\x1f too)
DURATION_PATTERN = r"^[\s\x1c-\x1f]*([0-9]+(\.[0-9]+)?[smhdwSMHDW]?)+[\s\x1c-\x1f]*$"
# a soul prefix the relay may fence: not empty, not '*', not ending in '/'
PREFIX_PATTERN = r"^([\s\S]*[^/*]|[\s\S]+\*)$"
LABEL_PATTERN = r"^([A-Za-z0-9_.-]{1,48})?$"  # server.snapshots.LABEL, or nothing


def _ref(name: str) -> dict[str, Any]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {JSON: {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    return {"oneOf": [schema, {"type": "null"}]}


def _object(properties: dict[str, Any], required: tuple[str, ...] = (), **extra: Any) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "object", "properties": properties, **extra}
    if required:
        schema["required"] = list(required)
    return schema


def _all(properties: dict[str, Any], **extra: Any) -> dict[str, Any]:
    """An answer object that always has every one of ``properties``."""
    return _object(properties, tuple(properties), **extra)


STRING = {"type": "string"}
NUMBER = {"type": "number"}
INTEGER = {"type": "integer"}
BOOLEAN = {"type": "boolean"}
NOT_FOUND_ROUTE = "no such route: a path parameter holding '/' (or empty) misses the route, and Starlette answers in plain text"

SCHEMAS: dict[str, Any] = {
    "Error": _object({"error": STRING}, ("error",), description="Every refusal: a 4xx (or 5xx) with a readable reason."),
    "Duration": {
        "description": f"A duration: seconds as a number, or text such as 90, 90s, 5m, 2h, 7d, 1w, 1h30m. "
        f"It must come to at least {MIN_DURATION_S:g} s and at most {MAX_DURATION_S} s (ten years), or the request is refused (400).",
        "oneOf": [
            {"type": "string", "pattern": DURATION_PATTERN},
            {"type": "number", "minimum": MIN_DURATION_S, "maximum": MAX_DURATION_S},
        ],
    },
    "Ban": _all({"address": STRING, "until": {**NUMBER, "description": "seconds since the epoch"}, "reason": STRING}),
    "Banned": _all({"banned": {"type": "array", "items": _ref("Ban")}}),
    "Record": _all(
        {
            "reset_id": STRING,
            "scope": STRING,
            "epoch": INTEGER,
            "W": {"description": "the watermark (state clock, ms); \"Infinity\" for a rotation", "oneOf": [NUMBER, {"const": "Infinity"}]},
            "issued_at": {**NUMBER, "description": "ms since the epoch"},
            "reason": STRING,
            "message": STRING,
            "keep": {"type": "array", "items": STRING},
            "replacement": _nullable(STRING),
            "kind": {"enum": ["reset", "rotation", "restore"]},
            "purge_after": _nullable(NUMBER),
        }
    ),
    "Session": _all(
        {"user": STRING, "csrf": STRING, "expires": {**NUMBER, "description": "ms since the epoch"}, "privacy": BOOLEAN}
    ),
    "Snapshot": _all({"name": STRING, "created": {**NUMBER, "description": "seconds since the epoch"}, "bytes": INTEGER, "fields": _nullable(INTEGER)}),
    "Counters": _all({name: NUMBER for name in ("messages_in", "messages_out", "bytes_in", "bytes_out", "puts", "gets")}),
}

# -- request bodies -------------------------------------------------------------------------------

NO_BODY_NOTE = f"Optional: no body is read as {{}}. At most {MAX_BODY} bytes (larger: 400)."


def _body(schema: dict[str, Any], required: bool = False) -> dict[str, Any]:
    return {"required": required, "description": NO_BODY_NOTE, "content": {JSON: {"schema": schema}}}


OPTIONAL_DURATION = _nullable(_ref("Duration"))
OPTIONAL_FLAG = {"type": ["boolean", "null"], "description": "null is the same as leaving it out (false)"}

RESET_BODY = _object(
    {
        "scope": {"type": "string", "pattern": r"^(\*|[\s\S]*[^/])$", "default": "*", "description": "'*' or a soul prefix"},
        "reason": STRING,
        "message": STRING,
        "keep": {"type": "array", "items": STRING},
        "dry_run": OPTIONAL_FLAG,
        "snapshot": {**OPTIONAL_FLAG, "description": "take a snapshot first (not with dry_run)"},
        "ban_connected": {**OPTIONAL_DURATION, "description": "ban every connected address for this long"},
    }
)
BAN_BODY = _object(
    {"duration": _ref("Duration"), "reason": STRING},
    ("duration",),
    anyOf=[
        {
            "description": "one address (or a privacy-mode label this relay showed)",
            # not all white space (as Python's str.strip sees it: U+FEFF is not white space there)
            "properties": {"address": {"type": "string", "pattern": "[^\\s]|\ufeff"}, "connected": OPTIONAL_FLAG},
            "required": ["address"],
        },
        {"description": "every address connected now", "properties": {"connected": {"const": True}}, "required": ["connected"]},
    ],
)
DURATION_BODY = _object({"duration": _ref("Duration"), "reason": STRING}, ("duration",))
QUARANTINE_BODY = _object({"duration": _ref("Duration")}, ("duration",))  # the reason is the reset's
ROTATION_BODY = _object(
    {
        "scope": {"type": "string", "pattern": PREFIX_PATTERN, "description": "the soul prefix to retire (not '*')"},
        "to": {"type": "string", "pattern": PREFIX_PATTERN, "description": "its replacement, outside it and not containing it"},
        "grace": {**OPTIONAL_DURATION, "description": "how long the old data stays readable (default 1d)"},
        "reason": STRING,
        "message": STRING,
    },
    ("scope", "to"),
)
TTL_BODY = _object({"prefix": {"type": "string", "pattern": PREFIX_PATTERN}, "ttl": _ref("Duration")}, ("prefix", "ttl"))
LOGIN_BODY = _object({"user": {**STRING, "default": "admin"}, "password": {**STRING, "default": ""}})

# -- answers --------------------------------------------------------------------------------------

REPORT_PEER = _all({"peer_id": STRING, "address": STRING, "pid": _nullable(STRING)})
ACK = _all({"reset_id": STRING, "peer_id": STRING, "address": STRING, "pid": _nullable(STRING), "at": NUMBER})
FLEET_NOT_CONFIRMED = {
    "type": "array",
    "items": STRING,
    "description": "with --storage postgres: the processes of the fleet that did not confirm the change within 5 s (empty: all did)",
}
RESET_ISSUED = _object(
    {
        "dry_run": BOOLEAN,
        "record": _ref("Record"),
        "reachable_souls_fenced": INTEGER,
        "would_remove": _all({"souls": INTEGER, "fields": INTEGER, "bytes": INTEGER}),
        "peers_to_notify": INTEGER,
        "snapshot": _ref("Snapshot"),
        "banned": {"type": "array", "items": _ref("Ban")},
        "fleet_not_confirmed": FLEET_NOT_CONFIRMED,
    },
    ("dry_run", "record", "reachable_souls_fenced"),
)
RESET_LIST = _all(
    {
        "resets": {
            "type": "array",
            "items": _all(
                {
                    "record": _ref("Record"),
                    "acknowledgements": INTEGER,
                    "superseded_by": _nullable(STRING),
                    "purge": _all({"done": BOOLEAN, "fields_removed": INTEGER}),
                }
            ),
        }
    }
)
RESET_STATUS = _all(
    {
        "record": _ref("Record"),
        "purge": _all({"done": BOOLEAN, "fields_removed": INTEGER, "seconds": _nullable(NUMBER)}),
        "published": BOOLEAN,
        "acknowledged": {"type": "array", "items": ACK},
        "connected_not_acknowledged": {"type": "array", "items": REPORT_PEER},
        "issuer": STRING,
        "relays": {
            "type": "array",
            "items": _all({"pub": STRING, "fence_installed": BOOLEAN, "purge_done": BOOLEAN, "at": NUMBER}),
            "description": "relays of the mesh that said they obey this reset (signed), by SEA pub",
        },
        "relays_silent": {
            "type": "array",
            "items": _all({"pub": STRING, "pid": _nullable(STRING)}),
            "description": "on the relay that issued the reset: relays linked now that have not said so (they may not trust this relay)",
        },
    }
)
FLEET_PROCESS = _all(
    {
        "process_id": STRING,
        "this": BOOLEAN,
        "pid": INTEGER,
        "host": STRING,
        "port": INTEGER,
        "started": NUMBER,
        "last_seen": NUMBER,
        "control_version": INTEGER,
        "connections": INTEGER,
        "messages_in": INTEGER,
        "messages_out": INTEGER,
    }
)
FLEET = _all(
    {
        "processes": {"type": "array", "items": FLEET_PROCESS},
        "totals": _all({"processes": INTEGER, "connections": INTEGER, "messages_in": INTEGER, "messages_out": INTEGER}),
    },
    description="with --storage postgres: every live process of the relay (a heartbeat younger than 5 s) and their totals",
)
STATS = _object(
    {
        "at": NUMBER,
        "uptime_s": NUMBER,
        "sample_interval_s": NUMBER,
        "connections": INTEGER,
        "peak_connections": INTEGER,
        "totals": _all(
            {
                name: INTEGER
                for name in ("messages_in", "messages_out", "bytes_in", "bytes_out", "puts", "gets", "acks", "errors", "fenced_writes", "refused")
            }
        ),
        "rates": _ref("Counters"),
        "store": _all({"souls": INTEGER, "fields": INTEGER, "bytes": INTEGER}),
        "resets": INTEGER,
        "bans": INTEGER,
        "history": {"type": "array", "items": {"allOf": [_ref("Counters"), _all({"t": NUMBER, "connections": INTEGER})]}},
        "fleet": FLEET,
    },
    ("at", "uptime_s", "sample_interval_s", "connections", "peak_connections", "totals", "rates", "store", "resets", "bans", "history"),
)
PEERS = _all(
    {
        "peers": {
            "type": "array",
            "items": _all(
                {
                    "id": STRING,
                    "address": STRING,
                    "pid": _nullable(STRING),
                    "since": NUMBER,
                    "messages_in": INTEGER,
                    "messages_out": INTEGER,
                    "subscriptions": INTEGER,
                    "last_ack": _nullable(_all({"reset_id": STRING, "at": NUMBER})),
                    "relay": BOOLEAN,
                }
            ),
        }
    }
)
STREAM = _all({"cursor": INTEGER, "caught_up": BOOLEAN})  # how far this relay has read that relay's change stream
MESH = _all(
    {
        "pid": STRING,
        "dialled": {
            "type": "array",
            "items": _all(
                {
                    "url": STRING,
                    "state": {"enum": ["down", "connecting", "up", "covered", "self"]},
                    "since": NUMBER,
                    "pid": _nullable(STRING),
                    "relay": _nullable(STRING),
                    "stream": _nullable(STREAM),
                    "last_error": STRING,
                    "failures": INTEGER,
                    "messages_in": INTEGER,
                    "messages_out": INTEGER,
                }
            ),
        },
        "inbound": {
            "type": "array",
            "items": _all(
                {"address": STRING, "pid": _nullable(STRING), "relay": _nullable(STRING), "since": NUMBER, "messages_in": INTEGER,
                 "stream": _nullable(STREAM)}
            ),
        },
    }
)
AUDIT_PAGE = _all(
    {
        "entries": {
            "type": "array",
            "items": _all(
                {
                    "id": INTEGER,
                    "at": NUMBER,
                    "who": STRING,
                    "address": STRING,
                    "action": STRING,
                    "detail": STRING,
                    "outcome": {"enum": ["ok", "refused", "error"]},
                    "status": INTEGER,
                }
            ),
        },
        "total": INTEGER,
        "page": INTEGER,
        "per_page": INTEGER,
        "pages": INTEGER,
    }
)
LOGS = _all({"records": {"type": "array", "items": _all({"at": NUMBER, "level": STRING, "logger": STRING, "message": STRING})}})
NAMESPACES = _all(
    {
        "instance": STRING,
        "rotations": {
            "type": "array",
            "items": _all(
                {
                    "reset_id": STRING,
                    "scope": STRING,
                    "to": _nullable(STRING),
                    "issued_at": NUMBER,
                    "purge_after": _nullable(NUMBER),
                    "purge_done": BOOLEAN,
                    "fields_removed": INTEGER,
                }
            ),
        },
    }
)
RESTORED = _all({"record": _ref("Record"), "restored_fields": INTEGER, "resets_undone": {"type": "array", "items": STRING}})

HEALTH = _all(
    {
        "status": {"enum": ["ok", "degraded"]},
        "version": STRING,
        "peers": INTEGER,
        "storage": STRING,
        "storage_health": _object({"ok": BOOLEAN}, ("ok",)),
        "clock": _object({"jumps": INTEGER}, ("jumps",), description="wall clock jumps noticed, and resets held after one"),
        "fenced_writes": INTEGER,
    }
)

NDJSON = "application/x-ndjson"
IMPORTED = _all(
    {
        "dry_run": BOOLEAN, "source_relay": _nullable(STRING), "relay": STRING, "lines": INTEGER,
        "resets_installed": INTEGER, "resets_already_known": INTEGER, "ttl_rules": INTEGER,
        "imported": {**INTEGER, "description": "fields that changed the store (a dry run: that passed every check)"},
        "kept": {**INTEGER, "description": "fields whose stored value won by HAM"},
        "fenced": {**INTEGER, "description": "fields a reset, rotation or TTL rule covers: not stored"},
        "refused": INTEGER,
        "refused_by_reason": {"type": "object", "additionalProperties": INTEGER, "description": "e.g. sea, future_state"},
        "malformed": INTEGER,
        "malformed_lines": {"type": "array", "items": INTEGER, "description": "the first 100 malformed lines' numbers"},
    },
    description="What an import did (docs/interchange.md).",
)

# -- operations -----------------------------------------------------------------------------------

READ: list[dict[str, list[str]]] = [{"operatorToken": []}, {"session": []}]
CHANGE: list[dict[str, list[str]]] = [{"operatorToken": []}, {"session": [], "csrf": []}]


def _refusals(method: str) -> dict[str, Any]:
    found = {
        "401": _error("no operator token or live session, or a wrong token"),
        "403": _error(
            "the address is outside --admin-allow" + ("" if method == "get" else ", or the session's CSRF token is missing or wrong")
        ),
    }
    return found


def _operation(
    method: str,
    operation_id: str,
    summary: str,
    tag: str,
    ok: dict[str, Any],
    *,
    body: dict[str, Any] | None = None,
    parameters: list[dict[str, Any]] | None = None,
    errors: dict[str, str] | None = None,
    path_parameters: bool = False,
    action: str | None = None,
) -> dict[str, Any]:
    responses: dict[str, Any] = dict(ok)
    if body is not None or any(p["in"] == "query" for p in parameters or ()):
        responses["400"] = _error("a bad request: nothing was changed")
    for status, text in (errors or {}).items():
        responses[status] = _error(text)
    responses.update(_refusals(method))
    if path_parameters:
        not_found = responses.get("404", _error(NOT_FOUND_ROUTE))
        responses["404"] = {
            "description": not_found["description"] + "; or " + NOT_FOUND_ROUTE,
            "content": {**not_found["content"], "text/plain": {"schema": STRING}},
        }
    operation: dict[str, Any] = {
        "operationId": operation_id,
        "summary": summary,
        "tags": [tag],
        "security": CHANGE if method != "get" else READ,
        "responses": dict(sorted(responses.items())),
    }
    if action is not None:
        operation["description"] = f"Written to the audit log as `{action}`, whatever its outcome."
    if body is not None:
        operation["requestBody"] = _body(body)
    if parameters:
        operation["parameters"] = parameters
    return operation


def _path_parameter(name: str, description: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "description": description, "schema": STRING}


def _query(name: str, schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


RESET_ID = [_path_parameter("reset_id", "a reset's id, as GET /-/api/resets lists them")]
PEER_ID = [_path_parameter("peer_id", "a connected peer's id, as GET /-/api/peers lists them")]
ADDRESS = [_path_parameter("address", "a banned address, or the privacy-mode label shown for it")]
SNAPSHOT = [_path_parameter("name", "a snapshot's name, as GET /-/api/snapshots lists them")]


def _ok(status: int, schema: dict[str, Any], description: str = "done") -> dict[str, Any]:
    return {str(status): _json(schema, description)}


PATHS: dict[str, Any] = {
    "/-/api/openapi.json": {
        "get": {
            "operationId": "openapi",
            "summary": "This description",
            "tags": ["meta"],
            "security": [],
            "description": "Needs no token or session; refused (403) outside --admin-allow.",
            "responses": {
                "200": _json({"type": "object", "required": ["openapi", "paths"]}, "the OpenAPI 3.1 description"),
                "403": _error("the address is outside --admin-allow"),
            },
        }
    },
    "/-/api/login": {
        "post": {
            "operationId": "login",
            "summary": "Log in to the console: opens a session (cookie) and gives its CSRF token",
            "tags": ["session"],
            "security": [],
            "description": "Every login and refused login is written to the audit log as `login` (attempts during a lockout are only counted in /metrics).",
            "requestBody": _body(LOGIN_BODY),
            "responses": {
                "200": {
                    **_json(_ref("Session"), "logged in"),
                    "headers": {
                        "Set-Cookie": {
                            "description": f"{COOKIE}=...; HttpOnly; SameSite=Strict; Path=/ (and Secure behind HTTPS)",
                            "schema": STRING,
                        }
                    },
                },
                "400": _error("a bad request"),
                "401": _error("wrong user or password"),
                "403": _error("the address is outside --admin-allow, or the request came from another origin"),
                "429": _json(
                    {"allOf": [_ref("Error"), _all({"retry_after_s": INTEGER})]},
                    "too many failed logins from this address or for this user: wait",
                ),
            },
        }
    },
    "/-/api/session": {
        "get": _operation(
            "get", "session", "The caller's console session", "session", _ok(200, _ref("Session"), "the session"),
            errors={"400": "the operator token has no console session"},
        )
    },
    "/-/api/logout": {
        "post": _operation(
            "post", "logout", "End the console session and clear its cookie (with the token: nothing to end)", "session",
            _ok(200, _all({"logged_out": {"const": True}}), "logged out"), action="logout",
        )
    },
    "/-/api/stats": {"get": _operation("get", "stats", "Live figures", "figures", _ok(200, STATS, "the figures"))},
    "/-/api/peers": {"get": _operation("get", "listPeers", "Connected peers", "peers", _ok(200, PEERS, "the peers"))},
    "/-/api/mesh": {
        "get": _operation("get", "listMesh", "Links to other relays: the ones dialled (--peer) and the ones that dialled in", "peers",
                          _ok(200, MESH, "the links"))
    },
    "/-/api/peers/{peer_id}/kick": {
        "post": _operation(
            "post", "kickPeer", "Close a peer's connection (it may come back)", "peers", _ok(200, _all({"kicked": STRING})),
            parameters=PEER_ID, errors={"404": "no such connected peer"}, path_parameters=True, action="peer.kick",
        )
    },
    "/-/api/peers/{peer_id}/ban": {
        "post": _operation(
            "post", "banPeer", "Ban a connected peer's address (closes its sockets)", "peers", _ok(201, _ref("Banned"), "banned"),
            body=DURATION_BODY, parameters=PEER_ID, errors={"404": "no such connected peer"}, path_parameters=True, action="peer.ban",
        )
    },
    "/-/api/bans": {
        "get": _operation("get", "listBans", "Active bans", "bans", _ok(200, _all({"bans": {"type": "array", "items": _ref("Ban")}}), "the bans")),
        "post": _operation(
            "post", "createBan", "Ban an address, or every connected address", "bans", _ok(201, _ref("Banned"), "banned"),
            body=BAN_BODY, action="ban.create",
        ),
    },
    "/-/api/bans/{address}": {
        "delete": _operation(
            "delete", "deleteBan", "Lift a ban", "bans", _ok(200, _all({"unbanned": STRING}), "lifted"),
            parameters=ADDRESS, errors={"404": "not banned"}, path_parameters=True, action="ban.delete",
        )
    },
    "/-/api/resets": {
        "get": _operation("get", "listResets", "Resets, rotations and restores on record, oldest first", "resets", _ok(200, RESET_LIST, "the history")),
        "post": {
            **_operation(
                "post", "createReset", "Issue a reset (or only report what it would do)", "resets",
                {**_ok(200, RESET_ISSUED, "a dry run's report (dry_run: true)"), **_ok(201, RESET_ISSUED, "issued")},
                body=RESET_BODY, action="reset.create",
            ),
        },
    },
    "/-/api/resets/{reset_id}": {
        "get": _operation(
            "get", "showReset", "A reset's progress and who acknowledged it", "resets", _ok(200, RESET_STATUS, "its status"),
            parameters=RESET_ID, errors={"404": "no such reset"}, path_parameters=True,
        )
    },
    "/-/api/resets/{reset_id}/quarantine": {
        "post": _operation(
            "post", "quarantine", "Ban the connected peers that have not acknowledged a reset", "resets", _ok(200, _ref("Banned"), "banned"),
            body=QUARANTINE_BODY, parameters=RESET_ID, errors={"404": "no such reset"}, path_parameters=True, action="reset.quarantine",
        )
    },
    "/-/api/namespaces": {
        "get": _operation("get", "namespaces", "The current instance name and the rotations", "namespaces", _ok(200, NAMESPACES, "the namespaces"))
    },
    "/-/api/rotations": {
        "post": _operation(
            "post", "createRotation", "Retire a scope for a new one: read-only now, purged after the grace", "namespaces",
            _ok(201, _object({"record": _ref("Record"), "reachable_souls_fenced": INTEGER, "fleet_not_confirmed": FLEET_NOT_CONFIRMED},
                             ("record", "reachable_souls_fenced")), "rotated"),
            body=ROTATION_BODY, action="rotation.create",
        )
    },
    "/-/api/ttl": {
        "get": _operation(
            "get", "listTtl", "TTL rules", "ttl",
            _ok(200, _all({"ttl": {"type": "array", "items": _all({"prefix": STRING, "ttl_s": NUMBER})}, "expired_since_start": INTEGER}), "the rules"),
        ),
        "post": _operation(
            "post", "setTtl", "Make the fields under a prefix expire", "ttl", _ok(201, _object({"prefix": STRING, "ttl_s": NUMBER, "fleet_not_confirmed": FLEET_NOT_CONFIRMED}, ("prefix", "ttl_s")), "set"),
            body=TTL_BODY, action="ttl.set",
        ),
        "delete": _operation(
            "delete", "deleteTtl", "Remove a TTL rule", "ttl", _ok(200, _object({"removed": STRING, "fleet_not_confirmed": FLEET_NOT_CONFIRMED}, ("removed",)), "removed"),
            parameters=[_query("prefix", STRING, "the rule's prefix")], errors={"404": "no TTL rule for that prefix"}, action="ttl.delete",
        ),
    },
    "/-/api/snapshots": {
        "get": _operation(
            "get", "listSnapshots", "Snapshots, by name", "snapshots", _ok(200, _all({"snapshots": {"type": "array", "items": _ref("Snapshot")}}), "the snapshots")
        ),
        "post": _operation(
            "post", "createSnapshot", "Take a snapshot of the graph", "snapshots", _ok(201, _ref("Snapshot"), "taken"),
            body=_object({"label": {"type": "string", "pattern": LABEL_PATTERN, "default": ""}}), action="snapshot.create",
        ),
    },
    "/-/api/snapshots/{name}": {
        "delete": _operation(
            "delete", "deleteSnapshot", "Delete a snapshot", "snapshots", _ok(200, _all({"deleted": STRING}), "deleted"),
            parameters=SNAPSHOT, errors={"400": "not a snapshot name", "404": "no such snapshot"}, path_parameters=True,
            action="snapshot.delete",
        )
    },
    "/-/api/snapshots/{name}/restore": {
        "post": _operation(
            "post", "restoreSnapshot", "Put a snapshot's data back (undoes the resets issued after it)", "snapshots",
            _ok(200, RESTORED, "restored"), body=_object({"reason": STRING, "message": STRING}), parameters=SNAPSHOT,
            errors={"400": "not a snapshot name", "404": "no such snapshot"}, path_parameters=True, action="snapshot.restore",
        )
    },
    "/-/api/export": {
        "get": _operation(
            "get", "exportStore", "The whole store as gunrelay-jsonl lines (docs/interchange.md), streamed", "store",
            {"200": {"description": "a header line, then one line per field", "content": {NDJSON: {"schema": STRING}}}},
        )
    },
    "/-/api/import": {
        "post": {
            **_operation(
                "post", "importFields", "Merge gunrelay-jsonl field lines into the running relay (fence, SEA, HAM as for a put)", "store",
                _ok(200, IMPORTED, "imported (see the counts)"),
                parameters=[_query("dry_run", {"enum": ["true", "false"], "default": "false"}, "check and count, write nothing")],
                errors={"400": "the first line is not a gunrelay-jsonl header, or it carries resets or TTL rules (import those offline); nothing was changed"},
                action="store.import",
            ),
            "requestBody": {
                "required": False,
                "description": "A gunrelay-jsonl header line without resets or TTL rules, then one field per line "
                f"({{\"soul\", \"key\", \"value\", \"state\"}}); lines over {16 << 20} bytes are malformed.",
                "content": {NDJSON: {"schema": STRING}},
            },
        }
    },
    "/-/api/audit": {
        "get": _operation(
            "get", "audit", "The audit log, newest first, a page at a time", "audit", _ok(200, AUDIT_PAGE, "a page"),
            parameters=[
                _query("page", {"type": "integer", "minimum": 1, "maximum": 10**9, "default": 1}, "the page, from 1"),
                _query("per_page", {"type": "integer", "minimum": 1, "maximum": 500, "default": 50}, "entries a page"),
            ],
        )
    },
    "/-/api/logs": {
        "get": _operation(
            "get", "logs", "Recent log records, newest last", "audit", _ok(200, LOGS, "the records"),
            parameters=[
                _query("level", {"enum": ["debug", "info", "warning", "error"], "default": "info"}, "the lowest level shown"),
                _query("limit", {"type": "integer", "minimum": 0, "maximum": 5000, "default": 500}, "at most this many records"),
            ],
        )
    },
    "/-/api/privacy": {
        "post": _operation(
            "post", "setPrivacy", "Turn privacy mode (anonymised addresses) on or off", "privacy", _ok(200, _all({"privacy": BOOLEAN}), "set"),
            body=_object({"enabled": BOOLEAN}, ("enabled",)), action="privacy.set",
        )
    },
    "/health": {
        "get": {
            "operationId": "health",
            "summary": "Liveness and readiness (public)",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": _json({"allOf": [HEALTH, {"properties": {"status": {"const": "ok"}}}]}, "serving"),
                "503": _json(
                    {"oneOf": [_all({"status": {"const": "starting"}}), {"allOf": [HEALTH, {"properties": {"status": {"const": "degraded"}}}]}]},
                    "not serving yet, or writes cannot be made durable (every write is refused meanwhile)",
                ),
            },
        }
    },
    "/version": {
        "get": {
            "operationId": "version",
            "summary": "Versions (public)",
            "tags": ["meta"],
            "security": [],
            "responses": {"200": _json(_all({"version": STRING, "python": STRING, "gun": _nullable(STRING)}), "the versions")},
        }
    },
    "/metrics": {
        "get": {
            "operationId": "metrics",
            "summary": "Prometheus metrics (no token; refused outside --admin-allow)",
            "tags": ["meta"],
            "security": [],
            "responses": {
                "200": {"description": "the Prometheus text format", "content": {"text/plain": {"schema": STRING}}},
                "403": _error("the address is outside --admin-allow"),
            },
        }
    },
}

# Where an answer's values lead (OpenAPI links: for readers, and for schemathesis's stateful tests):
# (path, method, status) -> {link name: (operationId, parameter, runtime expression)}
LINKS: dict[tuple[str, str, str], dict[str, tuple[str, str, str]]] = {
    ("/-/api/bans", "post", "201"): {"LiftTheBan": ("deleteBan", "address", "$response.body#/banned/0/address")},
    ("/-/api/bans", "get", "200"): {"LiftABan": ("deleteBan", "address", "$response.body#/bans/0/address")},
    ("/-/api/peers", "get", "200"): {
        "KickAPeer": ("kickPeer", "peer_id", "$response.body#/peers/0/id"),
        "BanAPeer": ("banPeer", "peer_id", "$response.body#/peers/0/id"),
    },
    ("/-/api/resets", "post", "201"): {
        "ShowTheReset": ("showReset", "reset_id", "$response.body#/record/reset_id"),
        "QuarantineTheReset": ("quarantine", "reset_id", "$response.body#/record/reset_id"),
    },
    ("/-/api/resets", "get", "200"): {"ShowAReset": ("showReset", "reset_id", "$response.body#/resets/0/record/reset_id")},
    ("/-/api/rotations", "post", "201"): {"ShowTheRotation": ("showReset", "reset_id", "$response.body#/record/reset_id")},
    ("/-/api/ttl", "post", "201"): {"RemoveTheRule": ("deleteTtl", "prefix", "$response.body#/prefix")},
    ("/-/api/snapshots", "post", "201"): {
        "RestoreTheSnapshot": ("restoreSnapshot", "name", "$response.body#/name"),
        "DeleteTheSnapshot": ("deleteSnapshot", "name", "$response.body#/name"),
    },
    ("/-/api/snapshots", "get", "200"): {"DeleteASnapshot": ("deleteSnapshot", "name", "$response.body#/snapshots/0/name")},
}
for (_path, _method, _status), _links in LINKS.items():
    PATHS[_path][_method]["responses"][_status]["links"] = {
        name: {"operationId": target, "parameters": {parameter: expression}} for name, (target, parameter, expression) in _links.items()
    }

SPEC: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "gunrelay admin API",
        "version": __version__,
        "description": "The operator's JSON API under /-/api/ (the console and the CLI use it); see docs/console-api.md. "
        "A refused request gets a 4xx with {\"error\": \"...\"} and changes nothing. Every request that changes "
        "something is written to the audit log.",
    },
    "paths": PATHS,
    "components": {
        "schemas": SCHEMAS,
        "securitySchemes": {
            "operatorToken": {
                "type": "http",
                "scheme": "bearer",
                "description": "The operator token (GUNRELAY_ADMIN_TOKEN or DATA/admin-token), for the CLI and scripts: no CSRF token needed.",
            },
            "session": {
                "type": "apiKey",
                "in": "cookie",
                "name": COOKIE,
                "description": "A console session, opened by POST /-/api/login.",
            },
            "csrf": {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRF-Token",
                "description": "The session's CSRF token (from login or GET /-/api/session); needed with the session cookie on every POST, PUT, PATCH and DELETE.",
            },
        },
    },
    "tags": [{"name": name} for name in ("session", "figures", "peers", "bans", "resets", "namespaces", "ttl", "snapshots", "store", "audit", "privacy", "meta")],
}


def endpoint(auth: ConsoleAuth) -> Handler:
    """``GET /-/api/openapi.json``: no secret needed, but only inside ``--admin-allow``."""

    async def openapi(request: Request) -> Response:
        if not auth.allowed(client_address(request)):
            return error(403, "not allowed (--admin-allow)")
        return JSONResponse(SPEC)

    return openapi
