"""The layers of the package: which may import what (docs/architecture.md).

Only ``matgrad/engine/`` imports torch; the language, the spec layer and the renderers receive
torch from the engine when they compute, so ``validate``, ``list`` and the reports stay light.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "matgrad"

# layer -> the matgrad layers it must never import (at any depth in a module's body)
FORBIDDEN = {
    "lang": (
        "matgrad.spec", "matgrad.claims", "matgrad.engine", "matgrad.report", "matgrad.cli",
        "matgrad.api",
    ),
    # claim kinds sit between the language and the engine; the engine passes torch in
    "claims": ("matgrad.engine", "matgrad.report", "matgrad.cli", "matgrad.api"),
    "spec": ("matgrad.engine", "matgrad.report", "matgrad.cli", "matgrad.api"),
    "report": ("matgrad.engine", "matgrad.cli", "matgrad.api"),
    "engine": ("matgrad.cli",),
}


def _imports(path: Path) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.module, node.lineno))
            found += [(f"{node.module}.{a.name}", node.lineno) for a in node.names]
    return found


def _modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE.parent)))
def test_only_the_engine_imports_torch(path: Path) -> None:
    if path.parent.name == "engine":
        return
    torch_imports = [
        (name, line) for name, line in _imports(path) if name == "torch" or name.startswith("torch.")
    ]
    assert not torch_imports, f"{path} imports torch at line {torch_imports[0][1]}"


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_above_it(layer: str) -> None:
    bad = []
    for path in sorted((PACKAGE / layer).rglob("*.py")):
        for name, line in _imports(path):
            if any(name == f or name.startswith(f + ".") for f in FORBIDDEN[layer]):
                bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {name}")
    assert not bad, "\n".join(bad)


def test_the_light_layers_load_without_torch() -> None:
    code = (
        "import sys\n"
        "import matgrad.lang.expr, matgrad.lang.domains, matgrad.spec.schema, matgrad.cli\n"
        "import matgrad.claims, matgrad.claims.grad, matgrad.claims.hessian\n"
        "import matgrad.report.html, matgrad.report.junit, matgrad.report.table\n"
        "print('torch' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_the_claims_layer_is_checked() -> None:
    # a layer rule over an empty folder would pass whatever the code imports
    assert {p.name for p in (PACKAGE / "claims").glob("*.py")} >= {
        "base.py", "grad.py", "differential.py", "hessian.py"
    }


def test_the_torch_check_sees_a_hidden_import(tmp_path: Path) -> None:
    # the scan must find an import inside a function body, not only at the top of a module
    f = tmp_path / "m.py"
    f.write_text("def later():\n    from torch import linalg\n    return linalg\n")
    assert ("torch", 2) in _imports(f)
