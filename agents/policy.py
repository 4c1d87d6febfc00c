"""A small causal transformer policy in the nanoGPT shape, with KV-cached generation.

Tokens are the task's input vocabulary; actions are the first ``num_actions``
token ids (action ``a`` *is* token ``a``), so a generated action is fed back
as the next input token unchanged. The head only scores actions.

Layout: ``PolicyConfig`` and presets, rotary helpers, then the blocks
(attention, MLP, block), then ``TransformerPolicy`` with three entry points:

* ``forward(tokens, first=0)``: causal pass, logits at positions ``>= first``;
* ``chain_logits(prompts, chain)``: one teacher-forced pass giving the logits
  at every prefix of a chain: what the trainers' losses consume;
* ``generate(prompts, horizon)``: greedy or sampled rollouts, KV-cached.

Speed notes (measured with ``python benchmarks/train_speed.py`` on a 2-core AVX2 CPU):
the small students are bound by small kernels (K = 64 matmuls, 16-wide heads,
the cached step's tiny batched matmuls) and per-op overhead, so the code skips
work and ops: the last block runs its query projection, output projection and
MLP only where logits are wanted (``first``: the prompt positions only supply
keys and values), the head likewise; rotary embeddings rotate q and k together
with one complex multiply; a cached rollout step is a fixed list of functional
ops over preallocated caches.
"""

from __future__ import annotations

import dataclasses
import difflib
import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

__all__ = [
    "PRESETS",
    "LayerKVCache",
    "PolicyConfig",
    "StepFn",
    "TransformerPolicy",
    "apply_rope",
    "make_config",
    "rope_pair_order",
    "rope_tables",
    "rotate_pairs",
]


