"""The import rules of the project, checked: `python -m calicolab.layers`.

Each layer may import itself and the layers named for it, nothing above; there is no import
cycle between modules; an import inside a function is allowed only with a comment on its
line saying why; no module outside the config layer (CONFIG_LAYER) reads a CALICOLAB_*
variable. The unit test tests/unit/test_layers.py runs the same check.
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from calicolab.core.environment import PREFIX as ENV_PREFIX

ROOT = Path(__file__).resolve().parent.parent
CORE, STACK, INFRA = "calicolab.core", "calicolab.stack", "calicolab.infra"
DIAGNOSE, REPORT, UPGRADE, RUNS = "calicolab.diagnose", "calicolab.report", "calicolab.upgrade", "calicolab.runs"
ETCD_HISTORY, MEASURE = "calicolab.etcd_history", "calicolab.measure"
PROVISION, E2E, TASKS = "provision", "e2e", "tasks"
# Layer -> the layers it may import (besides itself), lowest first.
ALLOWED: dict[str, tuple[str, ...]] = {
    CORE: (),
    STACK: (CORE,),
    PROVISION: (CORE, STACK),
    INFRA: (CORE, STACK),
    DIAGNOSE: (CORE, STACK),
    REPORT: (CORE, STACK),
    ETCD_HISTORY: (CORE, STACK),
    # The measured window serves faults, rehearsals and drills alike: it knows no upgrade.
    MEASURE: (CORE, STACK, ETCD_HISTORY),
    UPGRADE: (CORE, STACK, PROVISION, DIAGNOSE, REPORT, ETCD_HISTORY, MEASURE),
    RUNS: (CORE, STACK, PROVISION, INFRA, DIAGNOSE, REPORT, ETCD_HISTORY, MEASURE, UPGRADE),
    # The e2e checks grade provisioning, so they never take expected values from it.
    E2E: (CORE, STACK, DIAGNOSE, REPORT, ETCD_HISTORY, MEASURE, UPGRADE),
    TASKS: (CORE, STACK, PROVISION, INFRA, DIAGNOSE, REPORT, ETCD_HISTORY, MEASURE, UPGRADE, RUNS),
}
SOURCES = ("calicolab", "provision", "e2e", "tasks.py")
# The only modules that read CALICOLAB_* variables: every other one takes its settings from the
# configuration, and the project's processes hand values on as options or through the run folder.
CONFIG_LAYER = ("calicolab/core/config.py", "calicolab/core/environment.py")


@dataclass(frozen=True)
class Import:
    module: str   # the importing module
    target: str   # the imported module
    line: int
    nested: bool  # inside a function
    reason: str   # the comment on its line, if any


@dataclass(frozen=True)
class Problem:
    where: str
    what: str

    def __str__(self) -> str:
        return f"{self.where}: {self.what}"


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def layer_of(module: str) -> str | None:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    return None


def python_files(root: Path = ROOT) -> Iterator[Path]:
    for name in SOURCES:
        path = root / name
        if path.is_file():
            yield path
        elif path.is_dir():
            yield from sorted(path.rglob("*.py"))


def imports_of(path: Path, root: Path = ROOT) -> list[Import]:
    text = path.read_text()
    lines = text.splitlines()
    module = module_name(path, root)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: list[Import] = []

    def visit(node: ast.AST, nested: bool) -> None:
        for child in ast.iter_child_nodes(node):
            inner = nested or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            targets: list[str] = []
            if isinstance(child, ast.Import):
                targets = [alias.name for alias in child.names]
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    base = ".".join(package.split(".")[: len(package.split(".")) - child.level + 1] + [base]).strip(".")
                # `from pkg import mod` imports pkg.mod when mod is a module of pkg
                targets = [f"{base}.{alias.name}" if _is_module(root, f"{base}.{alias.name}") else base
                           for alias in child.names]
            for target in targets:
                line = lines[child.lineno - 1]
                reason = line.split("#", 1)[1].strip() if "#" in line else ""
                found.append(Import(module, target, child.lineno, nested, reason))
            visit(child, inner)

    visit(ast.parse(text), False)
    return found


def _is_module(root: Path, dotted: str) -> bool:
    path = root.joinpath(*dotted.split("."))
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


def check(root: Path = ROOT) -> list[Problem]:
    problems: list[Problem] = []
    graph: dict[str, set[str]] = {}
    for path in python_files(root):
        for imp in imports_of(path, root):
            here, there = layer_of(imp.module), layer_of(imp.target)
            where = f"{path.relative_to(root)}:{imp.line}"
            if imp.nested and not imp.reason:
                problems.append(Problem(where, f"import of {imp.target} inside a function without a comment "
                                               "saying why (move it to the top)"))
            if there is None or here is None:
                continue  # the standard library, third-party packages, calico_double, tests
            if there != here and there not in ALLOWED[here]:
                problems.append(Problem(where, f"{here} must not import {imp.target} ({there} is not below it; "
                                               f"{here} may import {', '.join(ALLOWED[here]) or 'nothing'})"))
            if not imp.nested:
                graph.setdefault(imp.module, set()).add(imp.target)
    problems += [Problem(" -> ".join(cycle), "import cycle") for cycle in cycles(graph)]
    for path in python_files(root):
        if path.relative_to(root).as_posix() not in CONFIG_LAYER:
            problems += environment_reads(path, root)
    return problems


def _names_variable(node: ast.AST) -> bool:
    """A string, or an f-string's start, naming a CALICOLAB_ variable."""
    if isinstance(node, ast.JoinedStr) and node.values:
        node = node.values[0]
    return isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value.startswith(ENV_PREFIX)


