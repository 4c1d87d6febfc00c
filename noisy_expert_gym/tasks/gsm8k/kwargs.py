"""NoisyGSM8K's keyword arguments, declared (:class:`GSM8KKwargs`), with the checks that need no data.

What needs the data or the tokenizer (problems that do not fit, a tokenizer's name or
vocabulary, the stop tokens, the TinyGSM split) is checked where they are loaded. The
task core (:class:`~noisy_expert_gym.tasks.gsm8k.core.GSM8KTask`) runs the same checks on
its own arguments, so a value is refused with one message wherever it is passed.
"""

from __future__ import annotations

from typing import Annotated, Any

import numpy as np
from pydantic import model_validator

from noisy_expert_gym.declarations import Declared, checked
from noisy_expert_gym.noise import EXPERT_LAWS, check_law_name
from noisy_expert_gym.tasks.gsm8k.answers import check_answer_format
from noisy_expert_gym.tasks.gsm8k.data import check_dataset, check_limit, check_split
from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import check_stop_on
from noisy_expert_gym.tasks.kwargs import (
    Access,
    Eta,
    LogitNoiseDist,
    LogitNoiseScale,
    TopKTokens,
    check_noise_applies,
)
from noisy_expert_gym.utils import did_you_mean

#: Fits every GSM-8K reference solution (train and test, annotations kept or not) with
#: both built-in tokenizers: the longest is 1,228 tokens + EOS.
DEFAULT_MAX_NEW_TOKENS = 1280
OVERFLOW: tuple[str, ...] = ("drop", "error")
UNIFORM_OVER: tuple[str, ...] = ("text", "digits", "all")
EXPERTS: tuple[str, ...] = ("reference", "hf:<model name or path>")


def check_max_new_tokens(max_new_tokens: Any) -> Any:
    """`max_new_tokens` if it is an integer >= 1, else a ValueError."""
    if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) or max_new_tokens < 1:
        raise ValueError(f"`max_new_tokens` must be an integer >= 1, got {max_new_tokens!r}")
    return max_new_tokens


def check_max_prompt_tokens(max_prompt_tokens: Any) -> Any:
    """`max_prompt_tokens` if it is None or an integer >= 2, else a ValueError."""
    if max_prompt_tokens is not None and (not isinstance(max_prompt_tokens, (int, np.integer))
                                          or max_prompt_tokens < 2):
        raise ValueError(f"`max_prompt_tokens` must be an integer >= 2 or None, got {max_prompt_tokens!r}")
    return max_prompt_tokens


def _one_of(name: str, value: Any, valid: tuple[str, ...]) -> Any:
    if value not in valid:
        raise ValueError(f"unknown `{name}` `{value}`; valid values: {', '.join(valid)}."
                         f"{did_you_mean(str(value), valid)}")
    return value


def check_overflow(overflow: Any) -> Any:
    """`overflow` if it is one of :data:`OVERFLOW`, else a ValueError."""
    return _one_of("overflow", overflow, OVERFLOW)


def check_uniform_over(uniform_over: Any) -> Any:
    """`uniform_over` if it is one of :data:`UNIFORM_OVER`, else a ValueError."""
    return _one_of("uniform_over", uniform_over, UNIFORM_OVER)


def check_subset(subset: Any) -> Any:
    """`subset` if it is None or an integer >= 1, else a ValueError."""
    if subset is not None and (not isinstance(subset, (int, np.integer)) or subset < 1):
        raise ValueError(f"`subset` must be an integer >= 1 or None, got {subset!r}")
    return subset


def check_expert(expert: Any) -> Any:
    """`expert` if it is ``reference`` or ``hf:<model name or local path>``, else a ValueError."""
    if not isinstance(expert, str) or not (expert == "reference" or expert.startswith("hf:")):
        raise ValueError(f"unknown `expert` {expert!r}; valid values: `reference` or "
                         f"`hf:<model name or local path>`.{did_you_mean(str(expert), ('reference',))}")
    return expert


