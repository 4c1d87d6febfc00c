"""Today's eager policy, frozen: the baseline that :mod:`agents.perf` times the new one against.

A verbatim copy of ``agents/policy.py`` before the speed work (issue 12): SDPA
attention, rotary embeddings by chunk/multiply/cat, the head and the last block
run at every position, a cached rollout step through the modules. It shares
the parameter names of :class:`agents.policy.TransformerPolicy`, so
``BaselinePolicy(cfg).load_state_dict(policy.state_dict())`` gives the same
function; benchmarks only, nothing trains with it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from agents.policy import PolicyConfig, StepFn

__all__ = ["BaselinePolicy"]


class LayerKVCache:
    """Key/value buffers of one attention layer for one rollout.

    Preallocated to the rollout's full length ``L`` as ``(B, nh, L, hd)`` and
    filled in place: unlike ``torch.cat`` per step this copies each key once
    (not O(L^2) in total) and allocates once. At L = 62 (m = 31) both measured
    the same on CPU (the cache is tiny next to the matmuls); in-place wins as
    horizons grow. Buffers are created on first use with the dtype k/v are
    computed in, i.e. bf16 under the caller's autocast.
    """

    def __init__(self, length: int) -> None:
        self.length = length
        self.k: torch.Tensor | None = None
        self.v: torch.Tensor | None = None

    def update(
        self, k: torch.Tensor, v: torch.Tensor, start: int
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store ``k, v`` (B, nh, T, hd) at ``start``; return all keys/values so far."""
        if self.k is None:
            B, nh, _, hd = k.shape
            self.k = k.new_empty((B, nh, self.length, hd))
            self.v = v.new_empty((B, nh, self.length, hd))
        end = start + k.shape[2]
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]  # (B, nh, end, hd)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention over ``F.scaled_dot_product_attention``."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.n_head = cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.dropout = cfg.dropout

    def forward(
        self, x: torch.Tensor, kv: LayerKVCache | None = None, start: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=2)  # 3 x (B, T, C)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        # each (B, nh, T, hd)
        if rope is not None:  # rotate before caching: cached keys keep their own positions
            q, k = apply_rope(q, *rope), apply_rope(k, *rope)
        if kv is None:
            causal = True
        else:
            # Write this chunk into the cache, attend over everything so far. Only
            # two cases occur: prefill (start = 0, causal over the prompt) and a
            # one-token step (the single query sees all keys: no mask needed).
            # SDPA's is_causal aligns the mask top-left, which would be wrong for
            # T > 1 at start > 0, hence the invariant.
            assert start == 0 or T == 1, "cached attention supports prefill or 1-token steps"
            k, v = kv.update(k, v, start)  # (B, nh, start+T, hd)
            causal = T > 1
        y = F.scaled_dot_product_attention(
            q, k, v, dropout_p=self.dropout if self.training else 0.0, is_causal=causal
        )  # (B, nh, T, hd)
        y = y.transpose(1, 2).reshape(B, T, C)  # (B, T, C)
        return self.resid_dropout(self.c_proj(y))


