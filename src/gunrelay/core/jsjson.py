"""JavaScript's ``JSON.stringify``, reproduced exactly, and JS string ordering.

GUN decides equal-state conflicts by comparing ``JSON.stringify(value)`` as JavaScript strings
(UTF-16 code-unit order), and SEA signs ``JSON.stringify({"#","." ,":",">"})``. Python's ``json``
differs from JavaScript in number formatting (``1e-07`` vs ``1e-7``, ``1.5e+16`` vs
``15000000000000000``, ``1.0`` vs ``1``), in escaping, and ``str`` compares by code point, not by
UTF-16 code unit. This module is the one place that knows the JavaScript rules.
"""

from __future__ import annotations

import math
import re
from typing import Any

_MAX_SAFE = 2**53

# Characters JSON.stringify escapes: '"', '\\', the C0 controls, and lone surrogates.
_NEEDS_ESCAPE = re.compile(r'["\\\x00-\x1f\ud800-\udfff]')
_SHORT_ESCAPES = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def _escape_char(match: re.Match[str]) -> str:
    ch = match.group()
    short = _SHORT_ESCAPES.get(ch)
    if short is not None:
        return short
    return "\\u%04x" % ord(ch)


def _pair_surrogates(text: str) -> str:
    # Two adjacent surrogate code points form one astral character in JavaScript.
    return text.encode("utf-16-be", "surrogatepass").decode("utf-16-be", "surrogatepass")


def stringify_string(text: str) -> str:
    if _NEEDS_ESCAPE.search(text) is None:
        return '"' + text + '"'
    if re.search("[\ud800-\udbff][\udc00-\udfff]", text):
        text = _pair_surrogates(text)
    return '"' + _NEEDS_ESCAPE.sub(_escape_char, text) + '"'


def number_to_string(value: float | int) -> str:
    """``Number.prototype.toString()`` for a finite number (what JSON.stringify prints)."""
    if isinstance(value, bool):
        raise TypeError("bool is not a number")
    if isinstance(value, int):
        if -_MAX_SAFE <= value <= _MAX_SAFE:
            return str(value)
        try:
            value = float(value)
        except OverflowError:  # beyond the double range: JSON.parse gives Infinity, stringify "null"
            return "null"
    if not math.isfinite(value):
        return "null"
    if value == 0:
        return "0"  # also -0
    sign = "-" if value < 0 else ""
    # repr gives the shortest round-trip digits; re-lay them out by the ECMAScript rules.
    text = repr(abs(value))
    mantissa, _, exp_part = text.partition("e")
    exponent = int(exp_part) if exp_part else 0
    whole, _, frac = mantissa.partition(".")
    if frac == "0":
        frac = ""
    digits = (whole + frac).lstrip("0")
    # position of the decimal point relative to the start of `digits`
    point = len(whole) + exponent - (len(whole + frac) - len((whole + frac).lstrip("0")))
    digits = digits.rstrip("0") or "0"
    k = len(digits)
    n = point
    if k <= n <= 21:
        body = digits + "0" * (n - k)
    elif 0 < n <= 21:
        body = digits[:n] + "." + digits[n:]
    elif -6 < n <= 0:
        body = "0." + "0" * (-n) + digits
    else:
        e = n - 1
        exp_text = ("+" if e >= 0 else "-") + str(abs(e))
        body = digits[0] + ("." + digits[1:] if k > 1 else "") + "e" + exp_text
    return sign + body


def _is_array_index(key: str) -> bool:
    return key.isascii() and key.isdigit() and (key == "0" or key[0] != "0") and int(key) < 2**32 - 1


def stringify(value: Any) -> str:
    """``JSON.stringify(value)`` for values parsed from JSON (None, bool, int, float, str, list, dict)."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return stringify_string(value)
    if isinstance(value, (int, float)):
        return number_to_string(value)
    if isinstance(value, dict):
        keys = list(value.keys())
        if any(_is_array_index(k) for k in keys):
            index_keys = sorted((k for k in keys if _is_array_index(k)), key=int)
            keys = index_keys + [k for k in keys if not _is_array_index(k)]
        return "{" + ",".join(stringify_string(k) + ":" + stringify(value[k]) for k in keys) + "}"
    if isinstance(value, (list, tuple)):
        return "[" + ",".join(stringify(item) for item in value) + "]"
    raise TypeError(f"cannot stringify {type(value).__name__}")


def utf16_key(text: str) -> bytes:
    """A sort key that orders Python strings the way JavaScript compares them (UTF-16 code units)."""
    return text.encode("utf-16-be", "surrogatepass")
