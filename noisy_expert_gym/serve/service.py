"""What the teacher endpoint answers: OpenAI-style completions requests over a problem's noisy expert.

:class:`ExpertService` is the HTTP-free part of ``neg serve-expert`` (:mod:`noisy_expert_gym.serve.http`
puts it behind a socket): it validates a request, checks the budget, asks the expert and builds the
response in the shape vLLM's OpenAI-compatible ``/v1/completions`` gives, for the subset documented in
:mod:`noisy_expert_gym.serve`. Every answer is one query of the expert per prefix answered (a scored
position or a generated token), counted by the service under a lock together with the hard cap, so
concurrent clients can neither overspend nor double-count.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym.sampling import sample_from
from noisy_expert_gym.topk import rank_of, topk_of

#: The request fields the endpoint reads; any other is refused (a field accepted and ignored would lie).
FIELDS = ("model", "prompt", "max_tokens", "logprobs", "prompt_logprobs", "echo", "temperature", "n", "seed",
          "stream")
#: vLLM floors log-probabilities at this value in its JSON (a probability-0 token has no finite log).
MIN_LOGPROB = -9999.0
#: OpenAI's default ``max_tokens`` for completions.
DEFAULT_MAX_TOKENS = 16


class RequestError(ValueError):
    """A request the endpoint refuses: the HTTP status, the field at fault and the OpenAI error type."""

    def __init__(self, message: str, param: str | None = None, status: int = 400,
                 kind: str = "invalid_request_error") -> None:
        super().__init__(message)
        self.param, self.status, self.kind = param, status, kind

    def body(self) -> dict[str, Any]:
        """The JSON error body, OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""
        return {"error": {"message": str(self), "type": self.kind, "param": self.param, "code": self.status}}


@dataclass(frozen=True)
class Request:
    """A validated completions request."""

    sequences: list[list[int]]
    max_tokens: int
    logprobs: int | None
    prompt_logprobs: int | None
    echo: bool
    n: int
    seed: int | None


def _int(body: Mapping[str, Any], name: str, default: Any, lo: int, hi: int | None) -> Any:
    v = body.get(name, default)
    if v is None:
        return default
    if isinstance(v, bool) or not isinstance(v, int) or v < lo or (hi is not None and v > hi):
        rng = f">= {lo}" if hi is None else f"in [{lo}, {hi}]"
        raise RequestError(f"`{name}` must be an integer {rng}, got {v!r}", name)
    return v


