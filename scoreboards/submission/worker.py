"""The worker process of a submission run: load the class, train it on the client, then act.

:func:`worker_main` runs in a spawned process. Untrusted submissions first lose
access to the env package (:data:`BLOCKED_PACKAGES`, which holds the clean expert): a
guard against accidental peeking, not a security sandbox. Then the target class is
loaded (:func:`load_target`), its interface checked (:func:`check_interface`), and it
trains on an :class:`~scoreboards.submission.client.ExpertClient`; afterwards the
worker answers the harness's ``act`` requests until told to stop. Errors go back to
the harness as ``("error", {"stage", "message"})``.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import os
import sys
import traceback
from pathlib import Path
from typing import Any

from scoreboards.submission.client import BudgetExceeded, ExpertClient, ProtocolError, to_numpy

BLOCKED_PACKAGES = ("noisy_expert_gym",)


class _ImportBlocker(importlib.abc.MetaPathFinder):
    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.split(".")[0] in BLOCKED_PACKAGES:
            raise ImportError(f"submissions may not import `{name}`: the env package holds the clean "
                              "expert; learn from the ExpertClient passed to train()")


def block_env_imports() -> None:
    """Forget the env package and refuse to import it again in this process."""
    for name in list(sys.modules):
        if name.split(".")[0] in BLOCKED_PACKAGES:
            del sys.modules[name]
    sys.meta_path.insert(0, _ImportBlocker())


def load_target(target: str) -> type:
    """The class named by ``module:Class`` or ``path/to/file.py:Class``."""
    if ":" not in target:
        raise ValueError(f"a submission must be `module:Class` or `path/to/file.py:Class`, got {target!r}")
    mod_name, _, cls_name = target.rpartition(":")
    if mod_name.endswith(".py") or os.sep in mod_name:
        path = Path(mod_name)
        if not path.is_file():
            raise FileNotFoundError(f"submission file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_neg_submission_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module
        spec.loader.exec_module(module)
    else:
        module = importlib.import_module(mod_name)
    cls = getattr(module, cls_name, None)
    if cls is None:
        raise AttributeError(f"`{mod_name}` has no attribute `{cls_name}`")
    return cls


def check_interface(cls: Any) -> str | None:
    """Why `cls` does not implement the submission interface (None if it does)."""
    if not isinstance(cls, type):
        return f"{cls!r} is not a class"
    missing = [m for m in ("train", "act") if not callable(getattr(cls, m, None))]
    if missing:
        return (f"{cls.__name__} lacks {', '.join(f'`{m}()`' for m in missing)}; a submission defines "
                "__init__(self, spec), train(self, expert) and act(self, observations)")
    return None


def worker_main(conn: Any, target: str, spec: dict[str, Any], trusted: bool, cwd: str) -> None:
    """The worker process: load, check, train on the client, then answer ``act`` requests."""
    stage = "load"
    try:
        if not trusted:
            block_env_imports()
        if cwd not in sys.path:
            sys.path.insert(0, cwd)
        cls = load_target(target)
        stage = "interface"
        if (why := check_interface(cls)) is not None:
            conn.send(("error", {"stage": stage, "message": why}))
            return
        stage = "init"
        algo = cls(dict(spec))
        client = ExpertClient(conn, spec)
        stage = "train"
        algo.train(client)
        conn.send(("done", None))
        stage = "act"
        while True:
            op, payload = conn.recv()
            if op != "act":
                return
            a, _ = to_numpy(algo.act(payload))
            conn.send(("actions", a))
    except (BudgetExceeded, ProtocolError, EOFError, BrokenPipeError):
        return  # the harness ended the run and knows why
    except BaseException:  # noqa: BLE001 - everything else is reported as a crash
        try:
            conn.send(("error", {"stage": stage, "message": traceback.format_exc()}))
        except (OSError, ValueError):
            pass
