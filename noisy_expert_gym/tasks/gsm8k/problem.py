"""NoisyGSM8K's problem: the task core over a list of word problems and its two experts.

:func:`build_problem` is what ``make_problem("NoisyGSM8K-v0", ...)`` and the env call;
its keyword arguments are the env's (documented on
:class:`~noisy_expert_gym.envs.gsm8k.NoisyGSM8KEnv`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from noisy_expert_gym._util import did_you_mean
from noisy_expert_gym.noise import check_law
from noisy_expert_gym.tasks.gsm8k.core import DEFAULT_MAX_NEW_TOKENS, GSM8KTask
from noisy_expert_gym.tasks.gsm8k.data import WordProblem, load_problems
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert
from noisy_expert_gym.tasks.gsm8k.tokenizer import (
    DEFAULT_SYSTEM_PROMPT,
    HFTokenizer,
    check_same_vocab,
    make_tokenizer,
)

EXPERTS: tuple[str, ...] = ("reference", "hf:<model name or path>")


def as_word_problems(problems: Sequence[WordProblem | dict[str, str]]) -> list[WordProblem]:
    """WordProblem objects from WordProblems or dicts with string ``question`` and ``answer``."""
    out = []
    for i, p in enumerate(problems):
        if isinstance(p, WordProblem):
            out.append(p)
        elif isinstance(p, dict) and isinstance(p.get("question"), str) and isinstance(p.get("answer"), str):
            out.append(WordProblem(p["question"], p["answer"], i))
        else:
            raise TypeError(f"`problems[{i}]` must be a WordProblem or a dict with string `question` and `answer`")
    return out


def build_problem(data_dir: str | os.PathLike | None = None, split: str = "train",
                  problems: Sequence[WordProblem | dict[str, str]] | None = None, subset: int | None = None,
                  seed: int = 0, expert: str = "reference", eta: float = 0.01, law: str | None = None,
                  t: float = 1.0, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  max_prompt_tokens: int | None = None, overflow: str = "drop", tokenizer: Any = None,
                  strip_annotations: bool = True, uniform_over: str = "text", strict_answer: bool = False,
                  system_prompt: str = DEFAULT_SYSTEM_PROMPT, chat_template: bool | None = None,
                  device: Any = None, torch_dtype: Any = None, max_batch: int | None = None
                  ) -> tuple[GSM8KTask, Any, Any]:
    """``(task core, noisy expert, clean expert)`` of NoisyGSM8K (arguments: see the env's docs).

    Raises:
        ValueError: an invalid argument, with the valid values.
    """
    if not isinstance(expert, str) or not (expert == "reference" or expert.startswith("hf:")):
        raise ValueError(f"unknown `expert` {expert!r}; valid values: `reference` or "
                         f"`hf:<model name or local path>`.{did_you_mean(str(expert), ('reference',))}")
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) \
            or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be an integer >= 1, got {max_new_tokens!r}")
    is_hf = expert.startswith("hf:")
    law = law if law is not None else ("temperature" if is_hf else "absorbing")
    if is_hf:  # fail before a download
        check_law(law, 0.0, allowed=("temperature",))
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
            raise ValueError(f"the temperature `t` must be a number > 0, got {t!r}")
    loaded = load_problems(split, data_dir) if problems is None else as_word_problems(problems)

    model = None
    if is_hf:
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import load_teacher

        if isinstance(tokenizer, str) and tokenizer in ("char", "byte"):
            raise ValueError(f"student and teacher tokenizers differ: `tokenizer={tokenizer!r}` with an LM "
                             "teacher. Logit distillation needs the teacher's vocabulary: pass "
                             "`tokenizer=None` (the teacher's) or an HF tokenizer with the same vocabulary")
        model, hf_tok = load_teacher(expert[3:], device=device, torch_dtype=torch_dtype)
        if tokenizer is not None:
            check_same_vocab(tokenizer, hf_tok)
        tok: Any = HFTokenizer(hf_tok, system_prompt=system_prompt, chat_template=chat_template)
    else:
        tok = make_tokenizer("char" if tokenizer is None else tokenizer)
        if isinstance(tok, HFTokenizer):
            raise ValueError("the reference teacher works with the built-in tokenizers `char` and `byte`; "
                             "a Hugging Face tokenizer goes with an LM teacher (`expert='hf:<name>'`)")
    task = GSM8KTask(loaded, tokenizer=tok, max_new_tokens=max_new_tokens,
                     max_prompt_tokens=max_prompt_tokens, strip_annotations=strip_annotations,
                     overflow=overflow, uniform_over=uniform_over, strict_answer=strict_answer,
                     subset=subset, seed=seed)
    if is_hf:
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import HFTeacher

        return (task, HFTeacher(task, model, t=t, max_batch=max_batch),
                HFTeacher(task, model, greedy=True, max_batch=max_batch))
    return task, ReferenceExpert(task, law=law, eta=eta), ReferenceExpert(task, clean=True)
