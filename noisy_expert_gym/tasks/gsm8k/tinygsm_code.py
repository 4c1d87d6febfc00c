"""TinyGSM's programs, read without running them: the number a program returns and its text.

A TinyGSM row's ``code`` is a Python function that computes the answer (its docstring
repeats the question). :func:`code_answer` reads the number it returns by *static*
evaluation of straight-line arithmetic over the parsed syntax tree -- never ``exec``,
``eval``, an import or an attribute beyond the names below -- and :func:`strip_docstring`
gives the program's text without the docstring (the reference teacher's solution text,
:mod:`noisy_expert_gym.tasks.gsm8k.data`).
"""

from __future__ import annotations

import ast
import math
import operator
from typing import Any


class _Unsupported(Exception):
    """A program outside :func:`code_answer`'s arithmetic subset."""


_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_CALLS = {"round": round, "int": int, "float": float, "abs": abs, "min": min, "max": max}
_MATH = {"ceil": math.ceil, "floor": math.floor, "sqrt": math.sqrt}
_MAX_MAGNITUDE = 1e18


def _value(node: ast.AST, env: dict[str, float]) -> Any:
    """The number an expression of the subset denotes (never runs code)."""
    if isinstance(node, ast.Constant) and isinstance(node.value, (int, float)) and not isinstance(node.value, bool):
        return node.value
    if isinstance(node, ast.Name) and node.id in env:
        return env[node.id]
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, (ast.USub, ast.UAdd)):
        v = _value(node.operand, env)
        return -v if isinstance(node.op, ast.USub) else v
    if isinstance(node, ast.BinOp) and type(node.op) in _BINOPS:
        a, b = _value(node.left, env), _value(node.right, env)
        if isinstance(node.op, ast.Pow) and (abs(b) > 64 or abs(a) > 1e6):
            raise _Unsupported("power too large")
        try:
            v = _BINOPS[type(node.op)](a, b)
        except (ZeroDivisionError, OverflowError, ValueError):
            raise _Unsupported("arithmetic error") from None
        if isinstance(v, complex) or abs(v) > _MAX_MAGNITUDE:
            raise _Unsupported("out of range")
        return v
    if isinstance(node, ast.Call) and not node.keywords:
        f = None
        if isinstance(node.func, ast.Name) and node.func.id in _CALLS and node.func.id not in env:
            f = _CALLS[node.func.id]
        elif isinstance(node.func, ast.Attribute) and isinstance(node.func.value, ast.Name) \
                and node.func.value.id == "math" and node.func.attr in _MATH:
            f = _MATH[node.func.attr]
        if f is not None and 1 <= len(node.args) <= 2:
            try:
                return f(*(_value(a, env) for a in node.args))
            except (TypeError, ValueError, OverflowError):
                raise _Unsupported("bad call") from None
    raise _Unsupported(type(node).__name__)


def code_answer(code: str) -> int | float | None:
    """The number a TinyGSM program returns, by static evaluation of straight-line arithmetic.

    The body of the first function (else the module) may hold only its docstring,
    ``import math``, assignments and augmented assignments to names, and a final
    ``return``, over numbers, names, + - * / // % **, ``round``/``int``/``float``/
    ``abs``/``min``/``max`` and ``math.ceil``/``floor``/``sqrt``. Anything else, or no
    numeric return value: None. The program is parsed, never executed.
    """
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return None
    body = next((n.body for n in tree.body if isinstance(n, ast.FunctionDef)), tree.body)
    env: dict[str, Any] = {}
    try:
        for stmt in body:
            if isinstance(stmt, ast.Expr) and isinstance(stmt.value, ast.Constant):
                continue  # the docstring
            if isinstance(stmt, ast.Import) and all(a.name == "math" and a.asname is None for a in stmt.names):
                continue
            if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name):
                env[stmt.targets[0].id] = _value(stmt.value, env)
            elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name) and stmt.value is not None:
                env[stmt.target.id] = _value(stmt.value, env)
            elif isinstance(stmt, ast.AugAssign) and isinstance(stmt.target, ast.Name) \
                    and type(stmt.op) in _BINOPS and stmt.target.id in env:
                node = ast.BinOp(left=ast.Name(id=stmt.target.id), op=stmt.op, right=stmt.value)
                env[stmt.target.id] = _value(node, env)
            elif isinstance(stmt, ast.Return) and stmt.value is not None:
                v = _value(stmt.value, env)
                return v if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) else None
            else:
                raise _Unsupported(type(stmt).__name__)
    except _Unsupported:
        return None
    return None


def strip_docstring(code: str) -> str:
    """`code` without its first function's (or the module's) docstring, trailing spaces trimmed."""
    try:
        tree = ast.parse(code)
    except (SyntaxError, ValueError):
        return code.strip()
    owner = next((n for n in tree.body if isinstance(n, ast.FunctionDef)), tree)
    first = owner.body[0] if owner.body else None
    if not (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
            and isinstance(first.value.value, str)):
        return code.strip()
    lines = code.splitlines()
    kept = lines[: first.lineno - 1] + lines[first.end_lineno:]
    return "\n".join(line.rstrip() for line in kept).strip()


__all__ = ["code_answer", "strip_docstring"]
