"""SEA write verification: which (soul, key, value, state) a relay may accept, as GunJS decides it.

Theory of operation
-------------------
GunJS's SEA adapter (``sea/index.js`` ``check``, npm gun 0.2020.1241) runs once per key that
won HAM, and picks a rule by the soul, in this order:

1. ``<?N`` anywhere in the soul: a write whose state is older than ``now - N s`` is dropped
   (GunJS silently; we return a string starting with ``"Expired"``). Otherwise fall through.
2. soul ``~@`` (the alias index): the value must be the relation ``{"#": "~@" + key}``.
3. soul starting ``~@`` (one alias's list of pubs): the value must be ``{"#": key}``.
4. user space, i.e. :func:`user_space_pub` finds a pub in the soul:

   * key ``pub`` on exactly ``~<pub>`` must be the plain pub string;
   * every other value must be the JSON text ``{":": value, "~": signature}`` where the
     signature is ECDSA P-256 over ``SHA-256(JSON.stringify({"#": soul, ".": key, ":": value,
     ">": state}))`` (JS serialization via :mod:`gunrelay.core.jsjson`), encoded as base64 of
     the raw 64-byte ``r || s``. WebCrypto hashes its input again, so for ``cryptography`` the
     32-byte digest is the message and ``ECDSA(SHA256())`` the algorithm;
   * a value may name another writer in ``"*"`` and carry the owner's certificate in ``"+"``
     (``{"m": {c, w, e?, wb?}, "s": sig}``); the value is then verified with the ``*`` pub, the
     certificate with the owner's pub, and its expiry, certificants, write policy (lex matched
     by GunJS's ``String.match``), the ``+`` "pub must be in the path" flag and the write-block
     list are checked.
5. a soul containing ``#`` (content addressing): the part of the *key* after its last ``#``
   must be base64 (or hex) of SHA-256 of the value (its text if a string, else its JSON).
6. anything else is accepted.

Where gunrelay deliberately differs from GunJS (each case is a recorded vector in
``tests/vectors/sea.json`` with a ``deviation`` note):

* ``"*"`` without a valid ``"+"`` certificate is refused (GunJS accepts it: protocol notes 7.6).
* GunJS's silent drops get an error reply: bad certificate signature, certificant not listed,
  malformed certificate data ("Certificate verification fail."), expiring souls ("Expired...").
* No verification fallbacks: GunJS's ``fall_verify`` also accepts a signature over the text
  ``"[object Object]"`` (valid for any message of that signer), signatures given as arrays of
  bytes, and old ``{m, s}`` / ``SEA{m, s}`` values that are not bound to soul, key and state.
* Certificates are checked against both key orders a signer may have used: the received order
  (browsers, native JSON) and sorted keys (a Node peer whose ``lib/yson.js`` sorts keys when it
  stringifies). A Node relay only accepts the latter, a browser only the former.
* Write-block lists: GunJS's ``once()`` lookup never completes for a writer that is not listed
  (the write hangs forever); we treat "not listed" as not blocked. ``is_blocked=None`` means no
  lookup is possible and is treated as not blocked.
* Public keys must be canonical (two 43-character base64url coordinates of a point on P-256).
* An empty soul or key is refused (GunJS's SEA check returns without a word for them).

Everything here is pure and synchronous: no I/O, no clock (``now_ms`` is passed in), and no
exception escapes :func:`check_field` whatever the input.
"""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import json
import math
import re
from typing import Any, Callable

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from gunrelay.core import jsjson
from gunrelay.core.jsloose import JS_WHITESPACE as _JS_WS
from gunrelay.core.jsloose import UNDEFINED as _UNDEF
from gunrelay.core.jsloose import parse_float as _js_parse_float
from gunrelay.core.jsloose import prop as _prop
from gunrelay.core.jsloose import string_match as text_match
from gunrelay.core.jsloose import to_number as _js_to_number
from gunrelay.core.jsloose import truthy as _truthy

