"""GUN's one-letter wire keys are read and written in one place: ``core`` (``core.wire`` for
messages, ``core.graph`` for nodes and relations). Everything else asks those modules, so a
string literal ``"#"``, ``"@"`` or ``">"`` in any module outside ``core/`` is a second copy of
the wire format, and this test names it."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gunrelay"
WIRE_KEYS = {"#", "@", ">"}

# Modules that still spell wire keys, each with why (every module is scanned, these included).
KNOWN: dict[str, str] = {}  # file -> why it may still name a wire key (none today)


def wire_key_literals(source: str) -> list[tuple[int, str]]:
    """(line, literal) for every string constant in ``source`` that is one of GUN's wire keys."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in WIRE_KEYS:
            found.append((node.lineno, node.value))
    return sorted(found)


def test_wire_keys_are_spelled_only_in_core():
    found = {path.relative_to(SRC).as_posix(): wire_key_literals(path.read_text()) for path in sorted(SRC.rglob("*.py"))}
    offenders = [
        f"{name}:{line}: {literal!r}"
        for name, literals in found.items()
        if not name.startswith("core/") and name not in KNOWN
        for line, literal in literals
    ]
    assert not offenders, "GUN wire keys outside core/ (use core.wire / core.graph):\n" + "\n".join(offenders)


def test_the_check_sees_what_it_looks_for():
    assert all((SRC / name).exists() for name in KNOWN)
    assert wire_key_literals('x = 1\ny = {"#": soul}[">"]\nz = m.get("@")\n') == [(2, "#"), (2, ">"), (3, "@")]
    assert wire_key_literals('"##" + "#x" + ">="') == []
