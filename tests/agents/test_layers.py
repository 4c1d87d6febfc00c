"""Inside ``agents``: the trainer imports the algorithms, which import only their contract
(``agents.algos.base``) and shared plumbing -- never the trainer. The layers as a whole are
checked by ``tests/test_layers.py``."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def imports(path: Path) -> set[str]:
    """Every module an import statement of the file names (relative imports resolved)."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package.split(".")[: len(package.split(".")) - node.level + 1] + [base]).strip(".")
            out.add(base)
            out.update(f"{base}.{a.name}" for a in node.names)
    return out


def files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _under(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


@pytest.mark.parametrize("path", [p for p in files("agents/algos") if p.name not in ("__init__.py", "base.py")],
                         ids=lambda p: p.name)
def test_algorithms_import_their_contract_not_the_trainer(path):
    mods = imports(path)
    assert "agents.algos.base" in mods
    bad = {m for m in mods if _under(m, "agents.trainer") or _under(m, "agents.cli")
           or (_under(m, "agents.algos") and not _under(m, "agents.algos.base"))}
    assert not bad, f"{path.name} imports {sorted(bad)}"


def test_the_contract_imports_no_algorithm_and_no_trainer():
    mods = imports(ROOT / "agents/algos/base.py")
    assert not {m for m in mods if _under(m, "agents.trainer") or (_under(m, "agents.algos")
                                                                   and m != "agents.algos.base")}
