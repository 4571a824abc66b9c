"""Imports point one way: cli -> app -> admin -> server -> storage -> core; the core does no I/O.

A module may import its own layer, the layer right below it, and ``core`` (the vocabulary every
layer shares): nothing upward, and nothing that reaches around a layer (the console does not
touch storage except through the server). ``app.py`` is the one exception: it assembles every
piece, so it may import any layer below it. The Python client is a stack of its own, client ->
storage -> core, and no relay layer imports it.
"""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gunrelay"
ORDER = ["core", "storage", "server", "admin", "app", "cli"]  # bottom to top
TOP_LEVEL = {"app.py": "app", "config.py": "app", "cli.py": "cli", "remote.py": "cli", "__main__.py": "cli"}
ASSEMBLY = {"app.py"}  # may import every layer below
NO_IO = {"asyncio", "socket", "sqlite3", "threading", "subprocess", "os", "time", "random", "secrets", "logging"}


def layer_of_module(name: str) -> str | None:
    """The layer of an imported gunrelay module (None: the package itself, i.e. its version)."""
    parts = name.split(".")
    if parts[0] != "gunrelay" or len(parts) == 1:
        return None
    head = parts[1]
    if head in ("core", "storage", "server", "admin", "client"):
        return head
    return TOP_LEVEL.get(head + ".py")


def layer_of_file(path: Path) -> str:
    relative = path.relative_to(SRC)
    return relative.parts[0] if len(relative.parts) > 1 else TOP_LEVEL[relative.name]


def imports_of(path: Path) -> set[str]:
    names: set[str] = set()
    package = ".".join(path.relative_to(SRC.parent).with_suffix("").parts[:-1])
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module or "")
    return names


def allowed_layers(path: Path) -> set[str]:
    layer = layer_of_file(path)
    if layer == "client":
        return {"client", "storage", "core"}
    rank = ORDER.index(layer)
    if path.name in ASSEMBLY:
        return set(ORDER[: rank + 1])
    return {layer, "core"} | ({ORDER[rank - 1]} if rank else set())


def sources() -> list[Path]:
    return [p for p in SRC.rglob("*.py") if p.name != "__init__.py" or p.parent != SRC]


def test_every_source_file_has_a_layer():
    for path in sources():
        assert layer_of_file(path) in ORDER + ["client"], path


def test_imports_go_down_one_layer_at_a_time():
    offenders = []
    for path in sources():
        allowed = allowed_layers(path)
        for name in imports_of(path):
            layer = layer_of_module(name)
            if layer is not None and layer not in allowed:
                offenders.append(f"{path.relative_to(SRC)} ({layer_of_file(path)}) imports {name} ({layer})")
    assert not offenders, "\n".join(offenders)


def test_the_rule_catches_what_it_must():
    assert allowed_layers(SRC / "admin" / "api.py") == {"admin", "server", "core"}  # not storage
    assert allowed_layers(SRC / "cli.py") == {"cli", "app", "core"}
    assert allowed_layers(SRC / "client" / "peer.py") == {"client", "storage", "core"}
    assert "app" in allowed_layers(SRC / "app.py") and "storage" in allowed_layers(SRC / "app.py")
    assert layer_of_module("gunrelay.server.relay") == "server" and layer_of_module("gunrelay.config") == "app"


def test_core_does_no_io():
    for path in (SRC / "core").glob("*.py"):
        roots = {name.split(".")[0] for name in imports_of(path)}
        assert not roots & NO_IO, f"{path.name} imports {roots & NO_IO}"
