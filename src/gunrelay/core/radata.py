"""A Node GUN relay's RAD files, read: one file's text in, the fields it holds out.

Theory of operation. npm ``gun`` 0.2020.1241 stores a Node relay's graph with RAD (``lib/store.js``
over ``lib/radisk.js``, ``lib/radix.js`` and the file system of ``lib/rfs.js``), in a folder
(``radata`` by default). What is in it:

- **Records.** Every field is one radix entry: the key is ``soul + ESC + key`` (ESC is U+001B)
  and the value is ``{":": value, ">": state}``, the field's GUN value (a string, number,
  boolean, ``null`` for a delete, or a relation ``{"#": soul}``) and its HAM state. Before
  0.2020 a value was one string instead: the value and the state each written in RAD's value
  encoding with ESC as separator, joined by ``>``; the relay still reads those, and so do we.
- **Files.** A radix tree is held as nested objects: each key fragment maps to a subtree, and a
  subtree's entry ``""`` holds the value of the key that ends there. 0.2020.1241 writes a file
  as that tree's ``JSON.stringify`` (``opt.jsonify``); without it radisk writes RAD's own text
  encoding (one line per tree node: its depth, ``#``, the key fragment, ``:`` and the value, each
  framed by U+001F, see ``parse_rad_text``), and reads both. A file holds full keys, so files
  can be read in any order; a key may be in two files after an interrupted split (HAM settles
  which copy wins on import).
- **Names.** A file holds about 1 MB of text; a larger one is split in two, the new one named
  after its first key (``encodeURIComponent``, ``*`` as ``%2A``); the first file is ``!``. The
  file ``%1C`` (U+001C) is RAD's list of the data files, not data.

``parse_file`` takes one file's text and gives its records, and for each entry that is not a
field, why (``BadEntry``); a file that cannot be read as a whole (not JSON, truncated, no root)
raises ``DamagedFile`` before anything is given, so a damaged file is skipped whole.
A key with ESC in it is ambiguous (GunJS itself reads such keys inconsistently): the soul ends at
the first ESC. No I/O here: the folder is walked in ``server/radata.py``.
"""

from __future__ import annotations

import math
import re
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .wire import loads

ESC = "\x1b"  # between soul and key in a record's key; the separator of legacy values
FRAME = "\x1f"  # frames each token of RAD's text encoding
DIRECTORY = "\x1c"  # the name (before encoding) of RAD's own list of files
VALUE = ":"
STATE = ">"
RELATION = "#"
LEAF = ""  # a radix node's entry holding the value of the key that ends there
SORT_CACHE = "\x18"  # radix.js keeps a sorted-keys function here; JSON.stringify drops it
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?Infinity")


class DamagedFile(ValueError):
    """A file that is not a RAD file as a whole (truncated, not JSON, no root)."""


@dataclass(frozen=True, slots=True)
class RadRecord:
    """One field as the file holds it; its shape is checked by whoever imports it."""

    soul: str
    key: str
    value: Any
    state: Any


@dataclass(frozen=True, slots=True)
class BadEntry:
    """An entry of a readable file that is not a field (its radix key, as far as readable)."""

    key: str
    reason: str


def file_key(name: str) -> str:
    """The radix key a file is named after (``!``, or the first key it held when split off)."""
    return urllib.parse.unquote(name, errors="strict")


def is_directory(name: str) -> bool:
    """True for RAD's list of files (``%1C``): bookkeeping, not data."""
    try:
        return file_key(name) == DIRECTORY
    except UnicodeDecodeError:
        return False


def parse_file(text: str) -> list[RadRecord | BadEntry]:
    """Every entry of one file's text, as records or bad entries; ``DamagedFile`` if the file
    cannot be read whole. JSON if it starts with ``{`` (as radisk decides), else RAD text."""
    entries = _json_entries(text) if text[:1] == "{" else parse_rad_text(text)
    return [_record(key, value) for key, value in entries]


def _json_entries(text: str) -> list[tuple[str, Any]]:
    try:
        tree = loads(text)
    except Exception as exc:  # truncated, not JSON, too deep
        raise DamagedFile(f"not a JSON radix tree: {str(exc)[:120]}") from None
    if type(tree) is not dict:
        raise DamagedFile("not a JSON radix tree: the top is not an object")
    return list(walk_tree(tree))


def walk_tree(tree: dict[str, Any]) -> Iterator[tuple[str, Any]]:
    """(full key, value) for every value in a radix tree of nested objects, in key order."""
    stack: list[tuple[str, dict[str, Any]]] = [("", tree)]
    while stack:
        prefix, node = stack.pop()
        children = []
        for fragment, sub in node.items():
            if fragment == SORT_CACHE:
                continue
            if fragment == LEAF:
                if prefix:
                    yield prefix, sub
                continue
            if type(sub) is not dict:
                raise DamagedFile(f"radix node {prefix + fragment!r} is not an object")
            children.append((prefix + fragment, sub))
        stack.extend(sorted(children, reverse=True))


