"""Imports point one way: cli -> app -> server -> storage -> core, and the core does no I/O."""

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "gunrelay"
LAYERS = ["core", "storage", "server"]  # each may import only the ones before it
CLIENT_MAY_USE = {"gunrelay.core", "gunrelay.storage", "gunrelay.client"}  # a peer, not a relay
NO_IO = {"asyncio", "socket", "sqlite3", "threading", "subprocess", "os", "time", "random", "secrets", "logging"}


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


def test_layers_import_downwards_only():
    for rank, layer in enumerate(LAYERS):
        allowed = {f"gunrelay.{name}" for name in LAYERS[: rank + 1]}
        for path in (SRC / layer).glob("*.py"):
            for name in imports_of(path):
                if name.startswith("gunrelay."):
                    assert any(name == a or name.startswith(a + ".") for a in allowed), f"{path.name} imports {name}"


def test_the_python_client_stands_on_core_and_storage_only():
    for path in (SRC / "client").glob("*.py"):
        for name in imports_of(path):
            if name.startswith("gunrelay."):
                assert any(name == a or name.startswith(a + ".") for a in CLIENT_MAY_USE), f"{path.name} imports {name}"


def test_core_does_no_io():
    for path in (SRC / "core").glob("*.py"):
        roots = {name.split(".")[0] for name in imports_of(path)}
        assert not roots & NO_IO, f"{path.name} imports {roots & NO_IO}"
