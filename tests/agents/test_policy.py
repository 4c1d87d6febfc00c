"""Tests of agents.policy (TransformerPolicy, presets) and agents.device, tiny preset on CPU."""

from __future__ import annotations

import contextlib
import warnings

import pytest
import torch

from agents.device import autocast_context, maybe_compile, resolve_device, resolve_precision
from agents.policy import PRESETS, PolicyConfig, TransformerPolicy, make_config

VOCAB, ACTIONS, P, H, B = 9, 7, 6, 5, 8


def _policy(seed: int = 0, block_size: int = P + H - 1, **overrides: object) -> TransformerPolicy:
    torch.manual_seed(seed)
    model = TransformerPolicy(make_config("tiny", VOCAB, ACTIONS, block_size, **overrides))
    # GPT init (std 0.02) gives near-uniform logits whose argmax is decided by
    # float noise; larger weights give peaked, input-dependent predictions, so the
    # equality tests below actually exercise the cache.
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, 0.5)
    return model


def _prompts(seed: int = 1, b: int = B, p: int = P) -> torch.Tensor:
    return torch.randint(0, VOCAB, (b, p), generator=torch.Generator().manual_seed(seed))


# --------------------------------------------------------------------------- generation


def test_greedy_generation_cache_equals_no_cache() -> None:
    model, prompts = _policy(), _prompts()
    cached = model.generate(prompts, H, use_cache=True)
    uncached = model.generate(prompts, H, use_cache=False)
    assert cached.shape == (B, H) and cached.dtype == torch.long
    assert torch.equal(cached, uncached)
    assert ((cached >= 0) & (cached < ACTIONS)).all()
    assert len({tuple(r) for r in cached.tolist()}) > 1  # input-dependent, not constant


def test_sampled_generation_cache_equals_no_cache_and_is_reproducible() -> None:
    model, prompts = _policy(), _prompts(b=64)

    def sample(use_cache: bool, seed: int = 7) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        return model.generate(prompts, H, temperature=1.0, generator=g, use_cache=use_cache)

    assert torch.equal(sample(True), sample(False))
    assert torch.equal(sample(True), sample(True))
    assert not torch.equal(sample(True, seed=7), sample(True, seed=8))
    assert not torch.equal(sample(True), model.generate(prompts, H))  # really sampled


def test_greedy_chain_is_argmax_of_chain_logits() -> None:
    # Independent of the cache: the teacher-forced pass over the generated chain
    # must reproduce each greedy choice.
    model, prompts = _policy(), _prompts()
    chain = model.generate(prompts, H)
    with torch.no_grad():
        assert torch.equal(model.chain_logits(prompts, chain).argmax(-1), chain)


