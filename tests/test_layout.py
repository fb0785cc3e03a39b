"""The package layout (adapters/__init__.py): serving depends on the runtime alone."""

from __future__ import annotations

import ast
import pathlib
import subprocess
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OTHER = ("adapters.train", "adapters.data", "adapters.weights")


def _adapters_imports(path: pathlib.Path) -> list[str]:
    """Every adapters module a file names in an import statement, at any depth (lazy ones too)."""
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names += [node.module] + [f"{node.module}.{a.name}" for a in node.names]
    return [n for n in names if n == "adapters" or n.startswith("adapters.")]


def _offending(folder: str, allowed: tuple[str, ...]) -> dict[str, list[str]]:
    bad = {}
    for path in sorted((ROOT / folder).rglob("*.py")):
        names = [n for n in _adapters_imports(path) if n != "adapters.SAMPLE_RATE" and n != "adapters"]
        wrong = [n for n in names if not any(n == a or n.startswith(a + ".") for a in allowed)]
        if wrong:
            bad[str(path.relative_to(ROOT))] = wrong
    return bad


def test_service_imports_only_the_runtime():
    # adapters.cli is the `aura` command's other half; it imports training code only inside the
    # training commands, which the next test checks.
    assert _offending("service", ("adapters.runtime", "adapters.cli")) == {}


def test_runtime_imports_nothing_but_itself():
    assert _offending("adapters/runtime", ("adapters.runtime",)) == {}


def test_serving_loads_no_training_data_or_weights_module():
    modules = sorted(str(p.relative_to(ROOT).with_suffix("")).replace("/", ".") for p in (ROOT / "service").rglob("*.py"))
    code = (f"import importlib, sys\nfor m in {modules!r}: importlib.import_module(m)\n"
            f"print(sorted(m for m in sys.modules if m.startswith({OTHER!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
