"""The code's own rules, read from its source: every exception authserver raises on
purpose sits under ``AuthserverError`` in authserver/errors.py; the import graph has no
cycle, no package imports another's views, and an import inside a function says why."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
from pathlib import Path

from authlib.oauth2 import OAuth2Error

import authserver
from authserver.errors import AuthserverError

# authserver.resource is the library downstream services import on their own: its
# failures are Authlib's (OAuth2Error), and it imports nothing else of authserver.
STANDALONE = {"authserver.resource"}
# Importing these runs them (the command line; an app built from the environment).
ENTRY_POINTS = {"authserver.__main__", "authserver.wsgi"}


def modules() -> list[str]:
    names = [
        info.name
        for info in pkgutil.walk_packages(authserver.__path__, "authserver.")
        if ".migrations" not in info.name and info.name not in ENTRY_POINTS
    ]
    return ["authserver", *names]


def test_every_exception_is_an_authserver_error_defined_in_errors():
    strays = []
    for name in modules():
        module = importlib.import_module(name)
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ != name or not issubclass(cls, BaseException):
                continue
            if issubclass(cls, OAuth2Error):
                continue  # Authlib's protocol errors, answered by Authlib itself
            if name in STANDALONE:
                continue
            home = name in ("authserver.errors", "authserver.bearer")  # bearer: its own family
            if not home or not issubclass(cls, AuthserverError):
                strays.append(f"{name}.{cls_name}")
    assert strays == []


# --- the import graph ------------------------------------------------------------------
SOURCE = Path(authserver.__file__).parent


def module_files() -> dict[str, Path]:
    files = {}
    for path in SOURCE.rglob("*.py"):
        if "migrations" in path.relative_to(SOURCE).parts:
            continue  # Alembic's scripts: run by Alembic, imported by nothing
        parts = ["authserver", *path.relative_to(SOURCE).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        files[".".join(parts)] = path
    return files


def _is_type_checking(node: ast.If) -> bool:
    return ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING")


def imports_of(module: str, path: Path, known: dict[str, Path]) -> list[tuple[str, ast.AST, bool]]:
    """(imported module, import node, inside a function) for every import of authserver
    code that runs (``if TYPE_CHECKING:`` blocks never do)."""
    found: list[tuple[str, ast.AST, bool]] = []

    def visit(node: ast.AST, in_function: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for item in child.orelse:
                    visit(item, in_function)
                continue
            if isinstance(child, ast.Import):
                for alias in child.names:
                    if alias.name.startswith("authserver"):
                        found.append((alias.name, child, in_function))
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
                    for _ in range(child.level - 1):
                        package = package.rpartition(".")[0]
                    base = f"{package}.{base}" if base else package
                if base.startswith("authserver"):
                    for alias in child.names:
                        target = f"{base}.{alias.name}"
                        found.append((target if target in known else base, child, in_function))
            visit(
                child, in_function or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
            )

    visit(ast.parse(path.read_text()), False)
    return found


def import_graph() -> dict[str, set[str]]:
    """What loading a module, or calling its functions, loads in turn.

    Each module is two nodes: ``m`` (loading it runs its top-level imports) and ``m()``
    (its functions, with the imports inside them). An import of ``m`` (or of a name from
    it) depends on both: the importer may call what it imports. The packages above an
    imported module are loaded too (their ``__init__`` runs first, not their functions),
    unless they are the importer's own."""
    files = module_files()
    graph: dict[str, set[str]] = {}
    for name in files:
        graph.setdefault(name, set())
        graph.setdefault(name + "()", set()).add(name)
    for module, path in files.items():
        ancestors = {module.rsplit(".", n)[0] for n in range(module.count(".") + 1)}
        for target, _node, in_function in imports_of(module, path, files):
            source = module + "()" if in_function else module
            if target in files and target != module:
                graph[source] |= {target, target + "()"}
            parts = target.split(".")
            for end in range(1, len(parts)):
                package = ".".join(parts[:end])
                if package in files and package not in ancestors:
                    graph[source].add(package)
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return found


def test_no_import_cycle():
    assert cycles(import_graph()) == []


def test_the_cycle_check_finds_a_cycle():
    """The check itself can fail."""
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_another_packages_views():
    """A view module is its package's HTTP face: other packages use the package's services
    (the app factory, which registers every blueprint, is the exception)."""
    files = module_files()
    crossing = []
    for module, path in files.items():
        if module == "authserver":
            continue
        package = module.split(".")[1] if module.count(".") else module
        for target, node, _in_function in imports_of(module, path, files):
            parts = target.split(".")
            if parts[-1].endswith("views") and len(parts) > 2 and parts[1] != package:
                crossing.append(f"{module}:{node.lineno} imports {target}")
    assert crossing == []


def test_every_import_inside_a_function_says_why():
    """An import inside a function hides a dependency: each needs a comment saying why
    (on its line, or on the line above its run of imports)."""
    unexplained = []
    for module, path in module_files().items():
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for child in ast.walk(node):
                if not isinstance(child, ast.Import | ast.ImportFrom):
                    continue
                if not _explained(lines, child.lineno - 1):
                    unexplained.append(f"{module}:{child.lineno}")
    assert unexplained == []


def _explained(lines: list[str], at: int) -> bool:
    """A comment on the import, on another import of its run, or just above the run."""
    row = at
    while row >= 0:
        text = lines[row].strip()
        if "#" in text:
            return True
        if text and not text.startswith(("from ", "import ", ")")) and not text.endswith(","):
            return False
        row -= 1
    return False


def test_no_view_commits():
    """Views translate HTTP; the request boundary commits (authserver/transactions.py)."""
    committing = [
        f"{path.relative_to(SOURCE)}:{node.lineno}"
        for path in SOURCE.rglob("*views.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Attribute) and node.attr == "commit"
    ]
    assert committing == []