__all__ = [
    "user_space_pub",
    "check_field",
    "content_hash_ok",
    "signed_payload",
    "is_block_entry",
    "UNVERIFIED",
    "ACCOUNT_NOT_SAME",
    "ALIAS_NOT_SAME",
    "ALIAS_MUST_EXIST",
    "DATA_MUST_EXIST",
    "HASH_NOT_SAME",
    "CERT_EXPIRED",
    "CERT_FAIL",
    "CERT_REQUIRED",
    "EXPIRED",
    "EMPTY_SOUL_OR_KEY",
]

# Error texts. The first seven are GunJS's own words (its relay replies {"@": id, "err": text}).
UNVERIFIED = "Unverified data."
ACCOUNT_NOT_SAME = "Account not same!"
ALIAS_NOT_SAME = "Alias not same!"
ALIAS_MUST_EXIST = "Alias must exist!"
DATA_MUST_EXIST = "Data must exist!"
HASH_NOT_SAME = "Data hash not same as hash!"
CERT_EXPIRED = "Certificate expired."
CERT_FAIL = "Certificate verification fail."
# Ours (GunJS accepts these writes or drops them without a reply).
CERT_REQUIRED = "Certificate required for '*' writer."
EXPIRED = "Expired: older than the soul allows."
EMPTY_SOUL_OR_KEY = "Empty soul or key."


def _path_error(path: str, key: str, certificant: str) -> str:
    return f'Path "{path}" or key "{key}" must contain string "{certificant}".'


def _blocked_error(certificant: str) -> str:
    return f"Certificant {certificant} blocked."


# --------------------------------------------------------------------------------------------
# JSON


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _parse_int(text: str) -> int | float:
    # JS parses every number as a double; keep small integers exact, let float() round the rest
    # (also avoids int's digit limit and jsjson's int-to-float overflow for huge integers).
    if len(text) <= 16:
        return int(text)
    return float(text)


_decoder = json.JSONDecoder(parse_constant=_reject_constant, parse_int=_parse_int)


def _json_parse(text: str) -> Any:
    """``JSON.parse(text)``; raises ValueError (or RecursionError) on anything JS would refuse."""
    return _decoder.decode(text)


def _sea_parse(t: Any) -> Any:
    """SEA's ``S.parse``: JSON-parse a string (dropping a leading ``SEA``), else return it."""
    if not isinstance(t, str):
        return t
    if t.startswith("SEA{"):
        t = t[3:]
    try:
        return _json_parse(t)
    except (ValueError, RecursionError):
        return t


def _stringify_sorted(value: Any) -> str:
    """Stringify with every object's keys sorted (UTF-16 order), as lib/yson.js does in Node."""
    if isinstance(value, dict):
        keys = sorted(value, key=jsjson.utf16_key)
        return "{" + ",".join(jsjson.stringify_string(k) + ":" + _stringify_sorted(value[k]) for k in keys) + "}"
    if isinstance(value, list):
        return "[" + ",".join(_stringify_sorted(v) for v in value) + "]"
    return jsjson.stringify(value)


def _has_multikey_object(value: Any) -> bool:
    if isinstance(value, dict):
        return len(value) > 1 or any(_has_multikey_object(v) for v in value.values())
    if isinstance(value, list):
        return any(_has_multikey_object(v) for v in value)
    return False


def _utf8(text: str) -> bytes:
    """UTF-8 as TextEncoder makes it: lone surrogates become U+FFFD."""
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        paired = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
        return paired.encode("utf-8", "replace")


def _digests(value: Any) -> list[bytes]:
    """SHA-256 of ``value``'s JSON in received key order, then in sorted order if different."""
    first = jsjson.stringify(value)
    out = [hashlib.sha256(_utf8(first)).digest()]
    if _has_multikey_object(value):
        second = _stringify_sorted(value)
        if second != first:
            out.append(hashlib.sha256(_utf8(second)).digest())
    return out


def _message_digests(soul: str, key: str, value: Any, state: Any) -> list[bytes]:
    """Digests of ``JSON.stringify({"#": soul, ".": key, ":": value, ">": state})``.

    Built by hand (the four keys are fixed and already in sorted order); only ``value`` may
    hold objects whose key order depends on who stringified them.
    """
    head = '{"#":' + jsjson.stringify_string(soul) + ',".":' + jsjson.stringify_string(key) + ',":":'
    tail = ',">":' + jsjson.stringify(state) + "}"
    out = [hashlib.sha256(_utf8(head + jsjson.stringify(value) + tail)).digest()]
    if _has_multikey_object(value):
        first, second = jsjson.stringify(value), _stringify_sorted(value)
        if second != first:
            out.append(hashlib.sha256(_utf8(head + second + tail)).digest())
    return out