def parse_rad_text(text: str) -> list[tuple[str, Any]]:
    """RAD's text encoding: per tree node ``depth # fragment [: value] \\n``, each a token framed
    by U+001F (``Radisk.encode``); depth says how many fragments before this one form its prefix."""
    position = 0
    tokens: list[tuple[str, Any]] = []
    while True:
        start = text.find(FRAME, position)
        if start < 0:
            break
        marker = text[position:start]
        value, position = _decode_token(text, start)
        tokens.append((marker, value))
    if text[position:] != "\n":
        raise DamagedFile("truncated: the file does not end with a node's newline")
    if not tokens or tokens[0] != ("", 0):
        raise DamagedFile("no root radix (the first token is not depth 0)")
    entries: list[tuple[str, Any]] = []
    prefix: list[str] = []
    index = 0
    while index < len(tokens):
        _, depth = tokens[index]
        if type(depth) is not int or depth < 0 or depth > len(prefix) or index + 1 >= len(tokens) or tokens[index + 1][0] != "#":
            raise DamagedFile(f"token {index}: a node must give its depth and '#' fragment")
        fragment = tokens[index + 1][1]
        if type(fragment) is not str:
            raise DamagedFile(f"token {index + 1}: a key fragment must be a string")
        prefix = prefix[:depth] + [fragment]
        index += 2
        if index < len(tokens) and tokens[index][0] in (VALUE, "="):
            entries.append(("".join(prefix), tokens[index][1]))
            index += 1
        if index < len(tokens) and tokens[index][0] != "\n":
            raise DamagedFile(f"token {index}: a node must end with a newline")
    return entries


def _decode_token(text: str, start: int, frame: str = FRAME) -> tuple[Any, int]:
    """``Radisk.decode``: n frames, a type letter, the content up to the n-th frame after it."""
    count = 0
    while text.startswith(frame, start + count):
        count += 1
    if count == 0:
        raise DamagedFile(f"no token at offset {start}")
    kind_at = start + count
    if kind_at >= len(text):
        raise DamagedFile(f"truncated token at offset {start}")
    end = kind_at
    for _ in range(count):
        end = text.find(frame, end + 1)
        if end < 0:
            raise DamagedFile(f"truncated token at offset {start}")
    return _typed(text[kind_at], text[kind_at + 1:end], start), end + 1


def _typed(kind: str, content: str, offset: int) -> Any:
    if kind == '"':
        return content
    if kind == RELATION:
        return {RELATION: content}
    if kind == " ":
        return None
    if kind == "-":
        return False
    if kind == "+":
        if not content:
            return True
        if not _NUMBER.fullmatch(content):
            raise DamagedFile(f"not a number at offset {offset}: {content[:40]!r}")
        number = float(content)
        return int(number) if number.is_integer() and abs(number) <= 2**53 else number
    raise DamagedFile(f"unknown value type {kind!r} at offset {offset}")


def _record(full_key: str, leaf: Any) -> RadRecord | BadEntry:
    soul, esc, key = full_key.partition(ESC)
    if not esc:
        return BadEntry(full_key, "the key has no soul/key separator (U+001B)")
    if type(leaf) is dict:
        if VALUE not in leaf or STATE not in leaf:
            return BadEntry(full_key, "the value is not {':': value, '>': state}")
        return RadRecord(soul, key, leaf[VALUE], leaf[STATE])
    if type(leaf) is str:
        return _legacy(full_key, soul, key, leaf)
    return BadEntry(full_key, f"the value is neither a field nor a legacy string ({type(leaf).__name__})")


def _legacy(full_key: str, soul: str, key: str, leaf: str) -> RadRecord | BadEntry:
    """Before 0.2020: ``encode(value) + '>' + encode(state)``, ESC-framed (``lib/store.js``'s old path)."""
    cut = leaf.rfind(STATE)
    problem = BadEntry(full_key, "a legacy value that does not decode")
    if cut < 0:
        return problem
    try:
        value, end = _decode_token(leaf[:cut], 0, ESC)
        state, state_end = _decode_token(leaf[cut + 1:], 0, ESC)
    except DamagedFile:
        return problem
    if end != cut or state_end != len(leaf) - cut - 1 or type(state) not in (int, float):
        return problem
    if type(state) is float and not math.isfinite(state):
        return problem
    return RadRecord(soul, key, value, state)
