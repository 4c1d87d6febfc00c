"""The algorithm registry: a plain dict, name -> :class:`~agents.algos.base.Algorithm`, and plugins.

:func:`agents.algos.base.register` adds to it, and the algorithm files register when
:mod:`agents.algos` is imported: on the first look-up (:func:`algorithm`, :func:`check_params`),
so that ``import agents`` and ``neg --help`` do not pay for torch. This module imports nothing
of ``agents``: the training configuration (:class:`~agents.config.TrainConfig`) checks ``algo``
and ``algo_params`` here (each algorithm's declared parameters) without importing the
algorithms, which sit above the configuration (their contract and plumbing take a
``TrainConfig``). ``agents/__init__.py``, which runs before any module of the package, hands
this module the one thing it needs of them: how to import them (:func:`set_loader`). For the
same reason the dict's values are typed loosely here; each is an ``Algorithm``.

**Plugins.** A name ``path/to/file.py:Name`` or ``package.module:Name`` is an algorithm of your
own: a class (or an ``Algorithm`` record) following the contract of
:mod:`agents.algos.base` -- ``params``, a ``Declared`` model of its parameters, and
``collect`` and ``loss`` (or ``run``). It is loaded once per process, on first use, and
registered under that name, so ``neg train --algo``, a spec's ``[[algorithms]] name`` and
the trainer all take it like a built-in, its parameters checked the same way. The digest of
its file is part of its runs' identity (:func:`plugin_digest`): an edited plugin re-runs.
Paths are relative to the working directory.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from noisy_expert_gym.declarations import Declared, dotted, error_lines
from noisy_expert_gym.utils import did_you_mean

#: Every registered algorithm by name, in registration order (an ``agents.algos.base.Algorithm`` each).
ALGORITHMS: dict[str, Any] = {}
#: Each plugin loaded in this process: its name -> the SHA-256 of its source file.
PLUGIN_DIGESTS: dict[str, str] = {}
_loader: list[Callable[[], Any]] = []
_algos: list[Any] = []


def set_loader(load: Callable[[], Any]) -> None:
    """How to import the algorithms (``agents.algos``, which registers them and converts plugins:
    ``as_algorithm``); called by ``agents/__init__.py``."""
    _loader[:] = [load]


def _algorithms() -> Any:
    """``agents.algos``, imported on first use (registering every built-in)."""
    if not _algos and _loader:
        _algos.append(_loader[0]())
    return _algos[0] if _algos else None


def is_plugin(name: str) -> bool:
    """Whether `name` names a plugin (``file.py:Name``, ``module:Name``) rather than a built-in."""
    return ":" in name


def algorithm(name: str) -> Any:
    """The algorithm called `name`: a registered one, or a plugin loaded now; else ValueError with the
    valid names and a suggestion."""
    _algorithms()
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if is_plugin(name):
        return load_plugin(name)
    raise ValueError(f"unknown algorithm `{name}`; valid: {', '.join(ALGORITHMS)}, or your own as "
                     f"`path/to/file.py:Name` or `module:Name`.{did_you_mean(name, ALGORITHMS)}")


def load_plugin(name: str) -> Any:
    """Load the plugin `name` (``path/to/file.py:Name`` or ``package.module:Name``) and register it
    under that name; once per process.

    Raises:
        FileNotFoundError: the file does not exist.
        ImportError: the module cannot be imported.
        ValueError: a malformed name, a file that is not Python, no such attribute (with a
            suggestion), or an object that is not an algorithm (saying what it lacks).
    """
    algos = _algorithms()
    if name in ALGORITHMS:
        return ALGORITHMS[name]
    if algos is None:  # `agents/__init__.py` did not run (benchmarks.lean_imports skips it)
        raise ImportError("the algorithms are not imported: `import agents.algos` first")
    where, _, attr = name.rpartition(":")
    if not where or not attr.isidentifier():
        raise ValueError(f"an algorithm of your own is `path/to/file.py:Name` or `package.module:Name`, "
                         f"got `{name}`")
    if where.endswith(".py") or "/" in where or os.sep in where:
        module, source = _load_file(Path(where).expanduser(), attr)
    else:
        module = importlib.import_module(where)  # ModuleNotFoundError names what is missing
        file = getattr(module, "__file__", None)
        source = Path(file).read_bytes() if file else where.encode()
    if not hasattr(module, attr):
        names = [n for n in vars(module) if not n.startswith("_")]
        raise ValueError(f"`{where}` has no `{attr}`.{did_you_mean(attr, names)} Name a class that "
                         "follows the Algorithm contract (agents/algos/base.py)")
    alg = algos.as_algorithm(getattr(module, attr), name)
    ALGORITHMS[name] = alg
    PLUGIN_DIGESTS[name] = hashlib.sha256(source).hexdigest()
    return alg


def _load_file(path: Path, attr: str) -> tuple[Any, bytes]:
    """The module of an algorithm file, executed once per content (a module named by its digest)."""
    if path.is_dir():
        raise ValueError(f"{path} is a folder; give the .py file that defines `{attr}` (`{path}/FILE.py:{attr}`)")
    if not path.is_file():
        raise FileNotFoundError(f"algorithm file {path} does not exist; check the path (`file.py:{attr}`, "
                                "relative to the working directory)")
    source = path.read_bytes()
    module_name = f"neg_plugin_{hashlib.sha256(source).hexdigest()[:16]}"
    if module_name in sys.modules:
        return sys.modules[module_name], source
    try:
        compile(source, str(path), "exec")
    except (SyntaxError, ValueError) as e:
        raise ValueError(f"algorithm file {path} is not valid Python ({type(e).__name__}: "
                         f"{getattr(e, 'msg', e)}, line {getattr(e, 'lineno', '?')}); fix it") from None
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # before it runs: its classes (pydantic models) resolve their names there
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[module_name]
        raise
    return module, source


def plugin_digest(name: str) -> str | None:
    """The SHA-256 of plugin `name`'s source file (loading it if needed); None for a built-in."""
    if not is_plugin(name):
        return None
    load_plugin(name)
    return PLUGIN_DIGESTS.get(name)  # None: registered from an object, not loaded from a file


def check_params(name: str, params: dict[str, Any]) -> list[str]:
    """Every problem with an algorithm name and its parameters (empty list: all fine)."""
    try:
        alg = algorithm(name)
    except (ValueError, OSError, ImportError) as e:
        return [str(e)]
    model: type[Declared] = alg.params
    try:
        model.model_validate(dict(params))
    except ValidationError as err:
        valid = list(model.model_fields)
        return error_lines(
            err, model, place=lambda loc, kind: f"{name}: {dotted(loc)}" if loc else name,
            unknown=lambda loc: f"`{name}` has no parameter `{loc[0]}` (valid: {', '.join(valid) or 'none'})."
                                f"{did_you_mean(str(loc[0]), valid)}")
    return []


def resolve_params(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Defaults merged with `params`, or ValueError listing every problem."""
    problems = check_params(name, params)
    if problems:
        raise ValueError("; ".join(problems))
    return algorithm(name).params.model_validate(dict(params)).model_dump()


__all__ = ["ALGORITHMS", "PLUGIN_DIGESTS", "algorithm", "check_params", "is_plugin", "load_plugin", "plugin_digest",
           "resolve_params", "set_loader"]
