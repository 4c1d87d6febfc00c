"""GSM-8K token generation: the pure batched core of NoisyGSM8K and its reference teacher.

Layout (``P`` = ``prompt_len``, ``H`` = ``horizon`` = ``max_new_tokens``)::

    obs = [pad .. pad, question tokens, SEP | y_1 .. y_t, pad .. pad]
           <------------- P ---------------> <---------- H --------->

The prompt is left-padded so the question always ends right before the
separator (built-in tokenizers; an HF tokenizer's chat template ends the prompt
instead). Actions are the first ``num_actions`` token ids, EOS included; SEP
and PAD come after them (see :mod:`noisy_expert_gym.tasks.gsm8k.tokenizer`). A
*chain* is the (N, H) matrix of generated tokens y_1..y_H; everything after
its first EOS is ignored by every function here (:meth:`GSM8KTask.valid_along`).

The reference teacher (DESIGN §6) is a deterministic dynamic oracle defined on
every prefix y = y_1..y_t. Let R be the reference solution's tokens followed by
EOS, and F = ``"#### <gold>"`` its final-answer line (the gold as the reference
writes it, e.g. ``#### 1,080``):

1. *On the reference path* (y == R[:t]): the next reference token R[t].
2. *Off the path*: the first token of the shortest continuation after which the
   text's last line is F, followed by EOS. With u the current last line of y
   (the text after its last newline; all of y when it has none):
   - u is a prefix of F (u may be empty, e.g. right after a newline): the next
     character of F, or EOS once u == F;
   - otherwise: a newline (the continuation is ``"\\n" + F`` then EOS).
   So ``"...so 7"`` with F = ``"#### 72"`` continues ``"\\n#### 72<eos>"``, a prefix
   ending ``"\\n#### 7"`` continues ``"2<eos>"``, and ``"\\n#### 722"`` continues
   ``"\\n#### 72<eos>"``.
3. After an EOS: the episode is over; placeholders: clean = slip = EOS, and
   "has an error" = whether the finished chain (EOS included) left the path.

An *error* is a token that differs from the clean expert's token given the
prefix as written. The oracle follows R until the first deviation, so "the
prefix contains an error" is exactly "the prefix has left the reference path"
(how the ``absorbing`` law detects it), and errors after that are tokens that
leave the recovery continuation.

Noise (applied by :class:`noisy_expert_gym.oracle.Expert`): the uniform part U
is spread over ``answer_mask`` -- by default newline, the 95 printable ASCII
characters and EOS (``uniform_over="text"``); ``"digits"`` or ``"all"``
actions otherwise. The ``biased`` law's slip is an off-by-one digit
((d + 1) mod 10) where the clean token is a digit; elsewhere the slip is the
clean token itself (no slip), so ``biased`` corrupts numbers only.

Each function accepts numpy arrays or torch tensors (any device) and returns the
same kind; the computation runs in numpy on the CPU (the oracle is over
strings), vectorised over the batch for the built-in tokenizers. Prompts are
mapped to their problem through a dict keyed on the prompt's token bytes.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym._util import did_you_mean, is_torch
from noisy_expert_gym.tasks.gsm8k.answers import (
    ANSWER_MARK,
    answers_match,
    extract_answer,
    parse_gold,
    reference_solution,
)
from noisy_expert_gym.tasks.gsm8k.data import WordProblem, load_problems
from noisy_expert_gym.tasks.gsm8k.tokenizer import make_tokenizer

#: Fits every GSM-8K reference solution (train and test, annotations kept or not) with
#: both built-in tokenizers: the longest is 1,228 tokens + EOS.
DEFAULT_MAX_NEW_TOKENS = 1280
OVERFLOW: tuple[str, ...] = ("drop", "error")
UNIFORM_OVER: tuple[str, ...] = ("text", "digits", "all")


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def _like(x: np.ndarray, ref: Any) -> Any:
    """`x` as the kind of `ref`: a torch tensor on ref's device, or numpy as is."""
    if is_torch(ref):
        import torch

        return torch.as_tensor(x, device=ref.device)
    return x


def recovery_text(text: str, line: str) -> str:
    """The shortest continuation of `text` whose last line is `line` (EOS not included)."""
    last = text.rsplit("\n", 1)[-1]
    return line[len(last):] if line.startswith(last) else "\n" + line


