"""Inside ``agents``: the trainer imports the algorithms, which import only their contract
(``agents.algos.base``) and what it is written in, as ``agents/algos/__init__.py`` states --
never the trainer or the shared plumbing. The layers as a whole are checked by
``tests/test_layers.py``."""

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


#: What ``agents/algos/__init__.py`` lets an algorithm file import of ``agents``: its contract and what
#: the contract is written in; in annotations (``if TYPE_CHECKING``) also the records it names; per file,
#: a model of its own.
CONTRACT = {"agents.algos.base", "agents.losses", "agents.expert_rows", "agents.contracts"}
ANNOTATIONS = {"agents.config", "agents.result"}
OWN = {"ppo.py": {"agents.sb3_features"}}


def _is_module(name: str) -> bool:
    path = ROOT / name.replace(".", "/")
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def agents_imports(source: str, package: str) -> tuple[set[str], set[str]]:
    """(every ``agents`` module the source imports, those imported under ``if TYPE_CHECKING:`` only).

    ``from a import b`` names the module ``a.b`` where that is one, else ``a``.
    """
    tree = ast.parse(source)
    guarded = {id(n) for b in ast.walk(tree) if isinstance(b, ast.If) and isinstance(b.test, ast.Name)
               and b.test.id == "TYPE_CHECKING" for n in ast.walk(b)}
    found: dict[str, bool] = {}  # module -> only under TYPE_CHECKING
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + [base]).strip(".")
            names = [f"{base}.{a.name}" if _is_module(f"{base}.{a.name}") else base for a in node.names]
        else:
            continue
        for name in names:
            if _under(name, "agents") and _is_module(name):
                found[name] = found.get(name, True) and id(node) in guarded
    return set(found), {m for m, only in found.items() if only}


@pytest.mark.parametrize("path", [p for p in files("agents/algos") if p.name not in ("__init__.py", "base.py")],
                         ids=lambda p: p.name)
def test_algorithm_files_import_only_what_agents_algos_allows(path):
    used, annotations = agents_imports(path.read_text(), "agents.algos")
    allowed = CONTRACT | OWN.get(path.name, set())
    bad = (used - annotations - allowed) | (annotations - allowed - ANNOTATIONS)
    assert not bad, f"{path.name} imports {sorted(bad)} (agents/algos/__init__.py says what an algorithm file may)"


def test_the_rule_check_tells_annotations_from_imports():
    src = ("from typing import TYPE_CHECKING\nfrom agents import losses\nfrom agents.algos.base import Batch\n"
           "if TYPE_CHECKING:\n    from agents.config import TrainConfig\n    from agents import losses\n"
           "def f():\n    from agents.budget import Budget\n")
    used, annotations = agents_imports(src, "agents.algos")
    assert used == {"agents.losses", "agents.algos.base", "agents.config", "agents.budget"}
    assert annotations == {"agents.config"}