class ExpertService:
    """A problem's noisy expert answering completions requests, with a query budget.

    Args:
        problem: the problem (:func:`noisy_expert_gym.make_problem`) whose noisy expert is served;
            its access mode decides what the endpoint reveals: ``full`` (top-k up to
            ``max_logprobs`` and the log-probability of any given token), ``topk`` (the expert's
            ``top_k`` at most, and a given token's log-probability only when it is among them),
            ``sample`` (sampled continuations only; ``logprobs`` / ``prompt_logprobs`` refused).
        model: the served model name (``/v1/models``, the ``model`` field); default the env id.
        max_queries: the hard cap on prefixes answered over the service's life (None: no cap).
        max_logprobs: the largest ``logprobs`` / ``prompt_logprobs`` k (vLLM's default is 20).
        seed: seeds the expert's draws (samples and per-query logit noise); a request's own ``seed``
            draws from a generator of its own instead.
        max_sequences: the most sequences x ``n`` one request may ask for.
    """

    def __init__(self, problem: Any, *, model: str | None = None, max_queries: int | None = None,
                 max_logprobs: int = 20, seed: int = 0, max_sequences: int = 1024) -> None:
        if max_queries is not None and (isinstance(max_queries, bool) or not isinstance(max_queries, int)
                                        or max_queries < 0):
            raise ValueError(f"`max_queries` must be an integer >= 0 or None, got {max_queries!r}")
        if isinstance(max_logprobs, bool) or not isinstance(max_logprobs, int) or max_logprobs < 1:
            raise ValueError(f"`max_logprobs` must be an integer >= 1, got {max_logprobs!r}")
        self.problem = problem
        self.task = problem.task
        self.rng = np.random.default_rng(seed)
        self.expert = problem.expert.with_rng(self.rng)
        if not hasattr(self.expert, "answer_rows"):
            raise ValueError(f"the expert {self.expert!r} cannot be served: it has no `answer_rows` (serve a problem "
                             "whose noisy expert is an Expert, e.g. the reference teacher)")
        self.model = model or problem.env_id
        self.max_queries = max_queries
        self.max_logprobs = int(max_logprobs)
        self.max_sequences = int(max_sequences)
        self.queries = 0
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._stops = set(getattr(self.task, "eos_tokens", ()) or ())

    # ----- what the service is -------------------------------------------------------------------
    @property
    def access(self) -> str:
        return str(getattr(self.expert, "access", "full"))

    @property
    def top_k_cap(self) -> int | None:
        """The largest k a request may ask for: the expert's ``top_k`` (access ``topk``) or ``max_logprobs``."""
        if self.access == "sample":
            return None
        k = min(self.max_logprobs, self.task.num_actions)
        return k if self.access == "full" else min(k, int(self.expert.top_k))

    def models(self) -> dict[str, Any]:
        """``GET /v1/models``."""
        return {"object": "list", "data": [{
            "id": self.model, "object": "model", "created": 0, "owned_by": "noisy-expert-gym",
            "max_model_len": int(self.task.prompt_len + self.task.horizon),
            "access": self.access, "top_k": getattr(self.expert, "top_k", None)}]}

    def budget(self) -> dict[str, Any]:
        """``GET /v1/budget``: queries answered, the cap and what is left."""
        with self._lock:
            left = None if self.max_queries is None else self.max_queries - self.queries
            return {"queries": self.queries, "max_queries": self.max_queries, "remaining": left}

    # ----- requests --------------------------------------------------------------------------------
    def parse(self, body: Any) -> Request:
        """Validate a request body (a decoded JSON object), naming the field at fault.

        Raises:
            RequestError: 400 for a bad field, 404 for another model's name.
        """
        if not isinstance(body, dict):
            raise RequestError("the request body must be a JSON object", None)
        unknown = sorted(set(body) - set(FIELDS))
        if unknown:
            raise RequestError(f"unsupported field `{unknown[0]}`; this endpoint implements {', '.join(FIELDS)} "
                               "(see `neg serve-expert --help`)", unknown[0])
        model = body.get("model")
        if model is not None and model != self.model:
            raise RequestError(f"The model `{model}` does not exist; this server serves `{self.model}`", "model",
                               404, "NotFoundError")
        if body.get("stream", False) not in (False, None):
            raise RequestError("`stream` is not supported: send stream=false (or leave it out)", "stream")
        temperature = body.get("temperature")
        if temperature is not None and (isinstance(temperature, bool) or temperature != 1):
            raise RequestError(f"`temperature` must be 1 (or left out): the expert answers from pi~ itself, got "
                               f"{temperature!r}", "temperature")
        echo = body.get("echo", False)
        if not isinstance(echo, bool):
            raise RequestError(f"`echo` must be true or false, got {echo!r}", "echo")
        req = Request(self._sequences(body.get("prompt")), _int(body, "max_tokens", DEFAULT_MAX_TOKENS, 0, None),
                      _int(body, "logprobs", None, 0, None), _int(body, "prompt_logprobs", None, 0, None),
                      echo, _int(body, "n", 1, 1, 16), _int(body, "seed", None, 0, 2**63 - 1))
        for name in ("logprobs", "prompt_logprobs"):
            k = getattr(req, name)
            if k is None:
                continue
            if self.access == "sample":
                raise RequestError(f"`{name}` is not available: this expert has access='sample' and answers with "
                                   "sampled tokens only (max_tokens)", name)
            if k > self.top_k_cap:
                why = (f"the expert has access='topk' with top_k={self.expert.top_k}" if self.access == "topk"
                       else f"--max-logprobs is {self.max_logprobs}")
                raise RequestError(f"`{name}` must be at most {self.top_k_cap} ({why}), got {k}", name)
        if len(req.sequences) * req.n > self.max_sequences:
            raise RequestError(f"at most {self.max_sequences} sequences x n per request, got "
                               f"{len(req.sequences)} x {req.n}", "prompt")
        return req

    def _sequences(self, prompt: Any) -> list[list[int]]:
        if isinstance(prompt, str) or (isinstance(prompt, list) and prompt and isinstance(prompt[0], str)):
            raise RequestError("`prompt` must be token ids (a list of integers, or a list of such lists): this "
                               "endpoint has no tokenizer", "prompt")
        if not isinstance(prompt, list) or not prompt:
            raise RequestError("`prompt` must be a non-empty list of token ids or of lists of token ids", "prompt")
        seqs = prompt if isinstance(prompt[0], list) else [prompt]
        for i, s in enumerate(seqs):
            if not isinstance(s, list) or not s or any(isinstance(t, bool) or not isinstance(t, int) for t in s):
                raise RequestError(f"`prompt[{i}]` must be a non-empty list of integer token ids", "prompt")
        return seqs

    def split(self, ids: list[int], i: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """A sequence of token ids as (the task's prompt ``(P,)``, the chain written after it ``(t,)``).

        The chain tasks' prompts have a fixed length; GSM-8K's are found by the problem they are
        (left-padded as the task pads them).

        Raises:
            RequestError: a sequence that does not start with one of the task's prompts, a chain longer
                than the horizon, or tokens the task does not have.
        """
        task, a = self.task, np.asarray(ids, dtype=np.int64)
        plen = task.prompt_len
        if hasattr(task, "problem_index"):  # GSM-8K: find the problem whose prompt starts the sequence
            plen = self._gsm8k_prompt_len(a)
            if plen is None:
                raise RequestError(f"`prompt[{i}]` does not start with one of the task's prompts (the teacher only "
                                   "answers the problems it was built with, tokenized as the task does)", "prompt")
            prompt = np.concatenate([np.full(task.prompt_len - plen, task.pad_token, np.int64), a[:plen]])
        elif len(a) < plen:
            raise RequestError(f"`prompt[{i}]` has {len(a)} tokens; a sequence starts with the task's prompt of "
                               f"{plen} tokens (then the chain written so far)", "prompt")
        else:
            prompt = a[:plen]
        chain = a[plen:]
        if len(chain) > task.horizon:
            raise RequestError(f"`prompt[{i}]` holds {len(chain)} chain tokens after the prompt; the horizon is "
                               f"{task.horizon}", "prompt")
        if len(chain) and (chain.min() < 0 or chain.max() >= task.num_actions):
            raise RequestError(f"`prompt[{i}]`: chain tokens must lie in [0, {task.num_actions - 1}]", "prompt")
        early = [j for j, t in enumerate(chain[:-1].tolist()) if t in self._stops]
        if early:
            raise RequestError(f"`prompt[{i}]` has a stop token at chain position {early[0]}, before its end: the "
                               "episode is over there", "prompt")
        try:
            task.validate_obs(task.observe(prompt[None], chain[None, :0]))
        except ValueError as e:
            raise RequestError(f"`prompt[{i}]`: {e}", "prompt") from None
        return prompt, chain

    def _gsm8k_prompt_len(self, a: np.ndarray) -> int | None:
        task = self.task
        sep = getattr(task, "sep_token", None)
        cands = ([int(np.flatnonzero(a == sep)[0]) + 1] if sep is not None and (a == sep).any()
                 else range(1, min(len(a), task.prompt_len) + 1))
        for plen in cands:
            if plen > task.prompt_len:
                continue
            padded = np.concatenate([np.full(task.prompt_len - plen, task.pad_token, np.int64), a[:plen]])
            try:
                task.problem_index(padded[None])
            except ValueError:
                continue
            return plen
        return None

    def cost(self, req: Request, parts: list[tuple[np.ndarray, np.ndarray]]) -> int:
        """The most queries `req` can spend: its scored positions and, per choice, the tokens it may generate."""
        total = 0
        for _, chain in parts:
            scored = len(chain) if (req.prompt_logprobs is not None or (req.echo and req.logprobs is not None)) else 0
            total += scored + req.n * self._gen_len(req, chain)
        return total

    def _gen_len(self, req: Request, chain: np.ndarray) -> int:
        if len(chain) and int(chain[-1]) in self._stops:
            return 0
        return min(req.max_tokens, self.task.horizon - len(chain))

    def complete(self, body: Any) -> dict[str, Any]:
        """Answer a ``POST /v1/completions`` body.

        Raises:
            RequestError: a bad request (400, 404) or one the budget cannot pay for (429; nothing is
                answered or counted then).
        """
        req = self.parse(body)
        parts = [self.split(s, i) for i, s in enumerate(req.sequences)]
        need = self.cost(req, parts)
        with self._lock:  # the budget check, the expert's draws and the count are one step
            if self.max_queries is not None and self.queries + need > self.max_queries:
                raise RequestError(
                    f"query budget exhausted: this request may cost {need} expert queries (one per prefix answered) "
                    f"and {self.max_queries - self.queries} of the server's {self.max_queries} are left",
                    None, 429, "insufficient_quota")
            gen = self.rng if req.seed is None else np.random.default_rng(req.seed)
            before = self.expert.num_queries
            choices, prompt_tokens, completion_tokens = [], 0, 0
            for i, (prompt, chain) in enumerate(parts):
                ids = req.sequences[i]
                plen = len(ids) - len(chain)
                scored = self._score(prompt, chain, plen, req, gen)
                for j in range(req.n):
                    choices.append(self._choice(i * req.n + j, ids, prompt, chain, plen, scored, req, gen))
                    completion_tokens += len(choices[-1]["token_ids"])
                prompt_tokens += len(ids)
            spent = self.expert.num_queries - before
            self.queries += spent
        return {"id": f"cmpl-{next(self._ids)}", "object": "text_completion", "created": int(time.time()),
                "model": self.model, "choices": choices,
                "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion_tokens,
                          "total_tokens": prompt_tokens + completion_tokens, "expert_queries": spent}}

    # ----- answering -------------------------------------------------------------------------------
    def _rows(self, prompt: np.ndarray, chain: np.ndarray, lengths: range, gen: Any) -> np.ndarray:
        """The answer rows at prefixes ``chain[:j]``, j in `lengths`: one query each."""
        obs = np.concatenate([self.task.observe(prompt[None], chain[None, :j]) for j in lengths])
        return np.asarray(self.expert.answer_rows(obs, gen), dtype=np.float64)

    def _entries(self, row: np.ndarray, k: int, token: int | None) -> dict[str, dict[str, Any]]:
        """vLLM's prompt_logprobs entry at one position: the top-k and (what the access allows) the given token."""
        top = topk_of(row, k) if k else None
        out: dict[str, dict[str, Any]] = {}
        if top is not None:
            for r, (t, lp) in enumerate(zip(top.ids.tolist(), top.logprobs.tolist(), strict=True)):
                out[str(t)] = {"logprob": _finite(lp), "rank": r + 1, "decoded_token": self._decode(t)}
        if token is not None and str(token) not in out and self.access == "full":
            out[str(token)] = {"logprob": _finite(math.log(row[token]) if row[token] > 0 else -math.inf),
                               "rank": int(rank_of(row, np.int64(token))), "decoded_token": self._decode(token)}
        return out

    def _score(self, prompt: np.ndarray, chain: np.ndarray, plen: int, req: Request, gen: Any
               ) -> list[dict[str, Any] | None] | None:
        """Entries at every position of the sequence (None inside the task's prompt), or None if not asked."""
        k = req.prompt_logprobs if req.prompt_logprobs is not None else (req.logprobs if req.echo else None)
        if k is None:
            return None
        entries: list[dict[str, Any] | None] = [None] * plen
        if len(chain):
            rows = self._rows(prompt, chain, range(len(chain)), gen)
            entries += [self._entries(rows[j], k, int(chain[j])) for j in range(len(chain))]
        return entries

    def _choice(self, index: int, ids: list[int], prompt: np.ndarray, chain: np.ndarray, plen: int,
                scored: list[dict[str, Any] | None] | None, req: Request, gen: Any) -> dict[str, Any]:
        new: list[int] = []
        steps: list[dict[str, Any]] = []
        written = chain
        finish = "length"
        for _ in range(self._gen_len(req, chain)):
            row = self._rows(prompt, written, range(len(written), len(written) + 1), gen)[0]
            tok = int(sample_from(row[None], gen)[0])
            new.append(tok)
            if req.logprobs is not None:
                steps.append(self._entries(row, req.logprobs, tok))
            written = np.append(written, tok)
            if tok in self._stops:
                finish = "stop"
                break
        if len(chain) and int(chain[-1]) in self._stops:
            finish = "stop"
        choice: dict[str, Any] = {"index": index, "text": self._text(([*ids] if req.echo else []) + new),
                                  "logprobs": None, "finish_reason": finish, "stop_reason": None,
                                  "token_ids": new, "prompt_token_ids": list(ids),
                                  "prompt_logprobs": scored if req.prompt_logprobs is not None else None}
        if req.logprobs is not None:
            tokens = ([*ids] if req.echo else []) + new
            per = (scored if req.echo else []) + steps
            choice["logprobs"] = {
                "tokens": [f"token_id:{t}" for t in tokens],
                "token_logprobs": [None if e is None else e.get(str(t), {}).get("logprob")
                                   for t, e in zip(tokens, per, strict=True)],
                "top_logprobs": [None if e is None else {f"token_id:{t}": v["logprob"] for t, v in
                                                         sorted(e.items(), key=lambda kv: kv[1]["rank"])}
                                 for e in per],
                "text_offset": list(range(len(tokens))),
            }
        return choice

    def _decode(self, token: int) -> str:
        tok = getattr(self.task, "tokenizer", None)
        if tok is not None and hasattr(tok, "decode"):
            return tok.decode([token])
        return str(token)

    def _text(self, tokens: list[int]) -> str:
        tok = getattr(self.task, "tokenizer", None)
        if tok is not None and hasattr(tok, "decode"):
            return tok.decode([t for t in tokens if t < self.task.num_actions])
        return " ".join(str(t) for t in tokens)


def _finite(lp: float) -> float:
    return max(float(lp), MIN_LOGPROB)


__all__ = ["DEFAULT_MAX_TOKENS", "FIELDS", "MIN_LOGPROB", "ExpertService", "Request", "RequestError"]
