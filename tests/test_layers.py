"""The layers, read from the source: which package may import which.

Bottom to top: the pure domain (`agreements`, then the payload types in `activities.models`),
infrastructure (`infra`: settings, database, SMTP), workflows (the domain only), the
consolidated report (`reports`: the domain only, rendering included) and activities (the
domain, infrastructure and reports), the composition root (`worker.py`), and the entry points
(`accord`), which use everything. An import that goes upward, or a cycle, fails here with the
file and the name.

Every import counts, at the top of a module or inside a function or `TYPE_CHECKING` block, and
so does the package `__init__` that importing `a.b` runs first. Tests and bench are not read.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from functools import cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("agreements", "workflows", "activities", "infra", "reports", "accord")
ENTRY_POINTS = ("accord",)

PAYLOADS = "activities.models"
"""Activity payload types: the one module of `activities` that workflows may use."""

PROJECT_IMPORTS = {
    "agreements": {"agreements"},
    PAYLOADS: {"agreements"},
    "workflows": {"agreements", "workflows", PAYLOADS},
    "infra": {"agreements", "infra"},
    "reports": {"agreements", PAYLOADS, "reports"},
    "activities": {"agreements", PAYLOADS, "activities", "infra", "reports"},
    "worker": {"agreements", PAYLOADS, "infra", "workflows", "activities", "reports"},
}
"""Per layer, the layers its modules may import. `accord` (the CLI and the commands' engine
parts) may import any; `worker.py`, the composition root, any but `accord`."""

WORKFLOW_LIBRARIES = {"temporalio", "pydantic", "pydantic_core"}
"""Besides the standard library, all that workflow modules import."""

NOT_UNDER_WORKFLOWS = {"sqlalchemy", "aiosmtplib", "aiosmtpd", "apscheduler", "pydantic_settings"}
"""Libraries no module that a workflow loads (even indirectly) may import."""

NOT_IN_DOMAIN = {"temporalio", "sqlalchemy", "aiosmtplib", "aiosmtpd", "pydantic_settings"}
"""The domain knows no engine, no database and no mail."""


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


@cache
def project_modules() -> dict[str, Path]:
    found = {"worker": ROOT / "worker.py"}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            found[_module_name(path)] = path
    return found


def _imported(path: Path) -> Iterator[tuple[str, int]]:
    """Every module named by an import in `path`, with its line."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            yield base, node.lineno
            for alias in node.names:  # `from accord.cli import tasks`: a module
                if f"{base}.{alias.name}" in project_modules():
                    yield f"{base}.{alias.name}", node.lineno


@cache
def imports() -> dict[str, list[tuple[str, int]]]:
    """Per project module, the modules it imports (project and third-party), with lines."""
    return {name: list(_imported(path)) for name, path in project_modules().items()}


def _project_module(imported: str) -> str | None:
    """The project module an import loads, or None for the standard library and libraries."""
    while imported and imported not in project_modules():
        imported = imported.rpartition(".")[0]
    return imported or None


def _loaded(imported: str) -> list[str]:
    """The project modules that importing `imported` runs: its packages' `__init__`s first
    (one that imports nothing loads nothing, and is left out)."""
    module = _project_module(imported)
    if module is None:
        return []
    parts = module.split(".")
    packages = [".".join(parts[:i]) for i in range(1, len(parts))]
    return [package for package in packages if imports()[package]] + [module]


def _layer(module: str) -> str:
    return PAYLOADS if module == PAYLOADS else module.split(".")[0]


def _where(module: str, line: int) -> str:
    return f"{project_modules()[module].relative_to(ROOT)}:{line}"


def _library(imported: str) -> str:
    return imported.split(".")[0]


def test_each_layer_imports_only_the_layers_below() -> None:
    upward = [
        f"{_where(module, line)}: {module} imports {imported}"
        for module, found in imports().items()
        if _layer(module) not in ENTRY_POINTS
        for imported, line in found
        for target in _loaded(imported)
        if target != module and _layer(target) not in PROJECT_IMPORTS[_layer(module)]
    ]
    assert upward == []


def test_workflows_import_only_the_standard_library_temporalio_pydantic_and_the_domain() -> None:
    libraries = [
        f"{_where(module, line)}: {module} imports {imported}"
        for module, found in imports().items()
        if _layer(module) == "workflows"
        for imported, line in found
        if _project_module(imported) is None
        and _library(imported) not in sys.stdlib_module_names
        and _library(imported) not in WORKFLOW_LIBRARIES
    ]
    assert libraries == []


def _reached_from(start: set[str]) -> set[str]:
    reached, todo = set(start), list(start)
    while todo:
        for imported, _ in imports()[todo.pop()]:
            for target in _loaded(imported):
                if target not in reached:
                    reached.add(target)
                    todo.append(target)
    return reached


def test_nothing_a_workflow_loads_imports_infrastructure_libraries() -> None:
    workflows = {module for module in project_modules() if _layer(module) == "workflows"}
    reached = _reached_from(workflows)
    assert {_layer(module) for module in reached} <= {"agreements", "workflows", PAYLOADS}
    found = [
        f"{_where(module, line)}: {module} imports {imported}"
        for module in sorted(reached)
        for imported, line in imports()[module]
        if _library(imported) in NOT_UNDER_WORKFLOWS
    ]
    assert found == []


def test_the_domain_knows_no_engine_database_or_mail() -> None:
    found = [
        f"{_where(module, line)}: {module} imports {imported}"
        for module, found in imports().items()
        if _layer(module) in ("agreements", PAYLOADS)
        for imported, line in found
        if _library(imported) in NOT_IN_DOMAIN
    ]
    assert found == []


def test_reports_know_no_engine_database_or_mail() -> None:
    """A report is computed and rendered from its inputs alone: whoever gathers them (the CLI,
    the digest activity, the simulator) does the I/O."""
    found = [
        f"{_where(module, line)}: {module} imports {imported}"
        for module, found in imports().items()
        if _layer(module) == "reports"
        for imported, line in found
        if _library(imported) in NOT_IN_DOMAIN
    ]
    assert found == []


def _cycles(modules: set[str]) -> list[list[str]]:
    """Import cycles among `modules`, by the imports they name (a package's own `__init__`
    re-exporting its modules is not counted: Python runs it first, not in a circle)."""
    edges = {
        module: sorted(
            {
                target
                for imported, _ in imports()[module]
                if (target := _project_module(imported)) in modules and target != module
            }
        )
        for module in modules
    }
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(module: str) -> None:
        state[module] = 1
        path.append(module)
        for target in edges[module]:
            if state.get(target) == 1:
                cycles.append([*path[path.index(target) :], target])
            elif target not in state:
                visit(target)
        path.pop()
        state[module] = 2

    for module in sorted(modules):
        if module not in state:
            visit(module)
    return cycles


def test_no_import_cycle_in_the_domain_workflows_activities_or_infrastructure() -> None:
    for layer in ("agreements", "workflows", "activities", "infra", "reports"):
        modules = {
            module
            for module, path in project_modules().items()
            if module.split(".")[0] == layer and path.name != "__init__.py"
        }
        assert _cycles(modules) == [], layer


def test_the_layers_are_read_from_every_module() -> None:
    """The rules above see the whole tree: each package's modules and the worker."""
    names = set(project_modules())
    assert {"worker", "agreements.loader", "workflows.obligation", "infra.db"} <= names
    assert {"activities.mail", "accord.cli.commands", "agreements.yaml_files"} <= names
