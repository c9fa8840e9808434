"""The tree reads as the architecture: imports flow one way, from the CLI down to the core.

docs/architecture.md draws the layers. This test parses every module (nothing is imported) and
refuses an import that goes up or sideways between packages; imports only for type checkers
(``if TYPE_CHECKING:``) are allowed, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "hpsearch"

# higher imports lower; equal ranks (store, train) may not import each other
RANK = {"cli": 9, "api": 9, "run": 8, "views": 7, "results": 6, "store": 5, "train": 5, "study": 4, "tasks": 3,
        "models": 2, "data": 1, "errors": 0, "fmt": 0, "hints": 0}
# known exceptions, each with the reason it is still here
ALLOWED = {
    ("models", "results"): "Encoder reads the trunk of one of our checkpoints (results.checkpoints), lazily",
}


def _layer(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "hpsearch" and parts[1] in RANK else None


def _runtime_imports(tree: ast.AST) -> list[tuple[str, int]]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip |= {id(n) for n in ast.walk(node)}
    out = []
    for node in ast.walk(tree):
        if id(node) in skip or not isinstance(node, ast.ImportFrom) or not node.module:
            continue
        if node.module == "hpsearch":
            out += [(f"hpsearch.{a.name}", node.lineno) for a in node.names]
        else:
            out.append((node.module, node.lineno))
    return out


def _modules() -> list[Path]:
    return sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.stem in RANK)


def test_every_package_of_the_tree_is_ranked() -> None:
    packages = {p.name for p in SRC.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    flat = {p.stem for p in SRC.glob("*.py")} - {"__init__", "__main__"}
    assert packages | flat == set(RANK), "a new package or top-level module: give it its place in RANK"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(SRC)))
def test_imports_flow_down(path: Path) -> None:
    me = _layer("hpsearch." + ".".join(path.relative_to(SRC).with_suffix("").parts))
    assert me is not None
    wrong = [f"{path.relative_to(SRC)}:{line} imports {module}"
             for module, line in _runtime_imports(ast.parse(path.read_text()))
             if (other := _layer(module)) and other != me and (me, other) not in ALLOWED
             and RANK[other] >= RANK[me]]
    assert not wrong, "imports against the flow (docs/architecture.md):\n" + "\n".join(wrong)


def test_the_package_list_holds_every_package_and_the_shipped_studies() -> None:
    """pyproject.toml lists the packages (it maps studies/ to hpsearch.shipped, which `find` cannot):
    a package added to src/ and not listed would be missing from every installed copy."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+

    conf = tomllib.loads((SRC.parents[1] / "pyproject.toml").read_text())["tool"]["setuptools"]
    on_disk = {".".join(p.parent.relative_to(SRC.parent).parts) for p in SRC.rglob("__init__.py")}
    assert set(conf["packages"]) == on_disk | {"hpsearch.shipped"}
    assert conf["package-dir"]["hpsearch.shipped"] == "studies"
