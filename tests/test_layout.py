"""The package's layout stays readable: no import circles, no oversized module.

Every import counts, wherever it is written (inside a function, or under
``if TYPE_CHECKING:``), because each one ties two modules together.
"""

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "triggers"
MAX_LINES = 400


def _modules():
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found[name] = path
    return found


def _imports(name, path, modules):
    """The package's modules that ``name`` imports."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    targets = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            candidates = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")
            if node.level:
                base = base[: len(base) - node.level + 1]
                prefix = ".".join(base + ([node.module] if node.module else []))
            else:
                prefix = node.module or ""
            candidates = [f"{prefix}.{alias.name}" for alias in node.names] + [prefix]
        else:
            continue
        for candidate in candidates:
            while candidate and candidate not in modules:
                candidate = candidate.rpartition(".")[0]
            if candidate and candidate != name:
                targets.add(candidate)
    return targets


def _cycle(graph):
    """One import circle of ``graph``, or None."""
    state = {}

    def visit(node, trail):
        state[node] = "open"
        for target in sorted(graph[node]):
            if state.get(target) == "open":
                return trail[trail.index(target) :] + [target]
            if target not in state:
                found = visit(target, trail + [target])
                if found:
                    return found
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            found = visit(start, [start])
            if found:
                return found
    return None


def test_no_import_circle():
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        # A package's own __init__ re-exports its modules; importing a
        # submodule imports the package first, which is not a circle.
        graph[name] = {t for t in _imports(name, path, modules) if not name.startswith(t + ".")}
    cycle = _cycle(graph)
    assert cycle is None, "import circle: " + " -> ".join(cycle)


def test_no_module_over_the_size_limit():
    sizes = {
        name: len(path.read_text(encoding="utf-8").splitlines())
        for name, path in _modules().items()
    }
    over = {name: size for name, size in sizes.items() if size > MAX_LINES}
    assert not over, f"modules over {MAX_LINES} lines: {over}"


def _table_order():
    """The modules in the order the table of ``docs/layout.rst`` lists them."""
    page = PACKAGE.parent / "docs" / "layout.rst"
    order = []
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("``triggers"):
            order.append(line.split("``")[1])
    return order


def _order_breaches():
    """Every import of a module below the importer in the table (or not in it)."""
    modules = _modules()
    order = _table_order()
    rank = {name: index for index, name in enumerate(order)}
    breaches = []
    for name, path in sorted(modules.items()):
        if name not in rank:
            continue
        for target in sorted(_imports(name, path, modules)):
            if name.startswith(target + "."):
                continue  # a submodule's own package
            if target.startswith(name + "."):
                continue  # a package re-exporting its modules
            if rank.get(target, len(order)) > rank[name]:
                breaches.append(f"{name} imports {target}")
    return breaches


def test_the_layout_page_lists_every_module_once():
    order = _table_order()
    assert len(order) == len(set(order)), sorted({n for n in order if order.count(n) > 1})
    listed = set(order)
    missing = sorted(set(_modules()) - listed - {"triggers"})
    assert not missing, f"modules the layout page does not list: {missing}"


def test_imports_go_up_the_layout_page():
    breaches = _order_breaches()
    assert not breaches, "imports of modules below the importer in docs/layout.rst: " + "; ".join(
        breaches
    )
