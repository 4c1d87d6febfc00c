"""A problem's noisy expert as a teacher endpoint other trainers can call (``neg serve-expert``).

Distillation trainers (TRL, verl, OpenRLHF, NeMo-RL, ...) read a teacher's top-k
log-probabilities from an inference server speaking vLLM's OpenAI-compatible completions
API. This package serves a problem's noisy expert that way, on 127.0.0.1 by default, with a
query budget and a hard cap::

    neg serve-expert NoisyModAdd-v0 --env-kw m=5 --env-kw eta=0.2 --port 8000 --max-queries 100000

**Routes.** ``GET /health`` (200 ``{}``), ``GET /v1/models`` (the served name, the env id by
default, with its ``access`` and ``top_k``), ``GET /v1/budget`` (queries answered, the cap, what
is left; not vLLM's), ``POST /v1/completions``.

**The completions subset implemented** (any other field is refused with a 400 naming it):

- ``prompt``: token ids, one sequence (a list of integers) or several (a list of lists); no
  text (there is no tokenizer). A sequence is the task's prompt followed by the chain written
  so far (GSM-8K: the prompt's tokens without the task's left padding).
- ``model``: optional; another name than the served one is a 404.
- ``max_tokens`` (default 16, may be 0): the expert's sampled continuation, at most up to the
  horizon; it ends early at a stop token (``finish_reason`` ``"stop"``, else ``"length"``).
- ``n`` (1..16): continuations per sequence; ``seed``: draws from a generator of the request's
  own (reproducible); without it, from the server's seeded one.
- ``logprobs`` = k: for each generated token, its log-probability and the top-k
  (``choices[i].logprobs`` with ``tokens``, ``token_logprobs``, ``top_logprobs``, ``text_offset``;
  tokens are written ``"token_id:<id>"``, as vLLM's ``return_tokens_as_token_ids``).
- ``prompt_logprobs`` = k (vLLM's extension): for every position of the sequence the top-k of the
  expert at the prefix before it, and the given token's own entry (``{id: {"logprob", "rank",
  "decoded_token"}}``, ranks 1-based, ties in increasing id); ``null`` at the first position and at
  every position inside the task's prompt, where the expert is not asked.
- ``echo``: with ``logprobs``, the prompt's positions are scored too (the OpenAI convention).
- ``temperature``: 1 or left out (the expert answers from pi~ itself); ``stream``: false only.

What is revealed follows the served expert's access mode: ``full`` answers k up to
``--max-logprobs`` (20 by default, vLLM's) and the log-probability of any given token; ``topk``
answers k up to its ``top_k``, and a given token's log-probability only when it is among them
(else ``null``); ``sample`` answers continuations only (``logprobs`` refused). Log-probabilities
are floored at -9999 as vLLM does (a probability-0 token has no finite log). With
``logit_noise`` each answered prefix reads its own perturbed row, as serving replicas do.

**Counting.** One expert query per prefix answered: each scored position and each generated
token (TRL's scoring call, ``max_tokens=1``, costs its positions plus one). A request is checked
against the cap before anything is answered (its most expensive case: every continuation runs to
``max_tokens``); over the cap it is refused whole with 429 ``insufficient_quota``, and counting
and the cap share one lock with the expert's draws, so concurrent clients cannot overspend.

Errors are JSON, OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``: 400 a bad
field (``param`` names it), 404 an unknown route or model, 411/413 a missing or oversized body,
429 the budget.
"""

from __future__ import annotations

from noisy_expert_gym.serve.client import ExpertClient, ExpertServerError
from noisy_expert_gym.serve.http import ExpertHTTPServer, serve_in_thread
from noisy_expert_gym.serve.service import ExpertService, RequestError

__all__ = ["ExpertClient", "ExpertHTTPServer", "ExpertServerError", "ExpertService", "RequestError",
           "serve_in_thread"]
