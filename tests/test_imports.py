"""The package's import graph: no circle between auditkit modules, no private name borrowed.

The graph is read from the source with `ast`, not by importing: every `import` statement counts,
at module level and inside functions (a lazy import still ties the two modules together), except
those under `if TYPE_CHECKING:` (never executed). `from auditkit.x import y` is an edge to
`auditkit.x.y` when that is a module, else to `auditkit.x`. Relative imports are resolved against
the importing module's package.
"""

from __future__ import annotations

import ast
from pathlib import Path

import auditkit

PACKAGE_ROOT = Path(auditkit.__file__).resolve().parent


def _module_names(root: Path) -> dict[str, Path]:
    """Every module under *root*: dotted name (`auditkit.data.build`) → file."""
    modules: dict[str, Path] = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _module_names(PACKAGE_ROOT)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> list[ast.Import | ast.ImportFrom]:
    """Every import statement of *tree*, at any depth, except under `if TYPE_CHECKING:`."""
    found: list[ast.Import | ast.ImportFrom] = []

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            found.append(node)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _package_of(module: str) -> str:
    """The package a module's relative imports start from."""
    if MODULES[module].name == "__init__.py":
        return module
    return module.rpartition(".")[0]


def _from_base(module: str, node: ast.ImportFrom) -> str:
    """The absolute module named by a `from … import` statement's source."""
    if not node.level:
        return node.module or ""
    base = _package_of(module)
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return f"{base}.{node.module}" if node.module else base


def _targets(module: str, node: ast.Import | ast.ImportFrom) -> list[tuple[str, str | None]]:
    """(auditkit module imported, name taken from it or None) for one import statement."""
    out: list[tuple[str, str | None]] = []
    if isinstance(node, ast.Import):
        for alias in node.names:
            name = alias.name
            # `import auditkit.a.b` imports auditkit.a.b (and its parents, which it needs anyway).
            if name in MODULES:
                out.append((name, None))
        return out
    base = _from_base(module, node)
    if base not in MODULES:
        return out
    for alias in node.names:
        sub = f"{base}.{alias.name}"
        if sub in MODULES:
            out.append((sub, None))
        else:
            out.append((base, alias.name))
    return out


def import_graph() -> dict[str, set[str]]:
    """auditkit module → the auditkit modules it imports (no self-edges)."""
    graph: dict[str, set[str]] = {name: set() for name in MODULES}
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            for target, _ in _targets(module, node):
                if target != module:
                    graph[module].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's strongly connected components (iterative), only those of two or more nodes."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    components: list[list[str]] = []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work: list[tuple[str, list[str]]] = [(root, sorted(graph[root]))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            node, pending = work[-1]
            if pending:
                nxt = pending.pop(0)
                if nxt not in index:
                    index[nxt] = low[nxt] = counter
                    counter += 1
                    stack.append(nxt)
                    on_stack.add(nxt)
                    work.append((nxt, sorted(graph[nxt])))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                component: list[str] = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    components.append(sorted(component))
    return sorted(components)


def test_tarjan_finds_hand_made_cycles() -> None:
    # a → b → c → a is one circle; d ↔ e another; f alone imports a (not in a circle).
    graph = {
        "a": {"b"},
        "b": {"c"},
        "c": {"a"},
        "d": {"e"},
        "e": {"d"},
        "f": {"a"},
    }
    assert strongly_connected(graph) == [["a", "b", "c"], ["d", "e"]]
    assert strongly_connected({"a": {"b"}, "b": set()}) == []


def test_graph_sees_lazy_imports_and_skips_type_checking() -> None:
    # The walker itself, on a hand-written module: a function-level import is an edge, a
    # TYPE_CHECKING one is not.
    source = (
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from auditkit.run import RunPaths\n"
        "def f():\n"
        "    from auditkit.data import manifest\n"
    )
    names = [
        target
        for node in _imports(ast.parse(source))
        for target, _ in _targets("auditkit.audit", node)
    ]
    assert names == ["auditkit.data.manifest"]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _module_aliases(module: str, tree: ast.AST) -> dict[str, str]:
    """Local name → auditkit module, for every name an import binds to a module object."""
    aliases: dict[str, str] = {}
    for node in _imports(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    aliases[alias.asname] = alias.name
                else:  # `import auditkit.a.b` binds `auditkit`
                    root = alias.name.partition(".")[0]
                    aliases[root] = root
            continue
        base = _from_base(module, node)
        for alias in node.names:
            if f"{base}.{alias.name}" in MODULES:
                aliases[alias.asname or alias.name] = f"{base}.{alias.name}"
    return aliases


def _dotted(node: ast.expr, aliases: dict[str, str]) -> str | None:
    """The module a `a.b.c` expression names, through the file's aliases; None otherwise."""
    if isinstance(node, ast.Name):
        return aliases.get(node.id)
    if isinstance(node, ast.Attribute):
        owner = _dotted(node.value, aliases)
        return f"{owner}.{node.attr}" if owner else None
    return None


def test_private_walker_sees_module_attributes() -> None:
    source = (
        "import auditkit.run as r\nfrom auditkit.data import manifest\nr._x; manifest._y; r.ok\n"
    )
    tree = ast.parse(source)
    aliases = _module_aliases("auditkit.audit", tree)
    found = [
        f"{_dotted(n.value, aliases)}.{n.attr}"
        for n in ast.walk(tree)
        if isinstance(n, ast.Attribute) and _is_private(n.attr)
    ]
    assert sorted(found) == ["auditkit.data.manifest._y", "auditkit.run._x"]


def test_no_import_circle() -> None:
    cycles = strongly_connected(import_graph())
    assert not cycles, "import circles in auditkit/:\n" + "\n".join(
        " ↔ ".join(cycle) for cycle in cycles
    )


def test_no_private_name_imported_from_another_module() -> None:
    borrowed: list[str] = []
    for module, path in MODULES.items():
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in _imports(tree):
            for target, name in _targets(module, node):
                if target == module:
                    continue
                taken = name if name is not None else target.rpartition(".")[2]
                if _is_private(taken):
                    borrowed.append(f"{module} imports {target}:{taken}")
        # `module._name` through a module object the file imported.
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            owner = _dotted(node.value, _module_aliases(module, tree))
            if owner in MODULES and owner != module:
                borrowed.append(f"{module} uses {owner}.{node.attr}")
    assert not borrowed, "private names used across modules:\n" + "\n".join(sorted(set(borrowed)))
