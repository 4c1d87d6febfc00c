"""GSM-8K token generation: the pure batched core of NoisyGSM8K and its reference teacher.

Layout (``P`` = ``prompt_len``, ``H`` = ``horizon`` = ``max_new_tokens``)::

    obs = [pad .. pad, question tokens, SEP | y_1 .. y_t, pad .. pad]
           <------------- P ---------------> <---------- H --------->

The prompt is left-padded so the question always ends right before the
separator (built-in tokenizers; an HF tokenizer's chat template ends the prompt
instead). Actions are the first ``num_actions`` token ids, the stop tokens
included; SEP and PAD come after them (see
:mod:`noisy_expert_gym.tasks.gsm8k.tokenizer`). A *chain* is the (N, H) matrix
of generated tokens y_1..y_H; everything after its first stop token (any of
``eos_tokens``; "EOS" below) is ignored by every function here
(:meth:`GSM8KTask.valid_along`).

The reference teacher's dynamic oracle (docs/design.md §6), defined on every prefix for any
tokenizer, is :mod:`noisy_expert_gym.tasks.gsm8k.dynamic_oracle`.

Noise (applied by :class:`noisy_expert_gym.oracle.Expert`): the uniform part U
is spread over ``answer_mask`` -- by default newline, the 95 printable ASCII
characters and EOS (``uniform_over="text"``; every action with an HF
tokenizer); ``"digits"`` or ``"all"`` actions otherwise. The ``biased`` law's
slip is an off-by-one digit ((d + 1) mod 10) where the clean token is a
single-digit token; elsewhere the slip is the clean token itself (no slip), so
``biased`` corrupts numbers only.

Each function accepts numpy arrays or torch tensors (any device) and returns the
same kind. Prompts are mapped to their problem through a dict keyed on the prompt's
tokens; prompts and reference chains are stored ragged, so a task over hundreds of
thousands of problems (TinyGSM) costs their tokens, not problems x H.

**Evaluation on a whole split.** :meth:`GSM8KTask.all_prompts` (every problem
once, in order) and :meth:`GSM8KTask.prompt_batches` (the same in consecutive
batches) -- not :meth:`sample_prompts`, which draws with replacement.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from noisy_expert_gym.tasks.gsm8k.answers import (
    answer_line,
    answer_tolerance,
    answers_match,
    check_answer_format,
    extract_answer,
    parse_gold,
    reference_solution,
)
from noisy_expert_gym.tasks.gsm8k.data import WordProblem, load_problems
from noisy_expert_gym.tasks.gsm8k.dynamic_oracle import (
    DynamicOracle,
    _Analysis,
    _gather,
    _like,
    _np,
    _ragged,
)
from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import SYSTEM_PROMPTS
from noisy_expert_gym.tasks.gsm8k.kwargs import (
    DEFAULT_MAX_NEW_TOKENS,
    check_max_new_tokens,
    check_max_prompt_tokens,
    check_overflow,
    check_subset,
    check_uniform_over,
)
from noisy_expert_gym.tasks.gsm8k.tokenizer import make_tokenizer
from noisy_expert_gym.utils import is_torch

#: Above this many prompt tokens (problems x P) torch prompts are gathered on the CPU per draw
#: instead of kept whole on the device.
_DEVICE_PROMPTS_MAX = 1 << 24


class GSM8KTask(DynamicOracle):
    """The GSM-8K token-generation task over a fixed list of problems.

    Args:
        problems: the problems (see :func:`noisy_expert_gym.tasks.gsm8k.load_problems`).
        tokenizer: ``"char"`` (default), ``"byte"``, ``"hf:<name>"`` or a tokenizer object.
        max_new_tokens: the horizon H, >= 1.
        max_prompt_tokens: the prompt length P, separator included. None: the
            longest prompt among the problems (before the subset draw, so a
            subset has the observation shape of its whole split). Pass the same
            value to a train and a test task to give them one shape.
        strip_annotations: remove ``<<48/2=24>>`` calculator annotations from the
            teacher text (default True).
        overflow: a problem whose prompt is longer than P or whose reference
            solution + EOS is longer than H is dropped (``"drop"``, default;
            ``num_dropped`` counts them) or raises (``"error"``).
        uniform_over: support of the noise's uniform part: ``"text"`` (newline,
            printable ASCII, EOS), ``"digits"`` or ``"all"`` actions.
        strict_answer: extract answers only from a marked answer (``#### n`` /
            ``\\boxed{n}``; default False: else the last number of the text).
        subset: keep this many problems, drawn without replacement with `seed`
            after the overflow filter (original order kept). None: all.
        seed: seed of the subset draw.
        answer_format: ``"####"`` (default) or ``"boxed"`` (the paper authors'):
            the reference solution's final line, the HF teacher's default system
            prompt, answer extraction and comparison (see
            :mod:`~noisy_expert_gym.tasks.gsm8k.answers`).

    Problems whose prompts tokenize identically are kept once (the first): the
    oracle knows a problem by its prompt. ``problems``, ``golds`` (normalised),
    ``gold_texts`` (as written after ``####``) and ``solutions`` (the teacher
    text before the tokenizer's normalisation) are aligned lists.
    """

    def __init__(self, problems: Sequence[WordProblem], tokenizer: Any = "char",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_prompt_tokens: int | None = None,
                 strip_annotations: bool = True, overflow: str = "drop", uniform_over: str = "text",
                 strict_answer: bool = False, subset: int | None = None, seed: int = 0,
                 answer_format: str = "####") -> None:
        check_max_new_tokens(max_new_tokens)
        check_max_prompt_tokens(max_prompt_tokens)
        check_overflow(overflow)
        check_uniform_over(uniform_over)
        check_answer_format(answer_format)
        check_subset(subset)
        if len(problems) == 0:
            raise ValueError("GSM8KTask needs at least one problem")
        self.tokenizer = tok = make_tokenizer(tokenizer, system_prompt=SYSTEM_PROMPTS[answer_format])
        self.H = int(max_new_tokens)
        self.strip_annotations = bool(strip_annotations)
        self.uniform_over = uniform_over
        self.strict_answer = bool(strict_answer)
        self.answer_format = answer_format
        self.answer_tol = answer_tolerance(answer_format)

        golds = [parse_gold(p.answer) for p in problems]
        solutions = [reference_solution(p.answer, strip=self.strip_annotations, answer_format=answer_format)
                     for p in problems]
        prompts = tok.encode_prompts([p.question for p in problems])  # batched: TinyGSM has 10^5+ problems
        bodies = tok.encode_batch(solutions)
        kept: list[int] = []
        seen: set[bytes] = set()
        self.num_dropped = 0
        for j, p in enumerate(problems):
            too_long = []
            if max_prompt_tokens is not None and len(prompts[j]) > max_prompt_tokens:
                too_long.append(f"its prompt has {len(prompts[j])} tokens > max_prompt_tokens={max_prompt_tokens}")
            if len(bodies[j]) + 1 > self.H:
                too_long.append(f"its reference solution + EOS has {len(bodies[j]) + 1} tokens > "
                                f"max_new_tokens={self.H}")
            if too_long:
                if overflow == "error":
                    raise ValueError(f"problem {p.index} does not fit: {'; '.join(too_long)}. Raise the limit, "
                                     "or pass overflow='drop' to skip such problems")
                self.num_dropped += 1
                continue
            key = prompts[j].astype(np.int32).tobytes()
            if key in seen:  # the oracle must know the problem from the prompt alone
                continue
            seen.add(key)
            kept.append(j)
        if not kept:
            raise ValueError(f"no problem fits max_new_tokens={self.H}"
                             + (f" and max_prompt_tokens={max_prompt_tokens}" if max_prompt_tokens else "")
                             + f" ({self.num_dropped} dropped); raise the limits")
        # P before the subset draw: a subset's observations have the same shape as the whole split's.
        self.P = int(max_prompt_tokens) if max_prompt_tokens is not None else max(len(prompts[j]) for j in kept)
        if subset is not None:
            if subset > len(kept):
                raise ValueError(f"`subset`={subset} but only {len(kept)} problems are available "
                                 f"({self.num_dropped} dropped by the length limits)")
            pick = np.sort(np.random.default_rng(seed).choice(len(kept), size=int(subset), replace=False))
            kept = [kept[i] for i in pick]

        self.problems: list[WordProblem] = [problems[j] for j in kept]
        self.golds: list[str] = [golds[j][0] for j in kept]
        self.gold_texts: list[str] = [golds[j][1] for j in kept]
        self.solutions: list[str] = [solutions[j] for j in kept]
        #: Each problem's final-answer line F (text), e.g. ``#### 1,080``.
        self.answer_lines: list[str] = [answer_line(g, answer_format) for g in self.gold_texts]
        # Ragged storage, small integers: TinyGSM-sized tasks would not fit as (problems, H) matrices.
        small = np.int16 if tok.vocab_size < 2**15 else np.int32
        self._key_dtype = np.int32
        self._prompt_flat, self._prompt_off = _ragged([prompts[j] for j in kept], small)
        eos_arr = np.array([tok.eos_token])
        self._ref_flat, self._ref_off = _ragged([np.concatenate([bodies[j], eos_arr]) for j in kept], small)
        self._index = {prompts[j].astype(np.int32).tobytes(): i for i, j in enumerate(kept)}
        self._eos_arr = np.array(tok.eos_tokens, np.int64)
        self._torch_prompts: dict[str, Any] = {}
        self._cache: tuple[np.ndarray, np.ndarray, _Analysis] | None = None
        # The text oracle's per-problem caches (HF tokenizers): F's bytes and continuation tokens,
        # the reference text's bytes, and re-tokenized continuations of the reference text.
        self._line_cache: dict[int, tuple[np.ndarray, np.ndarray, int]] = {}
        self._ref_bytes: dict[int, bytes] = {}
        self._cont_cache: dict[tuple[int, int], int] = {}
        if tok.fast_oracle:  # F as tokens, for the vectorised one-token-per-character oracle
            lines = [tok.encode(x) for x in self.answer_lines]
            self._line = np.full((len(lines), max(len(x) for x in lines)), -1, np.int64)
            self._line_len = np.array([len(x) for x in lines], np.int64)
            for i, x in enumerate(lines):
                self._line[i, : len(x)] = x

        a = tok.num_actions
        self._slip_table = np.arange(a)
        if len(tok.digit_tokens) == 10:
            self._slip_table[tok.digit_tokens] = np.roll(tok.digit_tokens, -1)  # d -> (d + 1) mod 10
        mask = np.zeros(a, bool)
        if uniform_over == "all":
            mask[:] = True
        elif uniform_over == "digits":
            if len(tok.digit_tokens) != 10:
                raise ValueError("`uniform_over='digits'` needs a tokenizer with one token per digit")
            mask[tok.digit_tokens] = True
        else:
            mask[tok.text_tokens] = True
            mask[tok.eos_token] = True
        self._answer_mask = mask

    @classmethod
    def from_split(cls, split: str = "train", data_dir: str | os.PathLike | None = None,
                   dataset: str = "gsm8k", **kwargs: Any) -> GSM8KTask:
        """The task over a split (see :func:`~noisy_expert_gym.tasks.gsm8k.load_problems`)."""
        return cls(load_problems(split, data_dir, dataset=dataset), **kwargs)

    def __repr__(self) -> str:
        fmt = f", answer_format={self.answer_format!r}" if self.answer_format != "####" else ""
        return (f"GSM8KTask({self.num_problems} problems, tokenizer={self.tokenizer.name}, "
                f"P={self.P}, H={self.H}{fmt})")

    # ----- sizes ---------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self.tokenizer.num_actions

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eos_token(self) -> int:
        """The stop token a teacher writes (``eos_tokens[0]``)."""
        return self.tokenizer.eos_token

    @property
    def eos_tokens(self) -> tuple[int, ...]:
        """Every stop token: a chain ends at the first of any of them."""
        return self.tokenizer.eos_tokens

    @property
    def sep_token(self) -> int | None:
        return self.tokenizer.sep_token

    @property
    def pad_token(self) -> int:
        return self.tokenizer.pad_token

    @property
    def prompt_len(self) -> int:
        return self.P

    @property
    def horizon(self) -> int:
        return self.H

    @property
    def obs_len(self) -> int:
        return self.P + self.H

    @property
    def num_problems(self) -> int:
        return len(self.problems)

    @property
    def num_prompts(self) -> int:
        """How many distinct prompts there are (one per problem)."""
        return self.num_problems

    @property
    def answer_mask(self) -> np.ndarray:
        """Actions the uniform part of the noise is spread over (see ``uniform_over``)."""
        return self._answer_mask.copy()

    # ----- prompts and observations ---------------------------------------------
    def problem_index(self, prompts: Any) -> np.ndarray:
        """Index (into ``problems``) of each prompt (N, P), numpy int64.

        Raises:
            ValueError: for a prompt that is not one of this task's problems.
        """
        p = np.ascontiguousarray(_np(prompts))
        if p.ndim != 2 or p.shape[1] != self.P:
            raise ValueError(f"prompts must have shape (N, {self.P}), got {tuple(p.shape)}")
        written = p != self.pad_token
        start = np.where(written.any(1), written.argmax(1), self.P)
        p = p.astype(self._key_dtype, copy=False)
        out = np.empty(p.shape[0], np.int64)
        for n in range(p.shape[0]):
            i = self._index.get(p[n, start[n]:].tobytes())
            if i is None:
                raise ValueError(f"prompt {n} of the batch is not one of this task's {self.num_problems} problems: "
                                 "the reference teacher only answers the problems it was built with (same "
                                 "split, subset, tokenizer and max_prompt_tokens)")
            out[n] = i
        return out

    def prompts_for(self, indices: Any, like: Any = None) -> Any:
        """Prompts (N, P) of problems by index; torch on like's device when `like` is a tensor."""
        idx = _np(indices).astype(np.int64).reshape(-1)
        return _like(_gather(self._prompt_flat, self._prompt_off, idx, self.P, self.pad_token, right=True), like)

    def all_prompts(self) -> np.ndarray:
        """Every problem's prompt once, in order, (num_problems, P): evaluation on a whole split."""
        return self.prompts_for(np.arange(self.num_problems))

    def prompt_batches(self, batch_size: int, device: Any = None) -> Iterator[Any]:
        """Every problem's prompt once, in order, as consecutive batches of at most `batch_size`
        (the last may be smaller): numpy, or torch on `device` when given. Greedy evaluation on all
        1,319 GSM-8K test problems is one pass over ``prompt_batches`` of a ``split="test"`` task."""
        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise ValueError(f"`batch_size` must be an integer >= 1, got {batch_size!r}")
        for s in range(0, self.num_problems, int(batch_size)):
            batch = self.prompts_for(np.arange(s, min(s + int(batch_size), self.num_problems)))
            if device is not None:
                import torch

                batch = torch.as_tensor(batch, device=device)
            yield batch

    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """n prompts (N, P) of problems drawn uniformly with replacement (training, not evaluation:
        see :meth:`all_prompts`)."""
        m = self.num_problems
        if isinstance(rng, np.random.Generator):
            return self.prompts_for(rng.integers(0, m, size=n))
        import torch

        dev = torch.device(device) if device is not None else rng.device
        idx = torch.randint(0, m, (n,), generator=rng, device=rng.device).to(dev)
        if m * self.P > _DEVICE_PROMPTS_MAX:  # too many to keep on the device: gather on the CPU
            return torch.as_tensor(self.prompts_for(idx.cpu().numpy()), device=dev)
        key = str(dev)
        if key not in self._torch_prompts:
            self._torch_prompts[key] = torch.as_tensor(self.all_prompts(), device=dev)
        return self._torch_prompts[key][idx]

    def observe(self, prompts: Any, chain: Any) -> Any:
        """Observation from prompts (N, P) and a (possibly partial) chain (N, t), t <= H."""
        n, t = chain.shape
        if t > self.H:
            raise ValueError(f"a chain has at most max_new_tokens={self.H} tokens, got {t}")
        if is_torch(prompts):
            import torch

            pad = torch.full((n, self.H - t), self.pad_token, dtype=torch.long, device=prompts.device)
            return torch.cat([prompts.long(), chain.long().to(prompts.device), pad], dim=1)
        pad = np.full((n, self.H - t), self.pad_token, np.int64)
        return np.concatenate([np.asarray(prompts, np.int64), np.asarray(chain, np.int64), pad], axis=1)

    def _ref_rows(self, idx: np.ndarray, width: int) -> np.ndarray:
        """Reference chains R of problems idx, (N, width) int64, -1 after R (never equals a token)."""
        return _gather(self._ref_flat, self._ref_off, idx, width, -1)

    def clean_chains(self, prompts: Any) -> Any:
        """Reference chains (N, H): the solution's tokens, EOS, then EOS padding (actions only)."""
        ref = self._ref_rows(self.problem_index(prompts), self.H)
        return _like(np.where(ref < 0, self.eos_token, ref), prompts)

    def validate_obs(self, obs: Any) -> None:
        """Raise a ValueError unless `obs` is a well-formed batch (N, P + H) of prefixes."""
        if obs.ndim != 2 or obs.shape[1] != self.obs_len:
            raise ValueError(f"observations must have shape (N, {self.obs_len}) (or ({self.obs_len},) for one) "
                             f"for P={self.P}, H={self.H}; got {tuple(obs.shape)}")
        o = _np(obs)
        lo, hi = int(o.min()), int(o.max())
        if lo < 0 or hi >= self.vocab_size:
            raise ValueError(f"observation tokens must lie in [0, {self.vocab_size - 1}], got [{lo}, {hi}]")
        prompt, gen = o[:, : self.P], o[:, self.P:]
        pw = prompt != self.pad_token
        if bool((pw[:, :-1] & ~pw[:, 1:]).any()):
            raise ValueError("the prompt part of an observation must be left-padded: no pad after a token")
        if self.sep_token is not None and bool((prompt[:, -1] != self.sep_token).any()):
            raise ValueError(f"the prompt part of an observation must end with the separator {self.sep_token}")
        written = gen != self.pad_token
        if bool((written[:, 1:] & ~written[:, :-1]).any()) or bool((gen[written] >= self.num_actions).any()):
            raise ValueError("the generated part of an observation must be actions followed by padding")

    # ----- single prefixes --------------------------------------------------------
    def step_index(self, obs: Any) -> Any:
        """Number of tokens generated so far, (N,)."""
        return (obs[:, self.P:] != self.pad_token).sum(1)

    def clean_actions(self, obs: Any) -> Any:
        """The clean expert's next token at each prefix, (N,)."""
        a, t = self._analyse_obs(obs)
        return _like(a.clean[np.arange(len(t)), t], obs)

    def has_error(self, obs: Any) -> Any:
        """Whether each prefix has left the reference path (contains an error), (N,) bool."""
        a, t = self._analyse_obs(obs)
        return _like(a.error[np.arange(len(t)), t], obs)

    def slip_actions(self, obs: Any) -> Any:
        """The ``biased`` law's slip: clean digit d -> (d + 1) mod 10; other tokens unchanged."""
        a, t = self._analyse_obs(obs)
        return _like(a.slip[np.arange(len(t)), t], obs)

    # ----- every prefix of complete chains (the trainers' fast path) ---------------
    def clean_along(self, prompts: Any, chain: Any) -> Any:
        """Clean expert's token at every prefix chain[:, :t], t = 0..H-1; (N, H). EOS past the first EOS."""
        return _like(self._analyse(prompts, chain).clean, chain)

    def error_along(self, prompts: Any, chain: Any) -> Any:
        """Whether chain[:, :t] has left the reference path, t = 0..H-1; (N, H) bool."""
        return _like(self._analyse(prompts, chain).error, chain)

    def slip_along(self, prompts: Any, chain: Any) -> Any:
        return _like(self._analyse(prompts, chain).slip, chain)

    def valid_along(self, prompts: Any, chain: Any) -> Any:
        """Which prefixes are real decisions: t <= index of the chain's first EOS; (N, H) bool.

        Trainers mask losses with it: tokens after a chain's first EOS are junk.
        """
        c = _np(chain)
        is_eos = np.isin(c, self._eos_arr)
        first = np.where(is_eos.any(1), is_eos.argmax(1), c.shape[1])
        return _like(np.arange(c.shape[1])[None, :] <= first[:, None], chain)

    # ----- answers and metrics -------------------------------------------------------
    def texts(self, chain: Any) -> list[str]:
        """The generated text of each chain, up to (not including) its first stop token."""
        c = _np(chain)
        is_eos = np.isin(c, self._eos_arr)
        first = np.where(is_eos.any(1), is_eos.argmax(1), c.shape[1])
        return [self.tokenizer.decode(c[r, : first[r]]) for r in range(c.shape[0])]

    def answers(self, chain: Any) -> list[str | None]:
        """The extracted final answer of each chain (normalised), None when there is none."""
        return [extract_answer(x, strict=self.strict_answer, answer_format=self.answer_format)
                for x in self.texts(chain)]

    def answer_correct(self, answers: Sequence[str | None], indices: Any) -> np.ndarray:
        """Whether each extracted answer matches its problem's gold (the answer format's comparison)."""
        idx = _np(indices).astype(np.int64).reshape(-1)
        return np.array([answers_match(a, self.golds[i], self.answer_tol) for a, i in zip(answers, idx)], bool)

    def metrics(self, prompts: Any, chain: Any) -> dict[str, Any]:
        """Per-episode clean metrics of complete chains (N, H), ignoring tokens after the first EOS.

        - ``final_exact``: the extracted final answer equals the gold (the env's reward;
          extraction and comparison follow ``answer_format``);
        - ``full_exact``: the chain is exactly the reference solution then EOS;
        - ``correct_prefix_len``: length of the longest prefix on the reference
          path (EOS included; 0..len(R));
        - ``num_errors``: tokens that differ from the clean expert's token given
          the chain as written (a detour then a clean recovery counts 1);
        - ``length``: tokens generated, EOS included; ``finished``: an EOS was written.
        """
        a = self._analyse(prompts, chain)
        c = _np(chain)
        idx = self.problem_index(prompts)
        final = self.answer_correct(self.answers(c), idx)
        out = {
            "full_exact": a.on_path_len >= self._ref_off[idx + 1] - self._ref_off[idx],
            "final_exact": final,
            "correct_prefix_len": a.on_path_len.astype(np.int64),
            "num_errors": ((c != a.clean) & a.valid).sum(1).astype(np.int64),
            "length": np.minimum(a.first_eos + 1, c.shape[1]).astype(np.int64),
            "finished": a.first_eos < c.shape[1],
        }
        return {k: _like(v, chain) for k, v in out.items()}