@pytest.mark.parametrize("use_cache", [True, False])
def test_step_fn_overrides_are_fed_back(use_cache: bool) -> None:
    # Force action 0 on even rows at steps 0 and 2 (a roll-in mixture); the policy
    # must then continue greedily from the *taken* tokens.
    model, prompts = _policy(), _prompts()
    seen: list[int] = []

    def step_fn(t: int, chain: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        assert tokens.shape == (B,) and chain.shape == (B, H)
        forced = (torch.arange(B) % 2 == 0) & (t in (0, 2))
        return torch.where(forced, torch.zeros_like(tokens), tokens)

    chain = model.generate(prompts, H, step_fn=step_fn, use_cache=use_cache)
    assert seen == list(range(H))
    assert (chain[::2, [0, 2]] == 0).all()
    with torch.no_grad():
        greedy = model.chain_logits(prompts, chain).argmax(-1)  # (B, H)
    free = torch.ones_like(chain, dtype=torch.bool)
    free[::2, [0, 2]] = False
    assert torch.equal(greedy[free], chain[free])
    assert not torch.equal(chain, model.generate(prompts, H))  # the override mattered


def test_generation_with_dropout_is_deterministic_and_restores_mode() -> None:
    model, prompts = _policy(dropout=0.5), _prompts()
    model.train()
    greedy = model.generate(prompts, H, use_cache=True)
    assert model.training  # restored
    assert torch.equal(greedy, model.generate(prompts, H, use_cache=False))  # dropout off
    model.eval()
    model.generate(prompts, H)
    assert not model.training


def test_generate_edge_cases() -> None:
    model, prompts = _policy(), _prompts()
    assert model.generate(prompts, 0).shape == (B, 0)
    assert model.generate(prompts[:, :1], 1).shape == (B, 1)  # P = 1, H = 1
    with pytest.raises(ValueError, match="temperature"):
        model.generate(prompts, H, temperature=-1.0)
    with pytest.raises(ValueError, match="horizon"):
        model.generate(prompts, -1)


# --------------------------------------------------------------------------- teacher forcing


def test_chain_logits_match_forward_rows_and_per_prefix_passes() -> None:
    model, prompts = _policy(), _prompts()
    chain = torch.randint(0, ACTIONS, (B, H), generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        got = model.chain_logits(prompts, chain)  # (B, H, A)
        assert got.shape == (B, H, ACTIONS)
        full = model(torch.cat([prompts, chain[:, :-1]], 1))  # (B, P+H-1, A)
        torch.testing.assert_close(got, full[:, P - 1 :])
        for t in range(H):  # one prefix at a time: prompts + chain[:, :t]
            last = model(torch.cat([prompts, chain[:, :t]], 1))[:, -1]  # (B, A)
            torch.testing.assert_close(got[:, t], last, rtol=1e-5, atol=1e-5)


def test_chain_logits_carry_gradient_and_handle_empty_chain() -> None:
    model, prompts = _policy(), _prompts()
    chain = model.generate(prompts, H)
    model.chain_logits(prompts, chain).logsumexp(-1).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert model.chain_logits(prompts, chain[:, :0]).shape == (B, 0, ACTIONS)


def test_causality() -> None:
    model = _policy()
    tokens = _prompts(p=P + H - 1)
    j = 4
    changed = tokens.clone()
    changed[:, j] = (changed[:, j] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :j], b[:, :j], rtol=0, atol=0)
    assert (a[:, j:] - b[:, j:]).abs().amax() > 1e-3


def test_block_size_overflow_raises() -> None:
    model, prompts = _policy(block_size=P + H - 1), _prompts()
    model.generate(prompts, H)  # exactly fits: the last action is never fed back
    with pytest.raises(ValueError, match="block_size"):
        model.generate(prompts, H + 1)
    with pytest.raises(ValueError, match="block_size"):
        model.chain_logits(prompts, torch.zeros((B, H + 1), dtype=torch.long))
    with pytest.raises(ValueError, match="block_size"):
        model(_prompts(p=P + H))


# --------------------------------------------------------------------------- config


def _expected_params(c: PolicyConfig) -> int:
    C = c.n_embd
    per_layer = 2 * C + (3 * C * C + 3 * C) + (C * C + C) + 2 * C + (4 * C * C + 4 * C)
    per_layer += 4 * C * C + C
    return c.vocab_size * C + c.block_size * C + c.n_layer * per_layer + 2 * C + C * c.num_actions


@pytest.mark.parametrize(
    ("preset", "shape"), [("paper", (1, 8, 512)), ("cpu", (2, 4, 64)), ("tiny", (1, 2, 32))]
)
def test_presets_build_with_expected_sizes(preset: str, shape: tuple[int, int, int]) -> None:
    cfg = make_config(preset, VOCAB, ACTIONS, 63)
    assert (cfg.n_layer, cfg.n_head, cfg.n_embd) == shape
    model = TransformerPolicy(cfg)
    assert len(model.blocks) == shape[0]
    assert model.head.out_features == ACTIONS
    assert model.num_params() == _expected_params(cfg)


def test_make_config_errors_and_overrides() -> None:
    assert set(PRESETS) == {"paper", "cpu", "cpu-rope", "tiny"}
    with pytest.raises(ValueError, match="`pos`"):
        make_config("tiny", VOCAB, ACTIONS, 16, pos="alibi")
    assert make_config("tiny", VOCAB, ACTIONS, 16, dropout=0.1).dropout == 0.1
    with pytest.raises(ValueError, match="Did you mean 'tiny'"):
        make_config("tinny", VOCAB, ACTIONS, 16)
    with pytest.raises(ValueError, match="n_layers"):
        make_config("tiny", VOCAB, ACTIONS, 16, n_layers=3)
    with pytest.raises(ValueError, match="num_actions"):
        make_config("tiny", 5, 7, 16)
    with pytest.raises(ValueError, match="divisible"):
        make_config("tiny", VOCAB, ACTIONS, 16, n_head=3)


# --------------------------------------------------------------------------- device


@pytest.mark.skipif(
    torch.cuda.is_available() or torch.backends.mps.is_available(), reason="CPU-only machine"
)
def test_resolve_device_on_cpu_machine() -> None:
    assert resolve_device("auto") == torch.device("cpu")
    assert resolve_device() == torch.device("cpu")
    with pytest.raises(ValueError, match="unavailable.*'auto'.*'cpu'"):
        resolve_device("cuda")


def test_resolve_device_explicit_and_bad() -> None:
    assert resolve_device("cpu") == torch.device("cpu")
    assert resolve_device(torch.device("cpu")) == torch.device("cpu")
    with pytest.raises(ValueError, match="unknown device"):
        resolve_device("gpu")


def test_autocast_context_on_cpu() -> None:
    model, prompts = _policy(), _prompts()
    with pytest.raises(ValueError, match="precision"):
        autocast_context("cpu", "fp16")
    assert isinstance(autocast_context("cpu", "fp32"), contextlib.nullcontext)
    assert resolve_precision("cpu", "auto") in ("bf16", "fp32")
    with autocast_context("cpu", "auto"):
        assert model(prompts).shape == (B, P, ACTIONS)
    # Explicit bf16 works everywhere (it may warn on CPUs that only emulate bf16).
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ctx = autocast_context("cpu", "bf16")
    with ctx:
        logits = model(prompts)
        chain = model.generate(prompts, H)  # runs under the caller's autocast
        sampled = model.generate(prompts, H, 1.0, torch.Generator().manual_seed(0))
    assert logits.dtype == torch.bfloat16
    assert chain.shape == sampled.shape == (B, H)
    assert ((chain >= 0) & (chain < ACTIONS)).all()


def test_maybe_compile_is_noop_on_cpu_by_default() -> None:
    model = _policy()
    assert maybe_compile(model) is model
    assert maybe_compile(model, False) is model
    assert model._compiled_call_impl is None  # nothing was compiled
    with pytest.raises(ValueError, match="enabled"):
        maybe_compile(model, "yes")


# --------------------------------------------------------------------------- rotary positions


def test_rope_cache_equals_no_cache_and_per_prefix_passes() -> None:
    model, prompts = _policy(pos="rope"), _prompts(b=32)
    assert not hasattr(model, "wpe")
    assert torch.equal(model.generate(prompts, H, use_cache=True), model.generate(prompts, H, use_cache=False))
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(model.generate(prompts, H, 1.0, g1, use_cache=True),
                       model.generate(prompts, H, 1.0, g2, use_cache=False))
    chain = model.generate(prompts, H)
    with torch.no_grad():
        got = model.chain_logits(prompts, chain)
        assert torch.equal(got.argmax(-1), chain)
        for t in range(H):
            last = model(torch.cat([prompts, chain[:, :t]], 1))[:, -1]
            torch.testing.assert_close(got[:, t], last, rtol=1e-5, atol=1e-5)


def test_rope_attention_depends_on_relative_position_only() -> None:
    """With rotary positions and no absolute embedding, a token window seen at any offset
    gives the same last-position logits when everything before it is the same token
    (a sequence of one repeated token attends identically at every offset)."""
    from agents.policy import apply_rope, rope_tables

    cos, sin = rope_tables(20, 8)
    q, k = torch.randn(1, 1, 1, 8), torch.randn(1, 1, 1, 8)
    def score(i: int, j: int) -> float:
        return float((apply_rope(q, cos[i : i + 1], sin[i : i + 1]) * apply_rope(k, cos[j : j + 1], sin[j : j + 1])).sum())
    assert score(7, 3) == pytest.approx(score(15, 11), abs=1e-5)  # same offset 4
    assert score(7, 3) != pytest.approx(score(7, 5), abs=1e-3)


def test_rope_causality() -> None:
    model = _policy(pos="rope")
    tokens = _prompts(p=P + H - 1)
    changed = tokens.clone()
    changed[:, 4] = (changed[:, 4] + 1) % VOCAB
    with torch.no_grad():
        a, b = model(tokens), model(changed)
    torch.testing.assert_close(a[:, :4], b[:, :4], rtol=0, atol=0)
