"""JavaScript's loose semantics where GunJS relies on them: ``undefined``, truthiness, ``||``,
number coercion, and ``String.match`` (GunJS's lex matcher, used by clients to filter what
they receive and by SEA certificates' write policies). Recorded behaviour: tests/vectors/lex.json.
"""

from __future__ import annotations

import math
import re
from typing import Any

from . import jsjson


class _Undefined:
    """JavaScript's ``undefined`` (a missing property), distinct from ``null`` (None)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "undefined"


UNDEFINED: Any = _Undefined()


# --------------------------------------------------------------------------------------------
# JavaScript semantics helpers


def truthy(v: Any) -> bool:
    if v is UNDEFINED or v is None or v is False:
        return False
    if v is True:
        return True
    if isinstance(v, (int, float)):
        return v == v and v != 0
    if isinstance(v, str):
        return v != ""
    return True  # objects and arrays, even empty ones


def prop(obj: Any, name: str) -> Any:
    """``obj[name]`` for a JSON value, where only objects have the properties SEA asks for."""
    if isinstance(obj, dict):
        return obj.get(name, UNDEFINED)
    return UNDEFINED


JS_WHITESPACE = "\t\n\v\f\r \u00a0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000\ufeff"
_PARSE_FLOAT = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)")
_STR_DECIMAL = re.compile(r"[+-]?(?:Infinity|(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?)\Z")
_STR_RADIX = re.compile(r"0(?:([xX])([0-9a-fA-F]+)|([oO])([0-7]+)|([bB])([01]+))\Z")


def _js_to_string(v: Any) -> str:
    if v is None:
        return "null"
    if v is UNDEFINED:
        return "undefined"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, str):
        return v
    if isinstance(v, (int, float)):
        if isinstance(v, float) and math.isnan(v):
            return "NaN"
        if isinstance(v, float) and math.isinf(v):
            return "Infinity" if v > 0 else "-Infinity"
        return jsjson.number_to_string(v)
    if isinstance(v, list):
        return ",".join("" if e is None or e is UNDEFINED else _js_to_string(e) for e in v)
    return "[object Object]"


def parse_float(v: Any) -> float:
    """``parseFloat(v)``: the longest decimal prefix after leading white space, else NaN."""
    text = _js_to_string(v).lstrip(JS_WHITESPACE)
    m = _PARSE_FLOAT.match(text)
    if m is None:
        return math.nan
    return float(m.group().replace("Infinity", "inf"))


def _js_string_to_number(text: str) -> float:
    text = text.strip(JS_WHITESPACE)
    if text == "":
        return 0.0
    if _STR_DECIMAL.match(text):
        return float(text.replace("Infinity", "inf"))
    m = _STR_RADIX.match(text)
    if m:
        if m.group(1):
            return float(int(m.group(2), 16))
        if m.group(3):
            return float(int(m.group(4), 8))
        return float(int(m.group(6), 2))
    return math.nan


def to_number(v: Any) -> float:
    if v is True:
        return 1.0
    if v is False or v is None:
        return 0.0
    if isinstance(v, (int, float)):
        return float(v)
    if isinstance(v, str):
        return _js_string_to_number(v)
    if v is UNDEFINED:
        return math.nan
    return _js_string_to_number(_js_to_string(v))  # objects: ToPrimitive gives their string


def _js_compare(text: str, other: Any) -> int | None:
    """Compare a string with any JSON value as JS's ``<``/``>`` do; None when NaN is involved."""
    if isinstance(other, (list, dict)):
        other = _js_to_string(other)
    if isinstance(other, str):
        a, b = jsjson.utf16_key(text), jsjson.utf16_key(other)
        return (a > b) - (a < b)
    x, y = _js_string_to_number(text), to_number(other)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


def _js_or(*values: Any) -> Any:
    """``a || b || c``: the first truthy operand, else the last one."""
    for v in values[:-1]:
        if truthy(v):
            return v
    return values[-1]


def string_match(t: Any, o: Any) -> bool:
    """GunJS's ``String.match(t, o)`` (gun/src/shim.js), the lex matcher SEA certificates use.

    Lex: a string (exact), ``{"=": s}`` exact, ``{"*": s}`` prefix, ``{">": a, "<": b}`` range
    (inclusive, either bound optional; ``>`` alone also matches as a prefix), with JavaScript's
    truthiness and comparison rules for anything odd.
    """
    if not isinstance(t, str):
        return False
    if isinstance(o, str):
        o = {"=": o}
    if not truthy(o):
        o = {}
    eq, star, gt, lt = prop(o, "="), prop(o, "*"), prop(o, ">"), prop(o, "<")
    tmp = _js_or(eq, star, gt, lt)
    if isinstance(tmp, str) and t == tmp:
        return True
    if eq is not UNDEFINED:
        return False
    tmp = _js_or(star, gt)
    if isinstance(tmp, str) and jsjson.utf16_key(t).startswith(jsjson.utf16_key(tmp)):
        return True
    if star is not UNDEFINED:
        return False
    if gt is not UNDEFINED and lt is not UNDEFINED:
        a, b = _js_compare(t, gt), _js_compare(t, lt)
        return a is not None and a >= 0 and b is not None and b <= 0
    if gt is not UNDEFINED:
        c = _js_compare(t, gt)
        if c is not None and c >= 0:
            return True
    if lt is not UNDEFINED:
        c = _js_compare(t, lt)
        if c is not None and c <= 0:
            return True
    return False
