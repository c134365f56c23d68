"""The package's layering, read from the source: no import cycles, a codec that never imports training,
no use of another module's private names.

Every ``import`` statement counts, also the ones inside functions (an import deferred into a function
still ties the two modules together). Command entry points (``__main__`` modules) are leaves nothing
imports, so they are the one place allowed to reach across: ``python -m hqjax.export`` runs the
training side's exporter of run directories.
"""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from collections.abc import Iterator, Mapping

import pytest

ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "hqjax")


def module_sources(root: str = ROOT) -> dict[str, str]:
    """``{module name: source}`` of every module under `root` (packages as their ``__init__``)."""
    base = os.path.dirname(root)
    out = {}
    for directory, _, files in os.walk(root):
        for f in files:
            if f.endswith(".py"):
                path = os.path.join(directory, f)
                name = os.path.relpath(path, base)[:-3].replace(os.sep, ".")
                name = name.removesuffix(".__init__")
                with open(path, encoding="utf-8") as fh:
                    out[name] = fh.read()
    return out


class Import:
    """One imported module: `target` (a module of the package), the `name` taken from it (None for a
    module import), the importing `module` and the line."""

    def __init__(self, module: str, target: str, name: str | None, line: int):
        self.module, self.target, self.name, self.line = module, target, name, line

    def __repr__(self) -> str:
        what = self.target if self.name is None else f"{self.target}.{self.name}"
        return f"{self.module}:{self.line} imports {what}"