# --------------------------------------------------------------------------------------------
# keys and signatures

_PUB_CUT = re.compile(r"[^A-Za-z0-9_-]")
_B64URL_43 = re.compile(r"[A-Za-z0-9_-]{43}\Z")
_B64_BODY = re.compile(r"[A-Za-z0-9+/]*\Z")
_ASCII_WS = re.compile(r"[\t\n\f\r ]")
_ECDSA = ec.ECDSA(hashes.SHA256())


@functools.lru_cache(maxsize=8192)
def _user_space_pub(soul: str) -> str | None:
    parts = soul.split("~")
    if len(parts) < 2 or not parts[1]:
        return None
    seg = parts[1]
    cut = _PUB_CUT.search(seg)
    if cut is None:
        return None  # one segment only
    first = seg[: cut.start()]
    if ord(cut.group()) > 0xFFFF:
        # JavaScript splits by UTF-16 code unit: an astral character is two separators.
        second = ""
    else:
        rest = seg[cut.end() :]
        cut2 = _PUB_CUT.search(rest)
        second = rest if cut2 is None else rest[: cut2.start()]
    if first.startswith("@"):
        return None  # GunJS's test; unreachable, since '@' is itself a separator
    return first + "." + second


def user_space_pub(soul: str) -> str | None:
    """The pub that owns ``soul`` by SEA's rule (``SEA.opt.pub``, protocol notes 3.3), or None.

    Take the text between the first ``~`` and the next ``~`` (or the end), split it at every
    character outside ``[A-Za-z0-9_-]`` and join the first two parts with ``.``. Needs at least
    one separator. So ``~X.Y/profile`` gives ``X.Y``, and so do ``app~X.Y`` and ``~X.Y#x``;
    ``chat~room/1`` gives ``room.1`` (user space that no key can sign).
    """
    if not isinstance(soul, str) or not soul:
        return None
    return _user_space_pub(soul)


def _b64url_32(text: str) -> bytes | None:
    if not _B64URL_43.match(text):
        return None
    try:
        raw = base64.urlsafe_b64decode(text + "=")
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 32 else None


@functools.lru_cache(maxsize=4096)
def _public_key(pub: str) -> ec.EllipticCurvePublicKey | None:
    """The P-256 key for ``x.y`` (base64url JWK coordinates), or None if it is not one."""
    parts = pub.split(".")
    if len(parts) < 2:
        return None
    x, y = _b64url_32(parts[0]), _b64url_32(parts[1])
    if x is None or y is None:
        return None
    try:
        return ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b"\x04" + x + y)
    except ValueError:
        return None


def is_pub(text: str) -> bool:
    """Is ``text`` a SEA public key (``x.y``: two base64url P-256 coordinates on the curve)?"""
    return isinstance(text, str) and text.count(".") == 1 and _public_key(text) is not None


def _decode_signature(sig: Any) -> bytes | None:
    """``atob`` (WHATWG forgiving-base64) of a signature string, if it gives 64 bytes."""
    if not isinstance(sig, str) or not sig:
        return None
    if _ASCII_WS.search(sig):
        sig = _ASCII_WS.sub("", sig)
    if len(sig) % 4 == 0:
        if sig.endswith("=="):
            sig = sig[:-2]
        elif sig.endswith("="):
            sig = sig[:-1]
    if len(sig) % 4 == 1 or len(sig) > 90 or not _B64_BODY.match(sig):
        return None
    try:
        raw = binascii.a2b_base64(sig + "=" * (-len(sig) % 4))
    except (binascii.Error, ValueError):
        return None
    return raw if len(raw) == 64 else None