@dataclass
class _Analysis:
    """The reference oracle at every prefix chain[:, :t] of a batch, t = 0..T-1 (numpy)."""

    clean: np.ndarray  # (N, T) int64
    error: np.ndarray  # (N, T) bool: chain[:, :t] has left the reference path
    slip: np.ndarray  # (N, T) int64
    valid: np.ndarray  # (N, T) bool: t <= first EOS
    on_path_len: np.ndarray  # (N,) common-prefix length with the reference (EOS included)
    first_eos: np.ndarray  # (N,) index of the first EOS, T if none


class GSM8KTask:
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
        strict_answer: extract answers only from ``#### n`` / ``\\boxed{n}``
            (default False: else the last number of the text).
        subset: keep this many problems, drawn without replacement with `seed`
            after the overflow filter (original order kept). None: all.
        seed: seed of the subset draw.

    Problems whose prompts tokenize identically are kept once (the first): the
    oracle knows a problem by its prompt. ``problems``, ``golds`` (normalised),
    ``gold_texts`` (as written after ``####``) and ``solutions`` (the teacher
    text before the tokenizer's normalisation) are aligned lists.
    """

    def __init__(self, problems: Sequence[WordProblem], tokenizer: Any = "char",
                 max_new_tokens: int = DEFAULT_MAX_NEW_TOKENS, max_prompt_tokens: int | None = None,
                 strip_annotations: bool = True, overflow: str = "drop", uniform_over: str = "text",
                 strict_answer: bool = False, subset: int | None = None, seed: int = 0) -> None:
        if not isinstance(max_new_tokens, (int, np.integer)) or isinstance(max_new_tokens, bool) \
                or max_new_tokens < 1:
            raise ValueError(f"`max_new_tokens` must be an integer >= 1, got {max_new_tokens!r}")
        if max_prompt_tokens is not None and (not isinstance(max_prompt_tokens, (int, np.integer))
                                              or max_prompt_tokens < 2):
            raise ValueError(f"`max_prompt_tokens` must be an integer >= 2 or None, got {max_prompt_tokens!r}")
        for name, value, valid in (("overflow", overflow, OVERFLOW), ("uniform_over", uniform_over, UNIFORM_OVER)):
            if value not in valid:
                raise ValueError(f"unknown `{name}` `{value}`; valid values: {', '.join(valid)}."
                                 f"{did_you_mean(str(value), valid)}")
        if subset is not None and (not isinstance(subset, (int, np.integer)) or subset < 1):
            raise ValueError(f"`subset` must be an integer >= 1 or None, got {subset!r}")
        if len(problems) == 0:
            raise ValueError("GSM8KTask needs at least one problem")
        self.tokenizer = tok = make_tokenizer(tokenizer)
        self.H = int(max_new_tokens)
        self.strip_annotations = bool(strip_annotations)
        self.uniform_over = uniform_over
        self.strict_answer = bool(strict_answer)

        kept: list[tuple[WordProblem, str, str, str, np.ndarray, np.ndarray, np.ndarray]] = []
        seen: set[bytes] = set()
        self.num_dropped = 0
        for p in problems:
            gold, gold_text = parse_gold(p.answer)
            solution = reference_solution(p.answer, strip=self.strip_annotations)
            prompt = tok.encode_prompt(p.question)
            ref = np.concatenate([tok.encode(solution), [tok.eos_token]])
            line = tok.encode(f"{ANSWER_MARK} {gold_text}")
            too_long = []
            if max_prompt_tokens is not None and len(prompt) > max_prompt_tokens:
                too_long.append(f"its prompt has {len(prompt)} tokens > max_prompt_tokens={max_prompt_tokens}")
            if len(ref) > self.H:
                too_long.append(f"its reference solution + EOS has {len(ref)} tokens > max_new_tokens={self.H}")
            if too_long:
                if overflow == "error":
                    raise ValueError(f"problem {p.index} does not fit: {'; '.join(too_long)}. Raise the limit, "
                                     "or pass overflow='drop' to skip such problems")
                self.num_dropped += 1
                continue
            key = prompt.astype(np.int64).tobytes()
            if key in seen:  # the oracle must know the problem from the prompt alone
                continue
            seen.add(key)
            kept.append((p, gold, gold_text, solution, prompt, ref, line))
        if not kept:
            raise ValueError(f"no problem fits max_new_tokens={self.H}"
                             + (f" and max_prompt_tokens={max_prompt_tokens}" if max_prompt_tokens else "")
                             + f" ({self.num_dropped} dropped); raise the limits")
        # P before the subset draw: a subset's observations have the same shape as the whole split's.
        self.P = int(max_prompt_tokens) if max_prompt_tokens is not None else max(len(k[4]) for k in kept)
        if subset is not None:
            if subset > len(kept):
                raise ValueError(f"`subset`={subset} but only {len(kept)} problems are available "
                                 f"({self.num_dropped} dropped by the length limits)")
            pick = np.sort(np.random.default_rng(seed).choice(len(kept), size=int(subset), replace=False))
            kept = [kept[i] for i in pick]

        self.problems: list[WordProblem] = [k[0] for k in kept]
        self.golds: list[str] = [k[1] for k in kept]
        self.gold_texts: list[str] = [k[2] for k in kept]
        self.solutions: list[str] = [k[3] for k in kept]
        m = len(kept)
        # Small integer storage: train at the default H is (7473, 1281) tokens.
        small = np.int16 if tok.vocab_size < 2**15 else np.int32
        self._prompts = np.full((m, self.P), tok.pad_token, small)
        self._ref = np.full((m, self.H + 1), -1, small)  # R then -1: never equals a token
        self._ref_len = np.zeros(m, np.int64)
        lmax = max(len(k[6]) for k in kept)
        self._line = np.full((m, lmax), -1, np.int64)
        self._line_len = np.zeros(m, np.int64)
        self._lines: list[str] = []
        for i, (_, _, gold_text, _, prompt, ref, line) in enumerate(kept):
            self._prompts[i, self.P - len(prompt):] = prompt
            self._ref[i, : len(ref)] = ref
            self._ref_len[i] = len(ref)
            self._line[i, : len(line)] = line
            self._line_len[i] = len(line)
            self._lines.append(f"{ANSWER_MARK} {gold_text}")
        self._key_dtype = small
        self._index = {row.tobytes(): i for i, row in enumerate(self._prompts)}
        self._torch_prompts: dict[str, Any] = {}
        self._cache: tuple[np.ndarray, np.ndarray, _Analysis] | None = None

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
                   **kwargs: Any) -> GSM8KTask:
        """The task over a GSM-8K split (see :func:`~noisy_expert_gym.tasks.gsm8k.load_problems`)."""
        return cls(load_problems(split, data_dir), **kwargs)

    def __repr__(self) -> str:
        return (f"GSM8KTask({self.num_problems} problems, tokenizer={self.tokenizer.name}, "
                f"P={self.P}, H={self.H})")

    # ----- sizes ---------------------------------------------------------------
    @property
    def num_actions(self) -> int:
        return self.tokenizer.num_actions

    @property
    def vocab_size(self) -> int:
        return self.tokenizer.vocab_size

    @property
    def eos_token(self) -> int:
        return self.tokenizer.eos_token

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
    def answer_mask(self) -> np.ndarray:
        """Actions the uniform part of the noise is spread over (see ``uniform_over``)."""
        return self._answer_mask.copy()

    # ----- prompts and observations ---------------------------------------------
    def problem_index(self, prompts: Any) -> np.ndarray:
        """Index (into ``problems``) of each prompt (N, P), numpy int64.

        Raises:
            ValueError: for a prompt that is not one of this task's problems.
        """
        p = np.ascontiguousarray(_np(prompts), dtype=self._key_dtype)
        if p.ndim != 2 or p.shape[1] != self.P:
            raise ValueError(f"prompts must have shape (N, {self.P}), got {tuple(p.shape)}")
        out = np.empty(p.shape[0], np.int64)
        for n in range(p.shape[0]):
            i = self._index.get(p[n].tobytes())
            if i is None:
                raise ValueError(f"prompt {n} of the batch is not one of this task's {self.num_problems} problems: "
                                 "the reference teacher only answers the problems it was built with (same "
                                 "split, subset, tokenizer and max_prompt_tokens)")
            out[n] = i
        return out

    def prompts_for(self, indices: Any, like: Any = None) -> Any:
        """Prompts (N, P) of problems by index; torch on like's device when `like` is a tensor."""
        return _like(self._prompts[_np(indices).astype(np.int64)].astype(np.int64), like)

    def all_prompts(self) -> np.ndarray:
        """Every problem's prompt in order, (num_problems, P): e.g. to evaluate on a whole split."""
        return self._prompts.astype(np.int64)

    def sample_prompts(self, rng: Any, n: int, device: Any = None) -> Any:
        """n prompts (N, P) of problems drawn uniformly with replacement."""
        m = self.num_problems
        if isinstance(rng, np.random.Generator):
            return self._prompts[rng.integers(0, m, size=n)].astype(np.int64)
        import torch

        dev = torch.device(device) if device is not None else rng.device
        idx = torch.randint(0, m, (n,), generator=rng, device=rng.device).to(dev)
        key = str(dev)
        if key not in self._torch_prompts:
            self._torch_prompts[key] = torch.as_tensor(self._prompts.astype(np.int64), device=dev)
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

    def clean_chains(self, prompts: Any) -> Any:
        """Reference chains (N, H): the solution's tokens, EOS, then EOS padding (actions only)."""
        ref = self._ref[self.problem_index(prompts), : self.H].astype(np.int64)
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

    # ----- the reference oracle ---------------------------------------------------
    def reference_tokens(self, i: int) -> list[int]:
        """Problem i's reference chain R: solution tokens then EOS."""
        return self._ref[i, : self._ref_len[i]].tolist()

    def next_token(self, i: int, prefix: Sequence[int]) -> int:
        """The clean expert's next token after `prefix` on problem i: the definition, one prefix at a
        time, at the text level (any tokenizer; slow: the vectorised path is checked against it)."""
        tok, eos = self.tokenizer, self.eos_token
        prefix = [int(x) for x in prefix]
        if any(x in tok.eos_tokens for x in prefix):
            return eos
        ref, t = self.reference_tokens(i), len(prefix)
        if t < len(ref) and prefix == ref[:t]:
            return ref[t]
        text = tok.decode(prefix, errors="surrogateescape")
        cont = recovery_text(text, self._lines[i])
        return int(tok.encode(cont)[0]) if cont else eos

    def _analyse(self, prompts: Any, chain: Any) -> _Analysis:
        """The oracle at every prefix of `chain`, with a one-entry cache (probs_along asks three times)."""
        p, c = _np(prompts), _np(chain).astype(np.int64, copy=False)
        hit = self._cache
        if hit is not None and hit[0].shape == p.shape and hit[1].shape == c.shape \
                and np.array_equal(hit[1], c) and np.array_equal(hit[0], p):
            return hit[2]
        idx = self.problem_index(p)
        out = self._analyse_fast(idx, c) if self.tokenizer.fast_oracle else self._analyse_slow(idx, c)
        self._cache = (p.copy(), c.copy(), out)
        return out

    def _analyse_fast(self, idx: np.ndarray, chain: np.ndarray) -> _Analysis:
        """Vectorised oracle for one-token-per-character tokenizers (same result as next_token)."""
        n, t_len = chain.shape
        eos, nl = self.eos_token, self.tokenizer.newline_token
        ar = np.arange(t_len)
        ref = self._ref[idx, :t_len].astype(np.int64)  # (N, T)
        match = chain == ref
        d = np.where(match.all(1), t_len, match.argmin(1))  # common prefix with R
        on = ar[None, :] <= d[:, None]  # prefix chain[:t] still on the path
        # Off the path: u = the current last line, i.e. chain[s_t : t] with s_t = 1 + last newline before t.
        is_nl = chain == nl
        last_nl = np.maximum.accumulate(np.where(is_nl, ar, -1), axis=1)
        s = np.zeros((n, t_len), np.int64)
        s[:, 1:] = last_nl[:, :-1] + 1
        k = ar[None, :] - s  # position of token t within its line == len(u) at prefix t
        line, llen = self._line[idx], self._line_len[idx][:, None]
        line_k = np.take_along_axis(line, np.minimum(k, line.shape[1] - 1), 1)  # F[k]
        bad = ~((k < llen) & (chain == line_k)) & ~is_nl  # token t breaks "u is a prefix of F"
        c = np.zeros((n, t_len + 1), np.int64)
        np.cumsum(bad, axis=1, out=c[:, 1:])
        u_bad = c[:, :t_len] - np.take_along_axis(c, s, 1)  # bad tokens in u
        off = np.where(u_bad > 0, nl, np.where(k < llen, line_k, eos))
        clean = np.where(on, np.where(ref < 0, eos, ref), off)
        is_eos = chain == eos
        first_eos = np.where(is_eos.any(1), is_eos.argmax(1), t_len)
        valid = ar[None, :] <= first_eos[:, None]
        clean = np.where(valid, clean, eos)
        # Past the first EOS: whether the finished chain (EOS included) left the path, whatever follows.
        error = np.where(valid, ~on, (first_eos + 1 > d)[:, None])
        return _Analysis(clean=clean, error=error, slip=self._slip_table[clean], valid=valid,
                         on_path_len=d, first_eos=first_eos)

    def _analyse_slow(self, idx: np.ndarray, chain: np.ndarray) -> _Analysis:
        n, t_len = chain.shape
        eos_set = np.array(self.tokenizer.eos_tokens)
        is_eos = np.isin(chain, eos_set)
        first_eos = np.where(is_eos.any(1), is_eos.argmax(1), t_len)
        clean = np.full((n, t_len), self.eos_token, np.int64)
        d = np.zeros(n, np.int64)
        for r in range(n):
            ref = self._ref[idx[r], :t_len].astype(np.int64)
            match = chain[r] == ref
            d[r] = t_len if match.all() else match.argmin()
            for t in range(min(first_eos[r] + 1, t_len)):
                clean[r, t] = self.next_token(idx[r], chain[r, :t])
        ar = np.arange(t_len)[None, :]
        valid = ar <= first_eos[:, None]
        error = np.where(valid, ar > d[:, None], (first_eos + 1 > d)[:, None])
        return _Analysis(clean=clean, error=error, slip=self._slip_table[clean],
                         valid=valid, on_path_len=d, first_eos=first_eos)

    def _analyse_obs(self, obs: Any) -> tuple[_Analysis, np.ndarray]:
        o = _np(obs)
        t = self.step_index(o)
        t_len = int(min(t.max(initial=0) + 1, self.H))
        return self._analyse(o[:, : self.P], o[:, self.P: self.P + t_len]), np.minimum(t, t_len - 1)

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
        is_eos = np.isin(c, np.array(self.tokenizer.eos_tokens))
        first = np.where(is_eos.any(1), is_eos.argmax(1), c.shape[1])
        return _like(np.arange(c.shape[1])[None, :] <= first[:, None], chain)

    # ----- answers and metrics -------------------------------------------------------
    def texts(self, chain: Any) -> list[str]:
        """The generated text of each chain, up to (not including) its first EOS."""
        c = _np(chain)
        is_eos = np.isin(c, np.array(self.tokenizer.eos_tokens))
        first = np.where(is_eos.any(1), is_eos.argmax(1), c.shape[1])
        return [self.tokenizer.decode(c[r, : first[r]]) for r in range(c.shape[0])]

    def answers(self, chain: Any) -> list[str | None]:
        """The extracted final answer of each chain (normalised), None when there is none."""
        return [extract_answer(x, strict=self.strict_answer) for x in self.texts(chain)]

    def metrics(self, prompts: Any, chain: Any) -> dict[str, Any]:
        """Per-episode clean metrics of complete chains (N, H), ignoring tokens after the first EOS.

        - ``final_exact``: the extracted final answer equals the gold (the env's reward);
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
        preds = self.answers(c)
        final = np.array([answers_match(pr, self.golds[i]) for pr, i in zip(preds, idx)], bool)
        out = {
            "full_exact": a.on_path_len >= self._ref_len[idx],
            "final_exact": final,
            "correct_prefix_len": a.on_path_len.astype(np.int64),
            "num_errors": ((c != a.clean) & a.valid).sum(1).astype(np.int64),
            "length": np.minimum(a.first_eos + 1, c.shape[1]).astype(np.int64),
            "finished": a.first_eos < c.shape[1],
        }
        return {k: _like(v, chain) for k, v in out.items()}
