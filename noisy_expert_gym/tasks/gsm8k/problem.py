"""NoisyGSM8K's problem: the task core over a list of word problems and its two experts.

:func:`build_problem` is what ``make_problem("NoisyGSM8K-v1", ...)`` and the env call;
its keyword arguments are the env's (documented on
:class:`~noisy_expert_gym.envs.gsm8k.NoisyGSM8KEnv`).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from noisy_expert_gym.noise import check_law
from noisy_expert_gym.tasks.gsm8k.answers import check_answer_format
from noisy_expert_gym.tasks.gsm8k.core import DEFAULT_MAX_NEW_TOKENS, GSM8KTask
from noisy_expert_gym.tasks.gsm8k.data import WordProblem, load_problems
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert
from noisy_expert_gym.tasks.gsm8k.tokenizer import (
    STOP_ON,
    SYSTEM_PROMPTS,
    HFTokenizer,
    check_same_vocab,
    load_hf_tokenizer,
    make_tokenizer,
)
from noisy_expert_gym.utils import did_you_mean

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


def _stop_list(stop_tokens: Any) -> list[Any]:
    if stop_tokens is None:
        return []
    if isinstance(stop_tokens, (int, str, np.integer)):
        return [stop_tokens]
    return list(stop_tokens)


def _generation_stops(model: Any) -> list[int]:
    """The ids a model's generation config stops on (Gemma 3: ``[1, 106]``, ``<eos>`` and ``<end_of_turn>``)."""
    ids = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if ids is None:
        return []
    return [int(i) for i in (ids if isinstance(ids, (list, tuple)) else [ids])]


def build_problem(data_dir: str | os.PathLike | None = None, split: str = "train",
                  problems: Sequence[WordProblem | dict[str, str]] | None = None, subset: int | None = None,
                  seed: int = 0, expert: str = "reference", eta: float = 0.01, law: str | None = None,
                  t: float = 1.0, max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS,
                  max_prompt_tokens: int | None = None, overflow: str = "drop", tokenizer: Any = None,
                  strip_annotations: bool = True, uniform_over: str = "text", strict_answer: bool = False,
                  system_prompt: str | None = None, chat_template: bool | None = None,
                  device: Any = None, torch_dtype: Any = None, max_batch: int | None = None,
                  answer_format: str = "####", dataset: str = "gsm8k", limit: int | None = None,
                  stop_on: str = "turn", stop_tokens: Any = ()) -> tuple[GSM8KTask, Any, Any]:
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
    check_answer_format(answer_format)
    if stop_on not in STOP_ON:
        raise ValueError(f"unknown `stop_on` {stop_on!r}; valid values: 'turn', 'eos'."
                         f"{did_you_mean(str(stop_on), STOP_ON)}")
    is_hf = expert.startswith("hf:")
    law = law if law is not None else ("temperature" if is_hf else "absorbing")
    if is_hf:  # fail before a download
        check_law(law, 0.0, allowed=("temperature",))
        if not isinstance(t, (int, float)) or isinstance(t, bool) or not t > 0:
            raise ValueError(f"the temperature `t` must be a number > 0, got {t!r}")
    loaded = (load_problems(split, data_dir, dataset=dataset, limit=limit) if problems is None
              else as_word_problems(problems))
    prompt = system_prompt if system_prompt is not None else SYSTEM_PROMPTS[answer_format]
    stops = _stop_list(stop_tokens)

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
        if stop_on == "turn":  # the model's own stop ids (Gemma 3 declares <end_of_turn> there)
            stops = _generation_stops(model) + stops
        tok: Any = HFTokenizer(hf_tok, system_prompt=prompt, chat_template=chat_template, stop_tokens=stops,
                               stop_on=stop_on)
    elif (isinstance(tokenizer, str) and tokenizer.startswith("hf:")) or hasattr(tokenizer, "get_vocab"):
        # The reference teacher in a Hugging Face vocabulary: a pretrained student learns from it.
        hf_tok = load_hf_tokenizer(tokenizer[3:]) if isinstance(tokenizer, str) else tokenizer
        tok = HFTokenizer(hf_tok, system_prompt=prompt, chat_template=chat_template, stop_tokens=stops,
                          stop_on=stop_on)
    else:
        tok = make_tokenizer("char" if tokenizer is None else tokenizer)
    task = GSM8KTask(loaded, tokenizer=tok, max_new_tokens=max_new_tokens,
                     max_prompt_tokens=max_prompt_tokens, strip_annotations=strip_annotations,
                     overflow=overflow, uniform_over=uniform_over, strict_answer=strict_answer,
                     subset=subset, seed=seed, answer_format=answer_format)
    if is_hf:
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import HFTeacher

        return (task, HFTeacher(task, model, t=t, max_batch=max_batch),
                HFTeacher(task, model, greedy=True, max_batch=max_batch))
    return task, ReferenceExpert(task, law=law, eta=eta), ReferenceExpert(task, clean=True)