def _verify(pub: Any, sig: Any, digests: list[bytes]) -> bool:
    if not isinstance(pub, str):
        return False
    key = _public_key(pub)
    if key is None:
        return False
    raw = _decode_signature(sig)
    if raw is None:
        return False
    r, s = int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big")
    if r == 0 or s == 0:
        return False
    der = encode_dss_signature(r, s)
    for digest in digests:
        try:
            key.verify(der, digest, _ECDSA)
            return True
        except InvalidSignature:
            continue
    return False


# --------------------------------------------------------------------------------------------
# helpers for callers


def signed_payload(value: Any) -> Any:
    """The ``":"`` content of a signed user-space value (no verification), else ``value``.

    Useful to read values the relay stored after :func:`check_field` accepted them, e.g. for a
    certificate write-block lookup.
    """
    if isinstance(value, str) and value.startswith("{"):
        try:
            parsed = _json_parse(value)
        except (ValueError, RecursionError):
            return value
        if isinstance(parsed, dict) and ":" in parsed and _truthy(parsed.get("~", _UNDEF)):
            return parsed[":"]
    return value


def is_block_entry(value: Any) -> bool:
    """True when a stored write-block entry blocks its writer: GunJS tests ``=== 1 || === true``."""
    v = signed_payload(value)
    return v is True or (type(v) in (int, float) and v == 1)


def _hex_digit(ch: str) -> int:
    o = ord(ch)
    if 48 <= o <= 57:
        return o - 48
    if 97 <= o <= 102:
        return o - 87
    if 65 <= o <= 70:
        return o - 55
    return -1


def _js_parse_int_hex(text: str) -> float:
    """``parseInt(text, 16)``."""
    text = text.lstrip(_JS_WS)
    sign = 1
    if text[:1] in ("+", "-"):
        sign = -1 if text[0] == "-" else 1
        text = text[1:]
    if text[:2] in ("0x", "0X"):
        text = text[2:]
    n, seen = 0, False
    for ch in text:
        d = _hex_digit(ch)
        if d < 0:
            break
        n, seen = n * 16 + d, True
    return float(sign * n) if seen else math.nan


def _hex_to_bytes(text: str) -> bytes | None:
    """sea/index.js ``hexToBase64``, as bytes: one char per code-unit pair; None if not bytes."""
    units = text.encode("utf-16-le", "surrogatepass")
    chars = [chr(int.from_bytes(units[i : i + 2], "little")) for i in range(0, len(units), 2)]
    out = bytearray()
    for i in range(1, len(chars), 2):
        n = _js_parse_int_hex(chars[i - 1] + chars[i])
        code = 0 if math.isnan(n) else int(n) % 65536  # String.fromCharCode: ToUint16
        if code > 255:
            return None  # btoa would throw
        out.append(code)
    return bytes(out)


def content_hash_ok(key: str, value: object) -> bool:
    """Content addressing: the part of ``key`` after its last ``#`` is SHA-256 of ``value``.

    The value is hashed as its text if it is a string, else as its JSON; the hash may be written
    in base64 (with padding) or in hex (either case).
    """
    try:
        text = value if isinstance(value, str) else jsjson.stringify(value)
        digest = hashlib.sha256(_utf8(text)).digest()
    except (TypeError, ValueError, RecursionError, OverflowError):
        return False
    want = key.split("#")[-1]
    if base64.b64encode(digest).decode("ascii") == want:
        return True
    # hexToBase64 reads code-unit pairs: only 64 or 65 units can give the 32 digest bytes.
    if len(want) > 65 or len(want.encode("utf-16-le", "surrogatepass")) not in (128, 130):
        return False
    return _hex_to_bytes(want) == digest


# --------------------------------------------------------------------------------------------
# the checks


def _link(value: Any) -> str | None:
    """The soul of a relation ``{"#": soul}`` (exactly one key, a non-empty string), else None."""
    if isinstance(value, dict) and len(value) == 1:
        soul = value.get("#")
        if isinstance(soul, str) and soul:
            return soul
    return None


def _expired(soul: str, state: Any, now_ms: float) -> bool:
    seconds = _js_parse_float(soul.split("<?")[1])
    if not _truthy(seconds):
        return False
    s = state if isinstance(state, (int, float)) and not isinstance(state, bool) else _js_to_number(state)
    return s < now_ms - seconds * 1000