def _is_environ(node: ast.AST) -> bool:
    """os.environ, or a mapping named environ (the functions that take one), or .items() of either."""
    if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in ("items", "keys"):
        node = node.func.value
    return (isinstance(node, ast.Attribute) and node.attr == "environ") or \
        (isinstance(node, ast.Name) and node.id == "environ")


def _reads(node: ast.AST) -> bool:
    if isinstance(node, ast.Call):  # os.environ.get(NAME), environ.pop(NAME), os.getenv(NAME)
        func = node.func
        getenv = (isinstance(func, ast.Attribute) and func.attr == "getenv") or \
            (isinstance(func, ast.Name) and func.id == "getenv")
        lookup = isinstance(func, ast.Attribute) and func.attr in ("get", "pop", "setdefault") and \
            _is_environ(func.value)
        return (getenv or lookup) and bool(node.args) and _names_variable(node.args[0])
    if isinstance(node, ast.Subscript):  # os.environ[NAME]
        return _is_environ(node.value) and _names_variable(node.slice)
    if isinstance(node, ast.Compare):  # NAME in os.environ
        return _names_variable(node.left) and any(isinstance(op, (ast.In, ast.NotIn)) for op in node.ops) and \
            any(_is_environ(c) for c in node.comparators)
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):  # picked by prefix
        return any(_is_environ(g.iter) for g in node.generators) and \
            any(_names_variable(n) for n in ast.walk(node))
    return False


def environment_reads(path: Path, root: Path = ROOT) -> list[Problem]:
    """CALICOLAB_* variables read outside the config layer: a name given to os.environ or getenv
    (a string, an f-string, a filter on the environment's keys), and module constants naming one
    (the way such reads hid: PLANT_ENV = "CALICOLAB_FAULT_PLANT")."""
    tree = ast.parse(path.read_text())
    rel = path.relative_to(root)
    fix = "declare it in config.SETTINGS and take it from the configuration, or pass it on as an option"
    found = [Problem(f"{rel}:{node.lineno}", f"module constant names {node.value.value} "  # type: ignore[union-attr]
                                             f"outside the config layer: {fix}")
             for node in tree.body
             if isinstance(node, (ast.Assign, ast.AnnAssign)) and node.value is not None
             and _names_variable(node.value) and isinstance(node.value, ast.Constant)]
    found += [Problem(f"{rel}:{node.lineno}", f"reads a CALICOLAB_* variable outside the config layer "
                                              f"({', '.join(CONFIG_LAYER)}): {fix}")
              for node in ast.walk(tree) if _reads(node)]
    return found


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Module-level import cycles (each reported once, from its smallest module name)."""
    found: list[list[str]] = []
    seen: set[tuple[str, ...]] = set()

    def walk(start: str, node: str, path: list[str]) -> None:
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                key = tuple(sorted(path))
                if key not in seen:
                    seen.add(key)
                    found.append([*path, start])
            elif nxt not in path and nxt > start:
                walk(start, nxt, [*path, nxt])

    for start in sorted(graph):
        walk(start, start, [start])
    return found


def main() -> int:
    problems = check()
    for problem in problems:
        print(problem)
    modules = sum(1 for _ in python_files())
    print(f"{modules} modules: " + (f"{len(problems)} problem(s)" if problems else
                                    "no upward import, no cycle, no unexplained function-level import, "
                                    "no CALICOLAB_* read outside the config layer"))
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