@dataclass
class PolicyConfig:
    """Shape of a :class:`TransformerPolicy`."""

    vocab_size: int
    """Number of input token ids (prompt and chain tokens)."""
    num_actions: int
    """Size of the output head; actions are token ids ``0 .. num_actions - 1``."""
    block_size: int
    """Maximum sequence length the model accepts (prompt + chain - 1 for a rollout)."""
    n_layer: int = 2
    """Number of transformer blocks."""
    n_head: int = 4
    """Attention heads per block; must divide ``n_embd``."""
    n_embd: int = 64
    """Residual stream width."""
    dropout: float = 0.0
    """Dropout on embeddings, attention weights and residual branches (off in generate)."""
    bias: bool = True
    """Biases in Linear and LayerNorm layers."""
    tie_embeddings: bool = False
    """Tie the output head to the token embedding: action a's logit is h . wte[a] (nanoGPT and
    the paper's authors' modadd student, plau666/NAIL ``model.py``; with untied heads, the
    default here, the head is its own (num_actions, n_embd) matrix)."""
    pos: str = "learned"
    """Position encoding: `learned` absolute embeddings (nanoGPT, the paper's) or `rope`
    (rotary, relative: a rule learned at one chain position holds at every position)."""

    def __post_init__(self) -> None:
        for name in ("vocab_size", "num_actions", "block_size", "n_layer", "n_head", "n_embd"):
            if getattr(self, name) < 1:
                raise ValueError(f"`{name}` must be >= 1, got {getattr(self, name)}")
        if self.num_actions > self.vocab_size:
            raise ValueError(
                f"`num_actions` ({self.num_actions}) must be <= `vocab_size` "
                f"({self.vocab_size}): actions are the first num_actions token ids"
            )
        if self.n_embd % self.n_head:
            raise ValueError(
                f"`n_embd` ({self.n_embd}) must be divisible by `n_head` ({self.n_head})"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"`dropout` must be in [0, 1), got {self.dropout}")
        if self.pos not in ("learned", "rope"):
            raise ValueError(f"`pos` must be `learned` or `rope`, got {self.pos!r}")
        if self.pos == "rope" and (self.n_embd // self.n_head) % 2:
            raise ValueError("`pos='rope'` needs an even head size n_embd / n_head")


PRESETS: dict[str, dict[str, int | str]] = {
    # The paper's modadd student: one layer, 8 heads, width 512, learned positions.
    "paper": {"n_layer": 1, "n_head": 8, "n_embd": 512},
    # Small and fast on a 2-core CPU (the prototype's scale, docs/design.md §4.5).
    "cpu": {"n_layer": 2, "n_head": 4, "n_embd": 64},
    # The CPU size with rotary positions.
    "cpu-rope": {"n_layer": 2, "n_head": 4, "n_embd": 64, "pos": "rope"},
    # Unit tests.
    "tiny": {"n_layer": 1, "n_head": 2, "n_embd": 32},
}
"""Named model sizes; pass the name to :func:`make_config`."""


def make_config(
    preset: str, vocab_size: int, num_actions: int, block_size: int, **overrides: object
) -> PolicyConfig:
    """Build a :class:`PolicyConfig` from a named preset.

    Args:
        preset: a key of :data:`PRESETS` (``"paper"``, ``"cpu"``, ``"tiny"``).
        vocab_size: number of input token ids.
        num_actions: size of the action head.
        block_size: maximum sequence length.
        **overrides: any other :class:`PolicyConfig` field, e.g. ``dropout=0.1``.

    Returns:
        The config.

    Raises:
        ValueError: on an unknown preset (with a suggestion) or override name.
    """
    if preset not in PRESETS:
        close = difflib.get_close_matches(preset, PRESETS, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown preset {preset!r}; choose from {sorted(PRESETS)}.{hint}")
    fields = {f.name for f in dataclasses.fields(PolicyConfig)}
    unknown = sorted(set(overrides) - fields)
    if unknown:
        raise ValueError(f"unknown PolicyConfig field(s) {unknown}; valid: {sorted(fields)}")
    kwargs = {**PRESETS[preset], **overrides}
    return PolicyConfig(
        vocab_size=vocab_size, num_actions=num_actions, block_size=block_size, **kwargs
    )


StepFn = Callable[[int, torch.Tensor, torch.Tensor], torch.Tensor]
"""Roll-in hook for :meth:`TransformerPolicy.generate`: ``(t, chain, tokens) -> tokens``."""


# --------------------------------------------------------------------------- rotary positions
def rope_tables(length: int, head_dim: int, base: float = 10_000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos/sin tables (length, head_dim / 2) of rotary position embeddings."""
    inv = base ** (-torch.arange(0, head_dim, 2, dtype=torch.float32) / head_dim)  # (hd/2,)
    ang = torch.arange(length, dtype=torch.float32)[:, None] * inv[None]  # (L, hd/2)
    return ang.cos(), ang.sin()


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate channel pairs (i, i + hd/2) of x (B, nh, T, hd) by position-dependent angles.

    The textbook form, kept as the reference: the model computes the same rotation
    with :func:`rope_pair_order` and :func:`rotate_pairs`.
    """
    x1, x2 = x.chunk(2, dim=-1)
    cos, sin = cos.to(x.dtype), sin.to(x.dtype)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


def rope_pair_order(n_head: int, head_dim: int) -> torch.Tensor:
    """Row order of ``c_attn`` (3C,) that puts each rotary pair side by side.

    Rotary embeddings rotate the channel pairs (i, i + hd/2) of every query and key
    head. Reading the q and k rows of ``c_attn`` in the order 0, hd/2, 1, hd/2 + 1, ...
    within each head makes the pairs adjacent, so one complex multiply rotates q and k
    together (:func:`rotate_pairs`) instead of chunk, four multiplies and a cat each,
    forward and backward (measured 2x faster on CPU). A score q.k sums over channels,
    so permuting q's and k's channels alike changes no score; v keeps its order. The
    parameters keep the standard layout: checkpoints and :func:`apply_rope` agree.
    """
    half = head_dim // 2
    within = torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).reshape(-1)  # (hd,)
    qk = (torch.arange(2 * n_head)[:, None] * head_dim + within).reshape(-1)  # (2C,)
    C = n_head * head_dim
    return torch.cat([qk, torch.arange(2 * C, 3 * C)])  # (3C,)


def rotate_pairs(x: torch.Tensor, cis: torch.Tensor) -> torch.Tensor:
    """Rotate the adjacent channel pairs of x (B, T, n, hd) by unit complex numbers cis (T, hd/2)."""
    xf = x if x.dtype in (torch.float32, torch.float64) else x.float()  # no complex bf16/fp16
    z = torch.view_as_complex(xf.unflatten(-1, (-1, 2)))  # (B, T, n, hd/2), a view
    out = torch.view_as_real(z * cis.to(z.dtype)[:, None]).flatten(-2)  # (B, T, n, hd)
    return out.to(x.dtype)


# --------------------------------------------------------------------------- blocks
class LayerKVCache:
    """Key/value buffers of one attention layer for one rollout.

    Preallocated to the rollout's full length ``L`` as ``(B, nh, L, hd)`` and
    filled in place: unlike ``torch.cat`` per step this copies each key once and
    allocates once, and ``k[:, :, :end]`` flattens to ``(B * nh, end, hd)`` without a
    copy for the cached step's batched matmuls. Buffers are created on first use with
    the dtype k/v are computed in, i.e. bf16 under the caller's autocast.
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
        self.head_dim = cfg.n_embd // cfg.n_head
        self.c_attn = nn.Linear(cfg.n_embd, 3 * cfg.n_embd, bias=cfg.bias)
        self.c_proj = nn.Linear(cfg.n_embd, cfg.n_embd, bias=cfg.bias)
        self.resid_dropout = nn.Dropout(cfg.dropout)
        self.dropout = cfg.dropout
        self.qkv_order: torch.Tensor | None
        if cfg.pos == "rope":
            self.register_buffer("qkv_order", rope_pair_order(cfg.n_head, self.head_dim), persistent=False)
        else:
            self.qkv_order = None

    def qkv_weights(self) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``c_attn``'s weight (3C, C) and bias, rows in :func:`rope_pair_order` under rope."""
        w, b = self.c_attn.weight, self.c_attn.bias
        if self.qkv_order is None:
            return w, b
        return w[self.qkv_order], None if b is None else b[self.qkv_order]  # a differentiable gather

    def forward(
        self, x: torch.Tensor, first: int = 0, cis: torch.Tensor | None = None,
        kv: LayerKVCache | None = None,
    ) -> torch.Tensor:
        """Attention outputs ``(B, T - first, C)`` at positions ``>= first`` of x (B, T, C).

        Every position supplies keys and values; queries are formed only at positions
        ``>= first``. ``cis`` (T, hd/2): rotary rotations of positions 0..T-1, or None.
        ``kv``: a cache to fill with this pass's keys and values (the rollout's prefill).
        """
        B, T, C = x.shape
        nh, hd = self.n_head, self.head_dim
        w, b = self.qkv_weights()
        if first == 0:
            qkv = F.linear(x, w, b).unflatten(-1, (3, nh, hd))  # (B, T, 3, nh, hd)
            qk, v = qkv[:, :, :2].flatten(2, 3), qkv[:, :, 2]  # (B, T, 2nh, hd), (B, T, nh, hd)
            if cis is not None:  # q and k in one rotation
                qk = rotate_pairs(qk, cis)
            q, k = qk[:, :, :nh], qk[:, :, nh:]
        else:  # queries where outputs are wanted, keys and values everywhere
            q = F.linear(x[:, first:], w[:C], None if b is None else b[:C]).unflatten(-1, (nh, hd))
            kvs = F.linear(x, w[C:], None if b is None else b[C:]).unflatten(-1, (2 * nh, hd))
            k, v = kvs[:, :, :nh], kvs[:, :, nh:]  # (B, T, nh, hd)
            if cis is not None:
                q, k = rotate_pairs(q, cis[first:]), rotate_pairs(k, cis)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # (B, nh, T(q), hd)
        if kv is not None:
            kv.update(k, v, 0)
        # Query i sits at position first + i and sees keys 0..first + i. SDPA's is_causal
        # aligns the mask top-left, right only for first = 0; a single last query sees
        # every key; otherwise the mask is passed explicitly.
        mask = None
        if 0 < first < T - 1:
            mask = torch.ones(T - first, T, dtype=torch.bool, device=x.device).tril(first)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0,
            is_causal=first == 0,
        )  # (B, nh, T - first, hd)
        y = y.transpose(1, 2).reshape(B, T - first, C)
        return self.resid_dropout(self.c_proj(y))


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
        self, x: torch.Tensor, first: int = 0, cis: torch.Tensor | None = None,
        kv: LayerKVCache | None = None,
    ) -> torch.Tensor:
        """(B, T, C) -> (B, T - first, C): the residual stream at positions ``>= first``."""
        x = x[:, first:] + self.attn(self.ln_1(x), first, cis, kv)
        return x + self.mlp(self.ln_2(x))