def _wb_soul(wb: Any, owner: str) -> str | None:
    if isinstance(wb, str):
        # GunJS: root.get(wb) for a soul, else root.get('~'+owner).get(wb), which follows the link
        # stored at ~owner[wb]; user.get(wb) writes that link to the soul ~owner/wb.
        return wb if wb.startswith("~") else "~" + owner + "/" + wb
    target = _prop(wb, "#")
    exact = _prop(target, "=")
    if _truthy(exact):
        target = exact
    return target if isinstance(target, str) and target else None


@functools.lru_cache(maxsize=1024)
def _certificate_signature_ok(owner: str, sig: str, digests: tuple[bytes, ...]) -> bool:
    # A certificate is reused for every write its holder makes: remember the verdict.
    return _verify(owner, sig, list(digests))


def _check_certificate(
    soul: str,
    key: str,
    state: Any,
    owner: str,
    cert: dict[str, Any],
    certificant: str,
    is_blocked: Callable[[str, str], bool] | None,
) -> str | None:
    m, sig = cert.get("m"), cert.get("s")
    digests = [hashlib.sha256(_utf8(m)).digest()] if isinstance(m, str) else _digests(m)
    if not isinstance(sig, str) or not _certificate_signature_ok(owner, sig, tuple(digests)):
        return CERT_FAIL  # GunJS: silent
    data = _sea_parse(m)
    if not isinstance(data, dict):
        return CERT_FAIL  # GunJS: silent
    e = data.get("e", _UNDEF)
    if e is not _UNDEF and _truthy(state):
        limit = _js_parse_float(e)
        if not math.isnan(limit) and _js_to_number(state) > limit:
            return CERT_EXPIRED
    c, w = data.get("c", _UNDEF), data.get("w", _UNDEF)
    if not (_truthy(c) and _truthy(w)):
        return CERT_FAIL  # GunJS: silent
    # GunJS: data.c === certificant || data.c.indexOf('*' || certificant) > -1, and
    # ('*' || certificant) is '*': a list of certificants only ever matches through '*'.
    if not (isinstance(c, str) and c == certificant):
        if not isinstance(c, (str, list)):
            return CERT_FAIL  # GunJS: TypeError, silent
        if "*" not in c:
            return CERT_FAIL  # GunJS: silent
    slash = soul.find("/")
    path = soul[slash + 1 :] if slash >= 0 else ""
    policies = w if isinstance(w, list) else [w] if isinstance(w, (dict, str)) else []
    for lex in policies:
        if lex is None:
            return CERT_FAIL  # GunJS: TypeError, silent
        lex_soul, lex_key = _prop(lex, "#"), _prop(lex, ".")
        whole = path + "/" + key if path else key
        if not (
            (text_match(path, lex_soul) and text_match(key, lex_key))
            or (not _truthy(lex_key) and text_match(path, lex_soul))
            or (not _truthy(lex_soul) and text_match(key, lex_key))
            or text_match(whole, lex_soul if _truthy(lex_soul) else lex)
        ):
            continue
        plus = _prop(lex, "+")
        if _truthy(plus):
            if not isinstance(plus, (str, list)):
                return CERT_FAIL  # GunJS: TypeError, silent
            if "*" in plus and path and certificant not in path and certificant not in key:
                return _path_error(path, key, certificant)
        wb = data.get("wb", _UNDEF)
        if _truthy(wb) and (isinstance(wb, str) or _truthy(_prop(wb, "#"))):
            target = _wb_soul(wb, owner)
            if target is not None and is_blocked is not None and is_blocked(target, certificant):
                return _blocked_error(certificant)
        return None
    return CERT_FAIL


