"""NoisyGSM8K's problem: the task core over a list of word problems and its two experts.

:func:`build_problem` builds the problem of ``make_problem("NoisyGSM8K-v1", ...)`` and the env
from its declared keyword arguments (:class:`~noisy_expert_gym.tasks.gsm8k.kwargs.GSM8KKwargs`,
documented on :class:`~noisy_expert_gym.envs.gsm8k.NoisyGSM8KEnv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from noisy_expert_gym.tasks.gsm8k.core import GSM8KTask
from noisy_expert_gym.tasks.gsm8k.data import WordProblem, load_problems
from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import SYSTEM_PROMPTS, HFTokenizer, load_hf_tokenizer
from noisy_expert_gym.tasks.gsm8k.kwargs import GSM8KKwargs
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert
from noisy_expert_gym.tasks.gsm8k.tokenizer import check_same_vocab, make_tokenizer


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


def build_problem(kw: GSM8KKwargs) -> tuple[GSM8KTask, Any, Any]:
    """``(task core, noisy expert, clean expert)`` of NoisyGSM8K from its validated keyword arguments."""
    loaded = (load_problems(kw.split, kw.data_dir, dataset=kw.dataset, limit=kw.limit) if kw.problems is None
              else as_word_problems(kw.problems))
    prompt = kw.system_prompt if kw.system_prompt is not None else SYSTEM_PROMPTS[kw.answer_format]
    stops = _stop_list(kw.stop_tokens)
    tokenizer, stop_on = kw.tokenizer, kw.stop_on

    model = None
    if kw.is_hf:
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import load_teacher

        model, hf_tok = load_teacher(kw.expert[3:], device=kw.device, torch_dtype=kw.torch_dtype)
        if tokenizer is not None:
            check_same_vocab(tokenizer, hf_tok)
        if stop_on == "turn":  # the model's own stop ids (Gemma 3 declares <end_of_turn> there)
            stops = _generation_stops(model) + stops
        tok: Any = HFTokenizer(hf_tok, system_prompt=prompt, chat_template=kw.chat_template, stop_tokens=stops,
                               stop_on=stop_on)
    elif (isinstance(tokenizer, str) and tokenizer.startswith("hf:")) or hasattr(tokenizer, "get_vocab"):
        # The reference teacher in a Hugging Face vocabulary: a pretrained student learns from it.
        hf_tok = load_hf_tokenizer(tokenizer[3:]) if isinstance(tokenizer, str) else tokenizer
        tok = HFTokenizer(hf_tok, system_prompt=prompt, chat_template=kw.chat_template, stop_tokens=stops,
                          stop_on=stop_on)
    else:
        tok = make_tokenizer("char" if tokenizer is None else tokenizer)
        if stops:  # a stop token ends an episode whatever the tokenizer
            tok = tok.with_stop_tokens(stops)
    task = GSM8KTask(loaded, tokenizer=tok, max_new_tokens=kw.max_new_tokens,
                     max_prompt_tokens=kw.max_prompt_tokens, strip_annotations=kw.strip_annotations,
                     overflow=kw.overflow, uniform_over=kw.uniform_over, strict_answer=kw.strict_answer,
                     subset=kw.subset, seed=kw.seed, answer_format=kw.answer_format)
    if kw.is_hf:
        from noisy_expert_gym.tasks.gsm8k.hf_teacher import HFTeacher

        return (task, HFTeacher(task, model, t=kw.t, max_batch=kw.max_batch),
                HFTeacher(task, model, greedy=True, max_batch=kw.max_batch))
    return (task, ReferenceExpert(task, law=kw.noise_law, eta=kw.eta, access=kw.access, top_k=kw.top_k,
                                  logit_noise=kw.logit_noise, logit_noise_dist=kw.logit_noise_dist),
            ReferenceExpert(task, clean=True))