# --------------------------------------------------------------------------- the policy
class TiedHead(nn.Module):
    """The output head tied to the token embedding: logits ``x @ wte.weight[:num_actions].T``
    (actions are the first num_actions token ids), so the two share one parameter."""

    def __init__(self, wte: nn.Embedding, num_actions: int) -> None:
        super().__init__()
        self.wte, self.num_actions = [wte], num_actions  # a list: not registered twice as a submodule

    @property
    def weight(self) -> torch.Tensor:
        """``(num_actions, n_embd)``: a view of the embedding's first rows."""
        return self.wte[0].weight[: self.num_actions]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight)


class TransformerPolicy(nn.Module):
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
        self.head: nn.Module = (TiedHead(self.wte, cfg.num_actions) if cfg.tie_embeddings
                                else nn.Linear(cfg.n_embd, cfg.num_actions, bias=False))
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

    def _cis(self, start: int, end: int) -> torch.Tensor | None:
        # Rotary rotations e^{i * angle} of positions start..end-1: (end - start, hd/2) complex.
        if self.cfg.pos == "learned":
            return None
        return torch.complex(self.rope_cos[start:end].float(), self.rope_sin[start:end].float())

    def _trunk(
        self, tokens: torch.Tensor, first: int = 0, kvs: list[LayerKVCache] | None = None
    ) -> torch.Tensor:
        # Embeddings + blocks + final LN: hidden states (B, T - first, C), no head. Only
        # the last block drops positions < first: earlier blocks' outputs at every
        # position are the last block's keys and values.
        T = tokens.shape[1]
        x = self.wte(tokens)  # (B, T, C)
        if self.cfg.pos == "learned":
            x = x + self.wpe(torch.arange(T, device=tokens.device))
        x = self.drop(x)
        cis = self._cis(0, T)
        last = len(self.blocks) - 1
        for i, block in enumerate(self.blocks):
            x = block(x, first if i == last else 0, cis, None if kvs is None else kvs[i])
        return self.ln_f(x)

    def forward(self, tokens: torch.Tensor, first: int = 0) -> torch.Tensor:
        """Causal pass, logits at positions ``first .. T-1`` only.

        Args:
            tokens: ``(B, T)`` long token ids, ``T <= block_size``.
            first: the first position whose logits are wanted, ``0 <= first < T``.
                Earlier positions only supply keys and values: the head, and the last
                block's query projection, output projection and MLP skip them. The
                trainers pass ``first = P - 1`` (see :meth:`chain_logits`).

        Returns:
            ``(B, T - first, A)`` logits; row ``t`` scores the action following
            ``tokens[:, :first + t + 1]``.
        """
        T = tokens.shape[1]
        self._check_length(T, "forward")
        if not 0 <= first < max(T, 1):
            raise ValueError(f"`first` must be in [0, {T - 1}] for {T} tokens, got {first}")
        return self.head(self._trunk(tokens, first))  # (B, T - first, A)

    def chain_logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Logits at every prefix of ``chain``, in one teacher-forced pass.

        The input is ``cat(prompts, chain[:, :-1])`` and the output rows are
        positions ``P-1 .. P+H-2`` (``self(inp, first=P-1)``): row ``t`` predicts
        ``chain[:, t]`` from ``prompts`` and ``chain[:, :t]``. Goes through
        ``self(...)``, so a model compiled with :func:`agents.device.maybe_compile`
        uses the compiled graph.

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
        return self(inp, first=P - 1)  # (B, H, A)

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
        same random numbers in the same order (one ``torch.multinomial`` of ``(B, A)``
        probabilities per step), so with equal generator states they produce the same
        chains (up to floating-point ties).

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
            h = self._trunk(seq[:, : P + t], first=P + t - 1)[:, 0]  # (B, C): the last position only
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
        h = self._trunk(prompts, P - 1, kvs)[:, 0]  # prefill, last position only: (B, C)
        step = self._cached_step(kvs) if chain.shape[1] > 1 else None
        for t in range(chain.shape[1]):
            if t > 0:  # feed back the previous action: one position through the cache
                h = step(chain[:, t - 1], P + t - 1)  # (B, C)
            tok = self._next(self.head(h), temperature, generator)  # (B,)
            chain[:, t] = tok if step_fn is None else step_fn(t, chain, tok)

    def _cached_step(self, kvs: list[LayerKVCache]) -> Callable[[torch.Tensor, int], torch.Tensor]:
        """``step(tokens (B,), pos) -> hidden (B, C)``: one position through the KV caches.

        The same computation as a block's forward, as a fixed list of functional ops on
        weights prepared once per rollout (rotary row order applied, 1/sqrt(hd) folded
        into the query rows), with the single query's attention as two batched matmuls
        over the cache (faster than SDPA for one query on CPU). Eval mode, no grad.
        """
        cfg = self.cfg
        C, nh = cfg.n_embd, cfg.n_head
        hd = C // nh
        shape = (C,)
        scale = torch.ones(3 * C, 1, device=self.head.weight.device)
        scale[:C] = 1.0 / math.sqrt(hd)
        layers = []
        for block, kv in zip(self.blocks, kvs):
            w, b = block.attn.qkv_weights()
            layers.append((block, kv, w * scale, None if b is None else b * scale[:, 0]))
        wpe = self.wpe.weight if cfg.pos == "learned" else None

        def step(tokens: torch.Tensor, pos: int) -> torch.Tensor:
            B = tokens.shape[0]
            x = F.embedding(tokens, self.wte.weight)  # (B, C)
            if wpe is not None:
                x = x + wpe[pos]
            cis = self._cis(pos, pos + 1)
            for block, kv, w, b in layers:
                ln1, ln2, mlp = block.ln_1, block.ln_2, block.mlp
                qkv = F.linear(F.layer_norm(x, shape, ln1.weight, ln1.bias), w, b)  # (B, 3C)
                qkv = qkv.view(B, 1, 3 * nh, hd)
                qk = qkv[:, 0, : 2 * nh] if cis is None else rotate_pairs(qkv[:, :, : 2 * nh], cis)[:, 0]
                kv.k[:, :, pos] = qk[:, nh:]  # (B, nh, hd)
                kv.v[:, :, pos] = qkv[:, 0, 2 * nh :]
                keys = kv.k[:, :, : pos + 1].flatten(0, 1)  # (B*nh, pos+1, hd)
                vals = kv.v[:, :, : pos + 1].flatten(0, 1)
                q = qk[:, :nh].reshape(B * nh, 1, hd)
                att = torch.bmm(q, keys.transpose(1, 2)).softmax(-1)  # (B*nh, 1, pos+1)
                y = torch.bmm(att, vals).view(B, C)  # heads side by side, as SDPA's transpose-reshape
                x = x + F.linear(y, block.attn.c_proj.weight, block.attn.c_proj.bias)
                h = F.layer_norm(x, shape, ln2.weight, ln2.bias)
                x = x + F.linear(F.gelu(F.linear(h, mlp.c_fc.weight, mlp.c_fc.bias)),
                                 mlp.c_proj.weight, mlp.c_proj.bias)
            return F.layer_norm(x, shape, self.ln_f.weight, self.ln_f.bias)

        return step