def _check_user_space(
    soul: str,
    key: str,
    value: Any,
    state: Any,
    owner: str,
    is_blocked: Callable[[str, str], bool] | None,
) -> str | None:
    if key == "pub" and soul == "~" + owner:
        return None if isinstance(value, str) and value == owner else ACCOUNT_NOT_SAME
    # sea/index.js SEA.opt.pack: only unpacks when soul, key and state are all truthy.
    if not _truthy(state) or not isinstance(value, str):
        return UNVERIFIED
    try:
        meta = _json_parse(value)
    except (ValueError, RecursionError):
        return UNVERIFIED
    if not isinstance(meta, dict) or ":" not in meta:
        return UNVERIFIED
    sig = meta.get("~", _UNDEF)
    if not _truthy(sig):
        return UNVERIFIED
    star = meta.get("*", _UNDEF)
    writer = star if _truthy(star) else owner
    if not isinstance(writer, str) or not _verify(writer, sig, _message_digests(soul, key, meta[":"], state)):
        return UNVERIFIED
    if not _truthy(star):
        return None
    cert = meta.get("+", _UNDEF)
    if not (isinstance(cert, dict) and _truthy(cert.get("m", _UNDEF)) and _truthy(cert.get("s", _UNDEF))):
        return CERT_REQUIRED  # GunJS accepts this (protocol notes 7.6); we close the hole
    return _check_certificate(soul, key, state, owner, cert, writer, is_blocked)


def _check(
    soul: Any,
    key: Any,
    value: Any,
    state: Any,
    now_ms: float,
    is_blocked: Callable[[str, str], bool] | None,
) -> str | None:
    if not isinstance(soul, str) or not isinstance(key, str) or not soul or not key:
        return EMPTY_SOUL_OR_KEY
    if "<?" in soul and _expired(soul, state, now_ms):
        return EXPIRED
    if soul == "~@":
        if not _truthy(value):
            return DATA_MUST_EXIST
        return None if _link(value) == "~@" + key else ALIAS_NOT_SAME
    if soul.startswith("~@"):
        if not _truthy(value):
            return ALIAS_MUST_EXIST
        return None if _link(value) == key else ALIAS_NOT_SAME
    owner = _user_space_pub(soul)
    if owner is not None:
        return _check_user_space(soul, key, value, state, owner, is_blocked)
    if "#" in soul:
        return None if content_hash_ok(key, value) else HASH_NOT_SAME
    return None


def check_field(
    soul: str,
    key: str,
    value: object,
    state: float | int,
    now_ms: float,
    is_blocked: Callable[[str, str], bool] | None = None,
) -> str | None:
    """None if the field may be accepted, else the error text to reply with.

    ``value`` is the parsed wire value (for user space the signed JSON *string*; None for a
    delete). ``state`` is the wire state, ``now_ms`` the relay's clock (only ``<?N`` souls use
    it). ``is_blocked(wb_soul, writer_pub)`` answers a certificate's write-block lookup: it
    must return True when the graph holds, at soul ``wb_soul`` and key ``writer_pub``, a value
    that is 1 or true after SEA unwrapping (see :func:`is_block_entry`). For a relative ``wb``
    name the soul passed is ``~<owner>/<wb>`` (where ``user.get(wb)`` puts it); GunJS instead
    follows the link stored at ``~<owner>[wb]``. None means no lookup: not blocked.

    Never raises: anything malformed is an error string (``"Unverified data."`` if nothing
    more specific applies). An exception from ``is_blocked`` counts as "cannot verify".
    """
    try:
        return _check(soul, key, value, state, now_ms, is_blocked)
    except Exception:  # noqa: BLE001 - garbage in, error string out
        return UNVERIFIED


# --------------------------------------------------------------------------------------------
# signing (the relay's own records)


def pub_of(private_key: ec.EllipticCurvePrivateKey) -> str:
    """The SEA ``pub`` (``base64url(x).base64url(y)``) of a P-256 key."""
    numbers = private_key.public_key().public_numbers()
    return _b64url(numbers.x.to_bytes(32, "big")) + "." + _b64url(numbers.y.to_bytes(32, "big"))


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def sign_field(private_key: ec.EllipticCurvePrivateKey, soul: str, key: str, value: Any, state: float | int) -> str:
    """The user-space wire value ``{":": value, "~": sig}`` GunJS's ``user.put`` would write."""
    [digest] = _message_digests(soul, key, value, state)[:1]
    r, s = decode_dss_signature(private_key.sign(digest, ec.ECDSA(hashes.SHA256())))
    signature = base64.b64encode(r.to_bytes(32, "big") + s.to_bytes(32, "big")).decode()
    return '{":":' + jsjson.stringify(value) + ',"~":' + jsjson.stringify_string(signature) + "}"