class _NoiseView:
    """The shared noise fields as :func:`check_noise_applies` reads them (kappa and the seed at their defaults)."""

    def __init__(self, law: str, access: str, top_k: Any, logit_noise: float, logit_noise_dist: str) -> None:
        self.law, self.kappa, self.corruption_seed = law, 1.0, 0
        self.access, self.top_k = access, top_k
        self.logit_noise, self.logit_noise_dist = logit_noise, logit_noise_dist


class GSM8KKwargs(Declared):
    """NoisyGSM8K's keyword arguments, declared (documented on :class:`~noisy_expert_gym.envs.gsm8k.NoisyGSM8KEnv`).

    What needs the data or the tokenizer (problems that do not fit, a tokenizer's name or
    vocabulary, the stop tokens, the TinyGSM split) is checked where they are loaded.
    """

    data_dir: Any = None
    """GSM-8K JSONL directory or file (TinyGSM: its files); None: the dataset's environment variable, else the hub."""
    split: Annotated[str, checked(check_split)] = "train"
    """`train` or `test`."""
    problems: Any = None
    """Explicit problems (WordProblem or dicts with `question` / `answer`) instead of a split."""
    subset: Annotated[int | None, checked(check_subset)] = None
    """Keep this many problems (drawn with `seed`)."""
    seed: int = 0
    """Seed of the subset draw (not of episodes)."""
    expert: Annotated[str, checked(check_expert)] = "reference"
    """`reference` or `hf:<model name or path>`."""
    eta: Eta = 0.01
    """Noise level of the reference expert, in [0, 1]."""
    law: str | None = None
    """None: `absorbing` for the reference expert, `temperature` for an LM teacher."""
    t: Any = 1.0
    """LM teacher sampling temperature, > 0."""
    max_new_tokens: Annotated[int, checked(check_max_new_tokens)] = DEFAULT_MAX_NEW_TOKENS
    """The horizon H."""
    max_prompt_tokens: Annotated[int | None, checked(check_max_prompt_tokens)] = None
    """The prompt length P (SEP included)."""
    overflow: Annotated[str, checked(check_overflow)] = "drop"
    """Problems that do not fit are dropped (`drop`) or raise (`error`)."""
    tokenizer: Any = None
    """None (`char`, or the LM teacher's), `char`, `byte`, `hf:<name>` or a transformers tokenizer."""
    strip_annotations: bool = True
    """Drop `<<48/2=24>>` from the teacher text."""
    uniform_over: Annotated[str, checked(check_uniform_over)] = "text"
    """Noise support: `text`, `digits` or `all`."""
    strict_answer: bool = False
    """Only `#### n` / `\\boxed{n}` count as answers."""
    system_prompt: str | None = None
    """The prompt of an HF tokenizer (None: the answer format's)."""
    chat_template: bool | None = None
    """Prompt through the HF tokenizer's chat template (None: when it has one)."""
    device: Any = None
    """LM teacher option: its device."""
    torch_dtype: Any = None
    """LM teacher option: its weights' dtype."""
    max_batch: Any = None
    """LM teacher option: prefixes per forward pass."""
    answer_format: Annotated[str, checked(check_answer_format)] = "####"
    """`####` or `boxed`."""
    dataset: Annotated[str, checked(check_dataset)] = "gsm8k"
    """`gsm8k` or `tinygsm`."""
    limit: Annotated[int | None, checked(check_limit)] = None
    """Read only the first `limit` problems of the split."""
    stop_on: Annotated[str, checked(check_stop_on)] = "turn"
    """An HF tokenizer's stop tokens: every end-of-turn token (`turn`) or its EOS only (`eos`, v0's)."""
    stop_tokens: Any = ()
    """More stop tokens (ids or token strings)."""
    access: Access = "full"
    """The reference teacher's access: `full`, `topk` (with top_k) or `sample` (an LM teacher: `full` only)."""
    top_k: TopKTokens = None
    """Tokens per answer with access `topk`; None otherwise."""
    logit_noise: LogitNoiseScale = 0.0
    """Scale sigma >= 0 of the reference teacher's per-query logit noise (0: off; an LM teacher: 0 only)."""
    logit_noise_dist: LogitNoiseDist = "gaussian"
    """The logit noise's distribution: `gaussian` or `gumbel` (only with logit_noise > 0)."""

    @property
    def is_hf(self) -> bool:
        """The teacher is a Hugging Face LM (``expert="hf:..."``)."""
        return self.expert.startswith("hf:")

    @property
    def noise_law(self) -> str:
        """The law, its default filled in."""
        return self.law if self.law is not None else ("temperature" if self.is_hf else "absorbing")

    @model_validator(mode="after")
    def _teacher(self) -> GSM8KKwargs:
        if self.is_hf:  # fail before a download
            check_law_name(self.noise_law, ("temperature",))
            if self.access != "full" or self.top_k is not None or self.logit_noise != 0:
                raise ValueError("an LM teacher (expert='hf:...') answers with access='full' and no logit noise; "
                                 "`access`, `top_k` and `logit_noise` apply to the reference teacher "
                                 "(expert='reference')")
            if not isinstance(self.t, (int, float)) or isinstance(self.t, bool) or not self.t > 0:
                raise ValueError(f"the temperature `t` must be a number > 0, got {self.t!r}")
            if isinstance(self.tokenizer, str) and self.tokenizer in ("char", "byte"):
                raise ValueError(f"student and teacher tokenizers differ: `tokenizer={self.tokenizer!r}` with an LM "
                                 "teacher. Logit distillation needs the teacher's vocabulary: pass "
                                 "`tokenizer=None` (the teacher's) or an HF tokenizer with the same vocabulary")
        else:
            check_law_name(self.noise_law, EXPERT_LAWS)
        check_noise_applies(_NoiseView(self.noise_law, self.access, self.top_k, self.logit_noise,
                                       self.logit_noise_dist))
        return self

    @model_validator(mode="after")
    def _applies(self) -> GSM8KKwargs:
        """Refuse a value given to an option that has no effect with the chosen teacher, tokenizer or data
        (it would be accepted and silently ignored)."""
        def refuse(names: list[str], why: str) -> None:
            given = [f"{n}={getattr(self, n)!r}" for n in names if getattr(self, n) != _DEFAULTS[n]]
            if given:
                raise ValueError(f"{', '.join(given)} has no effect: {why}")

        if self.is_hf:
            refuse(["eta"], "an LM teacher's noise is its temperature `t` (eta is the reference expert's noise "
                   "level); drop eta")
        else:
            refuse(["t", "device", "torch_dtype", "max_batch"], "these are options of an LM teacher "
                   "(expert='hf:<model>'); the reference expert's noise is `eta` under `law`")
        hf_tokenizer = self.is_hf or (isinstance(self.tokenizer, str) and self.tokenizer.startswith("hf:")) or (
            hasattr(self.tokenizer, "get_vocab") or hasattr(self.tokenizer, "hf"))
        if not hf_tokenizer:
            refuse(["system_prompt", "chat_template"], "they shape the prompt of a Hugging Face tokenizer, and "
                   "the built-in tokenizers prompt with the question alone; pass tokenizer='hf:<name>' or drop them")
        if self.subset is None:
            refuse(["seed"], "`seed` draws the `subset` of problems; pass subset=N too, or drop seed")
        if self.problems is not None:
            refuse(["data_dir", "split", "dataset", "limit"], "`problems` replaces the data these select; "
                   "drop them, or drop `problems`")
        return self


_DEFAULTS = {k: f.get_default(call_default_factory=True) for k, f in GSM8KKwargs.model_fields.items()}

__all__ = ["DEFAULT_MAX_NEW_TOKENS", "EXPERTS", "OVERFLOW", "UNIFORM_OVER", "GSM8KKwargs", "check_expert",
           "check_max_new_tokens", "check_max_prompt_tokens", "check_overflow", "check_subset", "check_uniform_over"]