def imports(sources: Mapping[str, str], top: str = "hqjax") -> Iterator[tuple[Import, ast.AST]]:
    """Every import of a module of `top` in `sources`, with the module's syntax tree."""
    for module, source in sources.items():
        tree = ast.parse(source)
        package = module if _is_package(module, sources) else module.rpartition(".")[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == top:
                        yield Import(module, alias.name, None, node.lineno), tree
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    anchor = package
                    for _ in range(node.level - 1):
                        anchor = anchor.rpartition(".")[0]
                    base = f"{anchor}.{base}" if base else anchor
                if base.split(".")[0] != top:
                    continue
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    if sub in sources:
                        yield Import(module, sub, None, node.lineno), tree
                    else:
                        yield Import(module, base, alias.name, node.lineno), tree


def _is_package(module: str, sources: Mapping[str, str]) -> bool:
    return any(other.startswith(module + ".") for other in sources)


def graph(sources: Mapping[str, str]) -> dict[str, set[str]]:
    """Module -> the package modules it imports (entry points excluded)."""
    edges: dict[str, set[str]] = {m: set() for m in sources if not _entry_point(m)}
    for imp, _ in imports(sources):
        if not _entry_point(imp.module) and imp.target in sources:
            edges[imp.module].add(imp.target)
    return edges


def _entry_point(module: str) -> bool:
    return module.rpartition(".")[2] == "__main__"


def cycles(edges: Mapping[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (or a module importing itself)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1 or v in edges.get(v, ()):
                found.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return found


def reachable(edges: Mapping[str, set[str]], start: str) -> set[str]:
    """Every module that importing `start` can load, by the package's own imports."""
    seen, todo = set(), [start]
    while todo:
        v = todo.pop()
        if v not in seen:
            seen.add(v)
            todo.extend(edges.get(v, ()))
    return seen


def private_uses(sources: Mapping[str, str]) -> list[str]:
    """Uses of another module's private names: ``from m import _x``, ``m._x`` on an imported module, or
    a private module (``pkg._m``) imported from outside ``pkg``."""
    bad = []
    for imp, _ in imports(sources):
        if imp.name is not None and imp.name.startswith("_") and not imp.name.startswith("__"):
            bad.append(f"{imp!r}: a private name of another module")
        parts = imp.target.split(".")
        for i, part in enumerate(parts):
            owner = ".".join(parts[:i])
            if part.startswith("_") and not part.startswith("__"):
                if not (imp.module == owner or imp.module.startswith(owner + ".")):
                    bad.append(f"{imp!r}: a private module of {owner}")
    for module, source in sources.items():
        tree = ast.parse(source)
        aliases = _module_aliases(tree, sources)
        for node in ast.walk(tree):
            private = isinstance(node, ast.Attribute) and node.attr.startswith("_")
            if private and not node.attr.startswith("__"):
                owner = _dotted(node.value, aliases)
                if owner in sources:
                    bad.append(f"{module}:{node.lineno} uses {owner}.{node.attr}")
    return bad


def _module_aliases(tree: ast.AST, sources: Mapping[str, str]) -> dict[str, str]:
    """Local names bound to package modules by the imports of one module."""
    out = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    out[alias.asname] = alias.name
                else:  # `import a.b` binds `a`
                    top = alias.name.split(".")[0]
                    out[top] = top
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if node.module and not node.level and f"{node.module}.{alias.name}" in sources:
                    out[alias.asname or alias.name] = f"{node.module}.{alias.name}"
    return out


def _dotted(node: ast.AST, aliases: Mapping[str, str]) -> str | None:
    """``a.b.c`` for a chain of attributes on a name, its first part replaced by what it is bound to."""
    parts = []
    while isinstance(node, ast.Attribute):
        parts.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name) or node.id not in aliases:
        return None
    return ".".join([aliases[node.id], *reversed(parts)])


SOURCES = module_sources()


def test_the_walker_finds_every_module_and_import():
    edges = graph(SOURCES)
    assert {"hqjax", "hqjax.forward", "hqjax.export.packed", "hqjax.train.loop"} <= set(edges)
    assert "hqjax.train.build" in edges["hqjax.train.loop"]
    assert "hqjax.export.packed" in edges["hqjax.export"]


def test_no_import_cycles():
    assert cycles(graph(SOURCES)) == []


def test_the_codec_never_imports_training():
    edges = graph(SOURCES)
    codec = [m for m in edges if m == "hqjax.export" or m.startswith("hqjax.export.")]
    assert codec
    for m in codec:
        training = sorted(t for t in reachable(edges, m) if t.startswith("hqjax.train"))
        assert training == [], f"{m} loads {training}"


def test_no_private_names_of_other_modules():
    assert private_uses(SOURCES) == []


def test_import_hqjax_does_not_load_the_exporter_or_training():
    code = ("import sys, hqjax; loaded = sorted(m for m in sys.modules if m.startswith(('hqjax.export', "
            "'hqjax.train'))); print(loaded); assert not loaded; assert callable(hqjax.export_packed); "
            "assert 'hqjax.export' in sys.modules")
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_calling_the_package_warns_and_calls_export_packed(tmp_path):
    import jax.numpy as jnp
    import optax

    import hqjax

    params = {"Dense_0": {"kernel": jnp.array([[0.9, -0.2], [-1.1, 0.05]])}}
    state = hqjax.twn(optax.sgd(0.1)).init(params)
    with pytest.warns(DeprecationWarning, match="export_packed"):
        old = hqjax.export(params, state, tmp_path / "old.hqx")
    new = hqjax.export_packed(params, state, tmp_path / "new.hqx")
    assert open(old, "rb").read() == open(new, "rb").read()


# The checks themselves, on small made-up packages: each rule fails where it should.
def test_checks_catch_a_cycle_a_training_import_and_private_uses():
    bad = {
        "hqjax": "from hqjax import a\n",
        "hqjax.a": "def f():\n    from hqjax import b\n",
        "hqjax.b": "import hqjax.a\nfrom hqjax.a import _hidden\nhqjax.a._other()\n",
        "hqjax.export": "from hqjax.export import packed\n",
        "hqjax.export.packed": "def g():\n    from hqjax.train import loop\n",
        "hqjax.export.__main__": "from hqjax.train import loop\n",
        "hqjax.train": "",
        "hqjax.train.loop": "from hqjax.train import _secret\nfrom hqjax.export import packed\n",
        "hqjax.train._secret": "",
        "hqjax.c": "from hqjax.train._secret import x\n",
        "hqjax.d": "from hqjax.train import loop as lp\nlp._init_state()\n",
    }
    edges = graph(bad)
    assert cycles(edges) == [["hqjax.a", "hqjax.b"], ["hqjax.export.packed", "hqjax.train.loop"]]
    assert "hqjax.train.loop" in reachable(edges, "hqjax.export")
    assert "hqjax.export.__main__" not in edges
    uses = private_uses(bad)
    assert any("hqjax.b" in u and "_hidden" in u for u in uses)
    assert any("hqjax.b" in u and "hqjax.a._other" in u for u in uses)
    assert any(u.startswith("hqjax.d:2") and "hqjax.train.loop._init_state" in u for u in uses)
    assert any(u.startswith("hqjax.c:") and "private module of hqjax.train" in u for u in uses)
    assert not any(u.startswith("hqjax.train.loop") for u in uses)  # its own package's private module
