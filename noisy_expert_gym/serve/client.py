"""A small Python client of the teacher endpoint (standard library only).

    from noisy_expert_gym.serve import ExpertClient
    client = ExpertClient("http://127.0.0.1:8000")
    top = client.score([prompt + chain], k=5)[0]     # TopK (t, 5) at the t chain positions
    out = client.complete(prompt=[prompt], max_tokens=8, logprobs=3)

Any other OpenAI-compatible client speaks to the endpoint too (the ``openai`` package's
``client.completions.create(model=..., prompt=[ids], max_tokens=..., logprobs=k,
extra_body={"prompt_logprobs": k})``; TRL's ``VLLMClient.get_sequence_logprobs``).
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from typing import Any

import numpy as np

from noisy_expert_gym.topk import TopK


class ExpertServerError(RuntimeError):
    """An error answer of the endpoint: its HTTP ``status`` and OpenAI-style ``error`` object."""

    def __init__(self, status: int, error: dict[str, Any]) -> None:
        super().__init__(f"{status}: {error.get('message', error)}")
        self.status, self.error = status, error

    @property
    def param(self) -> str | None:
        """The request field the error names (None when it is not about one field)."""
        return self.error.get("param")


class ExpertClient:
    """Talks to ``neg serve-expert`` (or any server speaking the same subset of vLLM's completions API).

    Args:
        base_url: e.g. ``http://127.0.0.1:8000``.
        timeout: seconds per request.
    """

    def __init__(self, base_url: str = "http://127.0.0.1:8000", timeout: float = 60.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base_url + path, data=data, method=method,
                                     headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as r:
                return json.loads(r.read())
        except urllib.error.HTTPError as e:
            raw = e.read()
            try:
                err = json.loads(raw)["error"]
            except (ValueError, KeyError, TypeError):
                err = {"message": raw.decode(errors="replace")}
            raise ExpertServerError(e.code, err) from None

    def health(self) -> bool:
        """Whether the server answers ``GET /health``."""
        try:
            self._call("GET", "/health")
            return True
        except (OSError, ExpertServerError):
            return False

    def models(self) -> list[str]:
        """The served model names (``GET /v1/models``)."""
        return [m["id"] for m in self._call("GET", "/v1/models")["data"]]

    def budget(self) -> dict[str, Any]:
        """``{"queries", "max_queries", "remaining"}`` (``GET /v1/budget``)."""
        return self._call("GET", "/v1/budget")

    def complete(self, **body: Any) -> dict[str, Any]:
        """``POST /v1/completions`` with these fields; the response as a dict.

        Raises:
            ExpertServerError: the server's error (400 a bad field, 404 another model, 429 the budget).
        """
        return self._call("POST", "/v1/completions", body)

    def score(self, sequences: list[list[int]], k: int) -> list[TopK]:
        """The expert's top-k at every chain position of each sequence (prompt + chain), no continuation.

        Returns:
            One :class:`TopK` ``(t, k)`` per sequence, t its chain tokens, log-probabilities as served
            (floored at -9999).
        """
        out = self.complete(prompt=[list(map(int, s)) for s in sequences], max_tokens=0, prompt_logprobs=k)
        res = []
        for choice in out["choices"]:
            pos = [e for e in choice["prompt_logprobs"] if e is not None]
            ids = np.zeros((len(pos), k), np.int64)
            lps = np.zeros((len(pos), k))
            for t, e in enumerate(pos):
                top = sorted(e.items(), key=lambda kv: kv[1]["rank"])[:k]
                ids[t] = [int(tok) for tok, _ in top]
                lps[t] = [v["logprob"] for _, v in top]
            res.append(TopK(ids, lps))
        return res

    def generate(self, sequences: list[list[int]], max_tokens: int, *, n: int = 1, seed: int | None = None
                 ) -> list[list[int]]:
        """Sampled continuations of each sequence by the expert (n per sequence, in order): token ids."""
        body: dict[str, Any] = {"prompt": [list(map(int, s)) for s in sequences], "max_tokens": max_tokens, "n": n}
        if seed is not None:
            body["seed"] = seed
        return [c["token_ids"] for c in self.complete(**body)["choices"]]


__all__ = ["ExpertClient", "ExpertServerError"]