def rope_tables(length: int, head_dim: int, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, head_dim / 2) of rotary position embeddings."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hd/2,)
    ang = torch.arange(length, dtype=torch.float32)[:, None] * inv[None]  # (L, hd/2)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + hd/2) of x (B, nh, T, hd) by position-dependent angles."""
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class MLP(nn.Module):
    """Position-wise GELU feed-forward, 4x expansion."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.c_fc = nn.Linear(cfg.n_embd, 4 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(4 * cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.dropout = nn.Dropout(cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(F.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(
        self, x: torch.Tensor, kv: LayerKVCache | None = None, start: int = 0,
        rope: tuple[torch.Tensor, torch.Tensor] | None = None,
    ) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), kv, start, rope)
        return x + self.mlp(self.ln_2(x))


class BaselinePolicy(nn.Module):
    """Causal transformer mapping token prefixes to next-action logits.

    Args:
        cfg: the model shape (see :func:`make_config`).
    """

    def __init__(self, cfg: PolicyConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.wte = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        if cfg.pos == "learned":
            self.wpe = nn.Embedding(cfg.block_size, cfg.n_embd)
        else:
            cos, sin = rope_tables(cfg.block_size, cfg.n_embd // cfg.n_head)
            self.register_buffer("rope_cos", cos, persistent=False)
            self.register_buffer("rope_sin", sin, persistent=False)
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layer))
        self.ln_f = nn.LayerNorm(cfg.n_embd, bias=cfg.bias)
        # Head over actions only: non-action tokens (separators, operands) are never
        # emitted, so no probability mass is wasted on them.
        self.head = nn.Linear(cfg.n_embd, cfg.num_actions, bias=False)
        self.apply(self._init_weights)
        # GPT-2: scale residual projections by 1/sqrt(2 * n_layer) so the residual
        # stream's variance does not grow with depth at init.
        for name, p in self.named_parameters():
            if name.endswith("c_proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layer))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_params(self) -> int:
        """Total number of parameters (embeddings included)."""
        return sum(p.numel() for p in self.parameters())

    def _check_length(self, length: int, what: str) -> None:
        if length > self.cfg.block_size:
            raise ValueError(
                f"{what} needs a sequence of length {length} but block_size is "
                f"{self.cfg.block_size}; build the policy with block_size >= {length}"
            )

    def _trunk(
        self, tokens: torch.Tensor, kvs: list[LayerKVCache] | None = None, start: int = 0
    ) -> torch.Tensor:
        # Embeddings + blocks + final LN: hidden states (B, T, C), no head.
        T = tokens.shape[1]
        rope = None
        if self.cfg.pos == "learned":
            pos = torch.arange(start, start + T, device=tokens.device)  # (T,)
            x = self.drop(self.wte(tokens) + self.wpe(pos))  # (B, T, C)
        else:
            x = self.drop(self.wte(tokens))
            rope = (self.rope_cos[start : start + T], self.rope_sin[start : start + T])  # (T, hd/2)
        for i, block in enumerate(self.blocks):
            x = block(x, None if kvs is None else kvs[i], start, rope)
        return self.ln_f(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """Full causal pass.

        Args:
            tokens: ``(B, T)`` long token ids, ``T <= block_size``.

        Returns:
            ``(B, T, A)`` logits; row ``t`` scores the action following ``tokens[:, :t+1]``.
        """
        self._check_length(tokens.shape[1], "forward")
        return self.head(self._trunk(tokens))  # (B, T, A)

    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix of ``chain``, in one teacher-forced pass.

        The input is ``cat(prompts, chain[:, :-1])`` and the output rows are
        positions ``P-1 .. P+H-2``: row ``t`` predicts ``chain[:, t]`` from
        ``prompts`` and ``chain[:, :t]``. Goes through ``self(...)``, so a model
        compiled with :func:`agents.device.maybe_compile` uses the compiled graph.

        Args:
            prompts: ``(B, P)`` long, ``P >= 1``.
            chain: ``(B, H)`` long action tokens.

        Returns:
            ``(B, H, A)`` logits.
        """
        B, P = prompts.shape
        H = chain.shape[1]
        if P < 1:
            raise ValueError("chain_logits needs a non-empty prompt (P >= 1)")
        if H == 0:
            return prompts.new_empty((B, 0, self.cfg.num_actions), dtype=self.head.weight.dtype)
        self._check_length(P + H - 1, "chain_logits")
        inp = torch.cat([prompts, chain[:, :-1].to(prompts.dtype)], dim=1)  # (B, P+H-1)
        return self(inp)[:, P - 1 :]  # (B, H, A)

    def _next(
        self, logits: torch.Tensor, temperature: float, generator: torch.Generator | None
    ) -> torch.Tensor:
        # logits (B, A) -> tokens (B,). Softmax in fp32: under autocast logits are
        # bf16, whose coarse probabilities would bias sampling.
        if temperature == 0.0:
            return logits.argmax(-1)
        probs = F.softmax(logits.float() / temperature, dim=-1)  # (B, A)
        return torch.multinomial(probs, 1, generator=generator).squeeze(-1)

    def generate(
        self,
        prompts: torch.Tensor,
        horizon: int,
        temperature: float = 0.0,
        generator: torch.Generator | None = None,
        use_cache: bool = True,
        step_fn: StepFn | None = None,
    ) -> torch.Tensor:
        """Roll the policy out for ``horizon`` actions, without gradient.

        Runs in eval mode (no dropout) and restores the train/eval mode it found.
        Runs under whatever autocast the caller has active. Both paths draw the
        same random numbers in the same order, so with equal generator states they
        produce the same chains (up to floating-point ties).

        Args:
            prompts: ``(B, P)`` long, ``P >= 1``.
            horizon: number of actions ``H`` to generate; needs ``P + H - 1 <= block_size``.
            temperature: 0 for greedy argmax, > 0 to sample ``softmax(logits / T)``.
            generator: ``torch.Generator`` on the model's device, for reproducible sampling.
            use_cache: prefill the prompt once, then one incremental step per token with
                a per-layer KV cache; ``False`` recomputes the whole prefix every step
                (the baseline for benchmarks).
            step_fn: optional roll-in hook ``step_fn(t, chain, tokens) -> tokens``
                called at every step ``t`` with the ``(B, H)`` chain (columns ``< t``
                filled) and the policy's ``(B,)`` choice; the returned ``(B,)`` tokens
                are taken and fed back instead (e.g. DAgger's expert/student mixture).

        Returns:
            ``(B, H)`` long chain of actions.
        """
        if not temperature >= 0.0:
            raise ValueError(f"`temperature` must be >= 0 (0 = greedy), got {temperature}")
        if horizon < 0:
            raise ValueError(f"`horizon` must be >= 0, got {horizon}")
        B, P = prompts.shape
        if P < 1:
            raise ValueError("generate needs a non-empty prompt (P >= 1)")
        # The last action is never fed back, so the longest input is P + H - 1.
        L = P + max(horizon, 1) - 1
        self._check_length(L, "generate")
        chain = prompts.new_empty((B, horizon), dtype=torch.long)
        if horizon == 0:
            return chain
        was_training = self.training
        self.eval()
        try:
            with torch.no_grad():
                if use_cache:
                    self._generate_cached(prompts, chain, L, temperature, generator, step_fn)
                else:
                    self._generate_uncached(prompts, chain, temperature, generator, step_fn)
        finally:
            self.train(was_training)
        return chain

    def _generate_uncached(
        self,
        prompts: torch.Tensor,
        chain: torch.Tensor,
        temperature: float,
        generator: torch.Generator | None,
        step_fn: StepFn | None,
    ) -> None:
        B, P = prompts.shape
        seq = prompts.new_empty((B, P + chain.shape[1] - 1), dtype=torch.long)  # (B, L)
        seq[:, :P] = prompts
        for t in range(chain.shape[1]):
            h = self._trunk(seq[:, : P + t])[:, -1]  # (B, C): head on the last row only
            tok = self._next(self.head(h), temperature, generator)  # (B,)
            chain[:, t] = tok if step_fn is None else step_fn(t, chain, tok)
            if t + 1 < chain.shape[1]:
                seq[:, P + t] = chain[:, t]

    def _generate_cached(
        self,
        prompts: torch.Tensor,
        chain: torch.Tensor,
        L: int,
        temperature: float,
        generator: torch.Generator | None,
        step_fn: StepFn | None,
    ) -> None:
        P = prompts.shape[1]
        kvs = [LayerKVCache(L) for _ in self.blocks]
        h = self._trunk(prompts, kvs, 0)[:, -1]  # prefill: (B, C)
        for t in range(chain.shape[1]):
            if t > 0:  # feed back the previous action: one position through the cache
                h = self._trunk(chain[:, t - 1 : t], kvs, P + t - 1)[:, -1]  # (B, C)
            tok = self._next(self.head(h), temperature, generator)  # (B,)
            chain[:, t] = tok if step_fn is None else step_fn(t, chain, tok)
