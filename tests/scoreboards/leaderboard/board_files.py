"""Board files for the harness tests, written from one template, so that a new rule for board files
(e.g. the share of the prompt space the held-out sets may reserve) is met in one place."""

from __future__ import annotations

from collections.abc import Sequence

#: NoisyModAdd p = 7, m = 3, absorbing eta 0.2: 343 prompts, so the scored and curve sets together stay
#: under the quarter of the prompt space the harness may reserve (86) at 32 x 2 + 16.
MODADD_M3 = '{ p = 7, m = 3, eta = 0.2, law = "absorbing" }'
#: The same chain under a secret relabelling (hidden boards).
HIDDEN_M3 = '{ automaton = "modadd", n = 7, m = 3, eta = 0.2, law = "absorbing" }'


def board_toml(*, description: str = "test board", env_id: str = "NoisyModAdd-v0", kwargs: str = MODADD_M3,
               env: Sequence[str] = (), trajectories: int = 1024, queries: int | None = None, prompts: int = 32,
               seeds: Sequence[int] = (1001, 1002), curve_prompts: int = 16, eval: Sequence[str] = (),
               train_seeds: Sequence[int] = (0,), timeout_s: int = 60, top: Sequence[str] = (),
               tail: str = "") -> str:
    """The text of a board file: the template's tables with these values; ``env``, ``eval`` and ``top``
    are extra lines of ``[env]``, ``[eval]`` and the top level; ``tail`` is appended (baselines)."""
    lines = [f'description = "{description}"', *top, "", "[env]", f'id = "{env_id}"', f"kwargs = {kwargs}", *env,
             "", "[budget]", f"trajectories = {trajectories}"]
    if queries is not None:
        lines.append(f"queries = {queries}")
    lines += ["", "[eval]", f"prompts = {prompts}", f"seeds = [{', '.join(map(str, seeds))}]",
              f"curve_prompts = {curve_prompts}", *eval,
              "", "[protocol]", f"train_seeds = [{', '.join(map(str, train_seeds))}]", f"timeout_s = {timeout_s}", ""]
    return "\n".join(lines) + tail
