"""The layout keeps its promises: no import cycle between modules of bot/ and handlers/, none
between their packages either (arrows point down only), and the handlers reach no deeper
than intake."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("bot", "handlers")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported_modules(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules `path` imports, at any depth of the file (lazy imports count)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                module = ".".join([*base, *([node.module] if node.module else [])])
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in known and m != name}


def import_graph() -> dict[str, set[str]]:
    paths = {
        module_name(path): path
        for package in PACKAGES
        for path in (REPO_ROOT / package).rglob("*.py")
    }
    known = set(paths)
    return {name: imported_modules(path, name, known) for name, path in paths.items()}


def package_of(module: str) -> str:
    """bot.runs.tracker → bot.runs; bot.config → bot.config; handlers.slack → handlers."""
    parts = module.split(".")
    if parts[0] != "bot":
        return parts[0]
    if len(parts) > 1 and (REPO_ROOT / "bot" / parts[1]).is_dir():
        return f"bot.{parts[1]}"
    return module


def package_graph(graph: Mapping[str, Iterable[str]]) -> dict[str, set[str]]:
    packages: dict[str, set[str]] = {}
    for module, imports in graph.items():
        source = package_of(module)
        if source == "bot":  # bot/__init__.py holds nothing
            continue
        packages.setdefault(source, set())
        for target in imports:
            if package_of(target) not in (source, "bot"):
                packages[source].add(package_of(target))
    return packages


def find_cycle(graph: Mapping[str, Iterable[str]]) -> list[str] | None:
    """One import cycle as a path that returns to its start, or None."""
    visiting: list[str] = []
    done: set[str] = set()

    def visit(node: str) -> list[str] | None:
        if node in visiting:
            return [*visiting[visiting.index(node) :], node]
        if node in done:
            return None
        visiting.append(node)
        for target in sorted(graph.get(node, ())):
            cycle = visit(target)
            if cycle is not None:
                return cycle
        visiting.pop()
        done.add(node)
        return None

    for start in sorted(graph):
        cycle = visit(start)
        if cycle is not None:
            return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_graph_sees_the_imports() -> None:
    graph = import_graph()
    assert "bot.runs.budget" in graph["bot.runs.dispatcher"]
    assert "bot.app" in graph["bot.devtools.console"]  # a lazy import inside a function
    assert "bot.intake.intake" in graph["handlers.slack"]


def test_no_module_import_cycle() -> None:
    cycle = find_cycle(import_graph())
    assert cycle is None, " → ".join(cycle or [])


def test_no_package_import_cycle() -> None:
    cycle = find_cycle(package_graph(import_graph()))
    assert cycle is None, " → ".join(cycle or [])


def test_handlers_only_translate() -> None:
    """Slack payloads in, RunRequests and replies out: no store, runs, Codegen or wiring."""
    reached = {package_of(m) for m in import_graph()["handlers.slack"]}
    assert reached <= {"bot.errors", "bot.intake", "bot.requests", "bot.slack"}, reached


def test_only_the_wiring_knows_runtime() -> None:
    users = {
        module
        for module, path in (
            (module_name(p), p) for package in PACKAGES for p in (REPO_ROOT / package).rglob("*.py")
        )
        if re.search(r"\bRuntime\b", path.read_text(encoding="utf-8"))
    }
    assert users == {"bot.app"}, users
