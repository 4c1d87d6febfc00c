"""The unknown-corruption laws (`corrupted`, `corrupted-absorbing`): the oracle against the
pure-Python reference, the secret prefix key, task-genericity, and the closed forms of
theory_corruption against brute force and Monte Carlo through the oracle, in both access modes."""

from __future__ import annotations

import itertools
import math
import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym import make_problem, theory
from noisy_expert_gym import theory_corruption as tc
from noisy_expert_gym.noise import NoiseLaw, wrong_tokens
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.prefix_keys import prefix_keys, prefix_keys_along
from noisy_expert_gym.sampling import majority_vote
from noisy_expert_gym.tasks import ModAddTask
from tests.noisy_expert_gym import (
    CORRUPTION_LAW_NAMES,
    enumerate_rollouts,
    make_obs,
    random_prefix,
    ref_clean_next,
    ref_has_error,
    ref_majority_prob,
    ref_metrics,
    ref_prefix_key,
    ref_probs,
    ref_wrong,
    z_bound,
)

#: Significance level of every statistical test here (seeds are fixed: runs are deterministic).
ALPHA = 1e-4
ACCESS = ("full", "sample")


def _batch(p, m, n, seed, kind=None, length=None):
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m, kind, length) for _ in range(n)]
    return pairs, np.array([make_obs(xs, ys, p, m) for xs, ys in pairs], dtype=np.int64)


def _chains(p, m, n, seed):
    """Complete chains of every kind (clean, slip, corrupt, random) with their prompts."""
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m, length=m) for _ in range(n)]
    prompts = np.array([xs + [p] for xs, _ in pairs], dtype=np.int64)
    return pairs, prompts, np.array([ys for _, ys in pairs], dtype=np.int64)


# ----- the law against the reference --------------------------------------------------

@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("p,m,eta,kappa,seed", [(7, 31, 0.2, 1.0, 0), (2, 5, 0.6, 0.3, 11), (11, 8, 0.45, 0.0, 2**40),
                                                 (5, 6, 1.0, 0.5, 3), (3, 4, 0.0, 0.9, 2**64 - 1)])
@pytest.mark.parametrize("kind", ["clean", "slip", "corrupt", "random"])
def test_probs_equal_reference(law, p, m, eta, kappa, seed, kind):
    pairs, obs = _batch(p, m, 40, seed=f"{law}-{p}-{kind}", kind=kind)
    expert = Expert(ModAddTask(p, m), law=law, eta=eta, kappa=kappa, corruption_seed=seed)
    want = np.array([ref_probs(law, eta, p, xs, ys, kappa=kappa, seed=seed) for xs, ys in pairs])
    np.testing.assert_allclose(expert.probs(obs), want, atol=1e-12)
    np.testing.assert_allclose(expert.probs(torch.as_tensor(obs)).double().numpy(), want, atol=1e-6)


@given(p=st.integers(2, 13), m=st.integers(1, 12), eta=st.floats(0, 1), kappa=st.floats(0, 1),
       law=st.sampled_from(CORRUPTION_LAW_NAMES), seed=st.integers(0, 2**64 - 1), draw=st.integers(0, 2**31))
@settings(max_examples=40, deadline=None)
def test_probs_property(p, m, eta, kappa, law, seed, draw):
    pairs, obs = _batch(p, m, 12, draw)
    got = Expert(ModAddTask(p, m), law=law, eta=eta, kappa=kappa, corruption_seed=seed).probs(obs)
    want = np.array([ref_probs(law, eta, p, xs, ys, kappa=kappa, seed=seed) for xs, ys in pairs])
    np.testing.assert_allclose(got, want, atol=1e-12)
    np.testing.assert_allclose(got.sum(1), 1.0, atol=1e-12)


@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_probs_along_rows_equal_probs_of_the_same_prefixes(law, backend):
    """Equal prefixes get equal keys whichever call answers them: probs(obs) rows == probs_along rows."""
    p, m, n, seed = 7, 9, 60, 123456789
    pairs, prompts, chain = _chains(p, m, n, seed=law)
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=0.4, kappa=0.7, corruption_seed=seed)
    conv = torch.as_tensor if backend == "torch" else np.asarray
    prompts_b, chain_b = conv(prompts), conv(chain)
    along = expert.probs_along(prompts_b, chain_b)
    keys_along = prefix_keys_along(task, prompts_b, chain_b, seed)
    assert tuple(along.shape) == (n, m, p) and tuple(keys_along.shape) == (n, m)
    for t in range(m):
        obs = task.observe(prompts_b, chain_b[:, :t])
        np.testing.assert_array_equal(np.asarray(prefix_keys(task, obs, seed)), np.asarray(keys_along[:, t]))
        np.testing.assert_array_equal(np.asarray(expert.probs(obs)), np.asarray(along[:, t]))
        want = [ref_prefix_key(xs + [p], ys[:t], seed) for xs, ys in pairs]
        assert np.asarray(keys_along[:, t]).tolist() == want


def test_keys_agree_across_backends_and_stay_in_32_bits():
    p, m = 7, 31
    _, prompts, chain = _chains(p, m, 200, seed=3)
    task = ModAddTask(p, m)
    for seed in (0, 1, 2**63, 2**64 - 1):
        k_np = prefix_keys_along(task, prompts, chain, seed)
        k_t = prefix_keys_along(task, torch.as_tensor(prompts), torch.as_tensor(chain), seed)
        assert k_np.dtype == np.int64 and k_t.dtype == torch.int64
        np.testing.assert_array_equal(k_np, k_t.numpy())
        assert k_np.min() >= 0 and k_np.max() < 2**32
    # equal prefixes of two different chains of one prompt share their keys up to where they part
    c2 = chain.copy()
    c2[:, 10:] = (c2[:, 10:] + 1) % p
    a, b = prefix_keys_along(task, prompts, chain, 5), prefix_keys_along(task, prompts, c2, 5)
    np.testing.assert_array_equal(a[:, :11], b[:, :11])
    assert (a[:, 11:] != b[:, 11:]).mean() > 0.999


def test_wrong_token_is_never_clean_and_uniform_among_the_others():
    """Chi-square on the offsets w(s) - clean over many states: uniform on 1..p-1; seeds differ."""
    p, m = 7, 31
    _, prompts, chain = _chains(p, m, 400, seed=9)
    task = ModAddTask(p, m)
    clean = task.clean_along(prompts, chain)
    mask = task.answer_mask
    w0 = wrong_tokens(clean, prefix_keys_along(task, prompts, chain, 0), mask)
    w1 = wrong_tokens(clean, prefix_keys_along(task, prompts, chain, 1), mask)
    assert (w0 != clean).all() and (w1 != clean).all()
    for w in (w0, w1):
        counts = np.bincount(((w - clean) % p).ravel(), minlength=p)
        assert counts[0] == 0
        assert stats.chisquare(counts[1:]).pvalue > ALPHA, counts
    # another seed is another corruption: w agrees by chance only, 1/(p-1) of the time
    agree = (w0 == w1).mean()
    assert stats.binomtest(int((w0 == w1).sum()), w0.size, 1 / (p - 1)).pvalue > ALPHA, agree
    # the reference's choice rule, state by state
    keys = prefix_keys_along(task, prompts, chain, 0)
    for n in range(5):
        for t in range(m):
            assert w0[n, t] == ref_wrong(int(clean[n, t]), int(keys[n, t]), range(p))


def test_kappa_zero_is_exactly_the_known_mixture_laws():
    """kappa = 0 turns c into U: `corrupted` is `mixture` and `corrupted-absorbing` is `absorbing`, bit for bit."""
    p, m = 7, 9
    _, obs = _batch(p, m, 300, seed=4)
    _, prompts, chain = _chains(p, m, 50, seed=5)
    task = ModAddTask(p, m)
    for law, known in (("corrupted", "mixture"), ("corrupted-absorbing", "absorbing")):
        a = Expert(task, law=law, eta=0.3, kappa=0.0, corruption_seed=77)
        b = Expert(task, law=known, eta=0.3)
        np.testing.assert_array_equal(a.probs(obs), b.probs(obs))
        np.testing.assert_array_equal(a.probs_along(prompts, chain), b.probs_along(prompts, chain))
        np.testing.assert_array_equal(a.probs(torch.as_tensor(obs)).numpy(), b.probs(torch.as_tensor(obs)).numpy())


def test_the_seed_decides_the_corruption_and_is_not_shown():
    p, m = 7, 9
    _, obs = _batch(p, m, 200, seed=6, kind="clean")
    task = ModAddTask(p, m)
    a = Expert(task, law="corrupted", eta=0.3, corruption_seed=1).probs(obs)
    b = Expert(task, law="corrupted", eta=0.3, corruption_seed=1).probs(obs)
    c = Expert(task, law="corrupted", eta=0.3, corruption_seed=2).probs(obs)
    np.testing.assert_array_equal(a, b)
    assert (a != c).any(1).mean() > 0.5
    law = NoiseLaw("corrupted", 0.3, kappa=0.5, corruption_seed=123456)
    assert "123456" not in repr(law) and "hidden" in repr(law)
    assert "123456" not in repr(Expert(task, law="corrupted", eta=0.3, corruption_seed=123456))


def test_absorbing_variant_switches_to_the_corruption_after_an_error():
    p, m = 7, 6
    xs, ys = [3, 1, 4, 1, 5, 2], [3, 5, 2, 3]  # a slip at y_2, then carried forward
    task = ModAddTask(p, m)
    obs = np.array(make_obs(xs, ys, p, m))
    assert ref_has_error(xs, ys, p)
    got = Expert(task, law="corrupted-absorbing", eta=0.2, kappa=0.6, corruption_seed=8).probs(obs)
    clean = ref_clean_next(xs, ys, p)
    w = ref_wrong(clean, ref_prefix_key(xs + [p], ys, 8), range(p))
    want = np.full(p, 0.4 / p)
    want[w] += 0.6
    np.testing.assert_allclose(got, want, atol=1e-12)
    assert got.argmax() == w != clean  # the corruption, not the clean action, is the mode after an error


# ----- task-genericity: the same laws over another task core (GSM-8K reference teacher) -----

def test_laws_work_on_another_task_core():
    """GSM8KTask: variable prompts with padding, EOS-padded chains, answer tokens that may exclude the clean one."""
    from noisy_expert_gym.tasks import GSM8KTask
    from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS
    from noisy_expert_gym.tasks.gsm8k.problem import as_word_problems
    from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

    problems = as_word_problems(EXAMPLE_PROBLEMS["train"])
    for uniform_over in ("text", "digits"):
        task = GSM8KTask(problems, tokenizer="char", max_new_tokens=200, uniform_over=uniform_over)
        assert task.num_problems >= 2
        mask = task.answer_mask
        for law in CORRUPTION_LAW_NAMES:
            expert = ReferenceExpert(task, law=law, eta=0.3, kappa=0.8, corruption_seed=42,
                                     rng=np.random.default_rng(0))
            prompts = task.all_prompts()
            chain = expert.rollout(prompts)
            along = expert.probs_along(prompts, chain)
            np.testing.assert_allclose(along.sum(-1), 1.0, atol=1e-12)
            clean = task.clean_along(prompts, chain)
            w = wrong_tokens(clean, prefix_keys_along(task, prompts, chain, 42), mask)
            assert mask[w].all() and (w != clean).all()
            for t in (0, 1, 7, 50):
                obs = task.observe(prompts, chain[:, :t])
                np.testing.assert_array_equal(expert.probs(obs), along[:, t])
                np.testing.assert_allclose(expert.probs(torch.as_tensor(obs)).double().numpy(), along[:, t],
                                           atol=1e-6)
            # mass off the answer tokens sits on the clean action only
            off = along * ~mask
            rows = np.arange(len(prompts))[:, None], np.arange(task.horizon)[None]
            np.testing.assert_allclose(off.sum(-1), off[rows[0], rows[1], clean], atol=1e-12)


# ----- closed forms: state probabilities and the mode condition --------------------------

@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("eta,kappa", [(0.2, 1.0), (0.45, 1.0), (0.55, 1.0), (0.6, 0.5), (0.7, 0.5), (0.9, 0.0),
                                       (1.0, 0.0), (0.5, 1.0), (0.3, 0.0)])
def test_state_probs_and_mode_condition_on_planted_prefixes(law, eta, kappa):
    """Every planted prefix's row (full access) has the closed form's three values and mode."""
    p, m = 7, 9
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=31)
    for kind in ("clean", "slip"):
        pairs, obs = _batch(p, m, 200, seed=f"{kind}{eta}{kappa}", kind=kind)
        keep = [i for i, (xs, ys) in enumerate(pairs) if ref_has_error(xs, ys, p) == (kind == "slip")]
        pairs, obs = [pairs[i] for i in keep], obs[keep]
        error = kind == "slip"
        q, r, o = tc.state_probs(law, eta, kappa, p, error=error)
        rows = expert.probs(obs)
        for (xs, ys), row in zip(pairs, rows, strict=True):
            c = ref_clean_next(xs, ys, p)
            w = ref_wrong(c, ref_prefix_key(xs + [p], ys, 31), range(p))
            want = np.full(p, o)
            want[c], want[w] = q, r
            np.testing.assert_allclose(row, want, atol=1e-12)
            strict_mode = row[c] > np.delete(row, c).max() + 1e-12
            assert strict_mode == bool(tc.prob_mode_condition(law, eta, kappa, p, error=error))
        assert tc.mode_margin(law, eta, kappa, p, error=error) == pytest.approx(q - r)


def test_mode_boundary():
    assert tc.mode_boundary(1.0) == 0.5 and tc.mode_boundary(0.0) == 1.0 and tc.mode_boundary(0.25) == 0.8
    for kappa in (0.0, 0.3, 0.5, 1.0):
        b = tc.mode_boundary(kappa)
        for eta in (b - 1e-9, b * 0.5):
            assert tc.prob_mode_condition("corrupted", eta, kappa, 7) == 1.0
        for eta in (min(b + 1e-9, 1.0), 1.0):
            assert tc.prob_mode_condition("corrupted", eta, kappa, 7) == 0.0
    # exactly at the boundary the clean action and w(s) tie: not a strict mode
    assert tc.prob_mode_condition("corrupted", 0.5, 1.0, 7) == 0.0
    assert tc.prob_mode_condition("corrupted-absorbing", 0.1, 0.0, 7, error=True) == 0.0


@pytest.mark.parametrize("access", ACCESS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("eta,kappa", [(0.3, 1.0), (0.7, 1.0), (0.6, 0.4)])
def test_sample_frequencies_match_state_probs(access, backend, eta, kappa):
    """Monte Carlo through sample_along (k draws at every prefix of planted chains): chi-square on
    (clean, w(s), other) per state kind, and the empirical mode follows the mode condition."""
    p, m, n, k = 5, 6, 300, 64
    law = "corrupted-absorbing"
    pairs, prompts, chain = _chains(p, m, n, seed=f"mc{eta}{kappa}")
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=5, access=access,
                    rng=np.random.default_rng(17))
    if backend == "torch":
        draws = expert.sample_along(torch.as_tensor(prompts), torch.as_tensor(chain), k,
                                    generator=torch.Generator().manual_seed(2)).numpy()
    else:
        draws = expert.sample_along(prompts, chain, k)
    assert draws.shape == (n, m, k)
    cat = {False: np.zeros(3, np.int64), True: np.zeros(3, np.int64)}
    for (xs, ys), d in zip(pairs, draws, strict=True):
        for t in range(m):
            c = ref_clean_next(xs, ys[:t], p)
            w = ref_wrong(c, ref_prefix_key(xs + [p], ys[:t], 5), range(p))
            err = ref_has_error(xs, ys[:t], p)
            cat[err] += [(d[t] == c).sum(), (d[t] == w).sum(), ((d[t] != c) & (d[t] != w)).sum()]
    for err, counts in cat.items():
        q, r, o = tc.state_probs(law, eta, kappa, p, error=err)
        want = np.array([q, r, (p - 2) * o]) * counts.sum()
        assert (counts[want == 0] == 0).all()  # kappa = 1: no mass off the clean action and w(s)
        nz = want > 0
        if nz.sum() > 1:
            assert stats.chisquare(counts[nz], want[nz]).pvalue > ALPHA, (err, counts, want)
        clean_is_mode = counts[0] > counts[1]
        assert clean_is_mode == bool(tc.prob_mode_condition(law, eta, kappa, p, error=err))


# ----- closed forms: rollouts -------------------------------------------------------------

@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("p,m", [(2, 5), (3, 4), (5, 3)])
@pytest.mark.parametrize("eta,kappa", [(0.0, 1.0), (0.3, 1.0), (0.6, 0.5), (1.0, 0.2)])
def test_fully_clean_and_prefix_equal_brute_force(law, p, m, eta, kappa):
    """All p^m chains with their probabilities for one secret seed: these forms do not depend on w(s)."""
    xs = [random.Random(f"{p}{m}").randrange(p) for _ in range(m)]
    for seed in (0, 99):
        full = prefix = total = 0.0
        for ys, prob in enumerate_rollouts(law, eta, p, xs, kappa=kappa, seed=seed):
            met = ref_metrics(xs, ys, p)
            total += prob
            full += prob * met["full_exact"]
            prefix += prob * met["correct_prefix_len"]
        assert total == pytest.approx(1.0, abs=1e-12)
        assert tc.prob_fully_clean(law, eta, kappa, p, m) == pytest.approx(full, abs=1e-12)
        assert tc.expected_correct_prefix(law, eta, kappa, p, m) == pytest.approx(prefix, abs=1e-12)


def _seed_averaged_probs(law, eta, kappa, p, xs, ys):
    """pi~ averaged over w(s) uniform among the other residues (what the final-answer form assumes)."""
    c = ref_clean_next(xs, ys, p)
    err = law == "corrupted-absorbing" and ref_has_error(xs, ys, p)
    q = (1 - kappa) / p if err else 1 - eta + eta * (1 - kappa) / p
    return [q if a == c else (1 - q) / (p - 1) for a in range(p)]


@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("p,m", [(2, 5), (3, 4), (5, 3), (4, 4)])
@pytest.mark.parametrize("eta,kappa", [(0.3, 1.0), (0.6, 0.5), (1.0, 0.2)])
def test_final_correct_equals_brute_force_of_the_seed_average(law, p, m, eta, kappa):
    xs = [random.Random(f"f{p}{m}").randrange(p) for _ in range(m)]
    final = 0.0
    for ys in map(list, itertools.product(range(p), repeat=m)):
        prob = math.prod(_seed_averaged_probs(law, eta, kappa, p, xs, ys[:t])[ys[t]] for t in range(m))
        final += prob * ref_metrics(xs, ys, p)["final_exact"]
    assert tc.prob_final_correct(law, eta, kappa, p, m) == pytest.approx(final, abs=1e-12)


def test_kappa_zero_forms_equal_the_known_laws():
    for p, m, eta in ((7, 31, 0.2), (5, 8, 0.6), (2, 3, 1.0)):
        for law, known in (("corrupted", "mixture"), ("corrupted-absorbing", "absorbing")):
            assert tc.prob_fully_clean(law, eta, 0.0, p, m) == pytest.approx(theory.prob_fully_clean(known, eta, p, m))
            assert tc.prob_final_correct(law, eta, 0.0, p, m) == pytest.approx(
                theory.prob_final_correct(known, eta, p, m), abs=1e-12)
            assert tc.expected_correct_prefix(law, eta, 0.0, p, m) == pytest.approx(
                theory.expected_correct_prefix(known, eta, p, m))


@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("access", ACCESS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_expert_rollouts_match_theory(law, access, backend):
    """Monte Carlo: noisy-expert rollouts over many prompts (one secret seed) against the closed forms."""
    p, m, eta, kappa, n = 7, 8, 0.15, 0.7, 4000
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=2024, access=access,
                    rng=np.random.default_rng(1))
    prompts = task.sample_prompts(np.random.default_rng(8), n)
    if backend == "torch":
        chains = expert.rollout(torch.as_tensor(prompts), generator=torch.Generator().manual_seed(4)).numpy()
    else:
        chains = expert.rollout(prompts)
    sums = np.cumsum(prompts[:, :m], axis=1) % p
    ok = chains == sums
    prefix = np.where(ok.all(1), m, (~ok).argmax(1))
    for k_obs, want in ((int(ok.all(1).sum()), tc.prob_fully_clean(law, eta, kappa, p, m)),
                        (int(ok[:, -1].sum()), tc.prob_final_correct(law, eta, kappa, p, m))):
        assert stats.binomtest(k_obs, n, want).pvalue > ALPHA, (k_obs / n, want)
    good, msg = z_bound(prefix.astype(float).tolist(), tc.expected_correct_prefix(law, eta, kappa, p, m))
    assert good, msg


def test_env_and_vector_env_serve_the_law():
    p, m, n = 7, 5, 2000
    kw = {"p": p, "m": m, "eta": 0.3, "law": "corrupted", "kappa": 0.8, "corruption_seed": 9}
    env = gym.make("NoisyModAdd-v0", **kw)
    assert env.unwrapped.problem.kwargs["kappa"] == 0.8 and env.unwrapped.expert.kappa == 0.8
    venv = gym.make_vec("NoisyModAdd-v0", num_envs=n, **kw)
    obs, _ = venv.reset(seed=3)
    for _ in range(m):
        obs, _, term, _, info = venv.step(venv.unwrapped.expert.sample(obs))
    assert term.all()
    k_obs = int(np.sum(info["full_exact"]))
    want = tc.prob_fully_clean("corrupted", 0.3, 0.8, p, m)
    assert stats.binomtest(k_obs, n, want).pvalue > ALPHA, (k_obs / n, want)
    # the env's expert and make_problem's answer the same
    o, _ = env.reset(seed=1)
    np.testing.assert_array_equal(env.unwrapped.expert.probs(o), make_problem("NoisyModAdd-v0", **kw).expert.probs(o))


# ----- closed forms: the majority vote ------------------------------------------------------

@pytest.mark.parametrize("ties", ["random", "lowest"])
@pytest.mark.parametrize("a,k", [(2, 1), (2, 6), (3, 5), (4, 4), (5, 3), (3, 7)])
def test_majority_vote_prob_equals_enumeration(ties, a, k):
    rnd = random.Random(f"{ties}{a}{k}")
    for _ in range(4):
        w = [rnd.random() for _ in range(a)]
        if a > 2 and rnd.random() < 0.5:
            w[rnd.randrange(a)] = 0.0
        probs = [x / sum(w) for x in w]
        for clean in range(a):
            assert tc.majority_vote_prob(probs, k, clean, ties) == pytest.approx(
                ref_majority_prob(probs, k, clean, ties), abs=1e-12)


@pytest.mark.parametrize("law", CORRUPTION_LAW_NAMES)
@pytest.mark.parametrize("error", [False, True])
@pytest.mark.parametrize("a,k", [(2, 3), (3, 5), (4, 4), (5, 3)])
@pytest.mark.parametrize("eta,kappa", [(0.3, 1.0), (0.5, 1.0), (0.6, 0.5), (0.8, 0.0)])
def test_prob_majority_clean_equals_enumeration_averaged_over_w(law, error, a, k, eta, kappa):
    q, r, o = tc.state_probs(law, eta, kappa, a, error=error)
    for ties in ("random", "lowest"):
        for c in range(a) if ties == "lowest" else (0,):
            exact = []
            for w in range(a):
                if w == c:
                    continue
                probs = [o] * a
                probs[c], probs[w] = q, r
                exact.append(ref_majority_prob(probs, k, c, ties))
            got = tc.prob_majority_clean(law, eta, kappa, a, k, ties=ties, error=error,
                                         clean_rank=c if ties == "lowest" else None)
            assert got == pytest.approx(sum(exact) / len(exact), abs=1e-12)


def test_majority_vote_limits():
    # k = 1: the vote is one sample
    assert tc.prob_majority_clean("corrupted", 0.3, 0.5, 7, 1) == pytest.approx(
        tc.state_probs("corrupted", 0.3, 0.5, 7)[0])
    # many samples: 1 inside the mode condition, 0 beyond it
    assert tc.prob_majority_clean("corrupted", 0.4, 1.0, 7, 301) > 0.999
    assert tc.prob_majority_clean("corrupted", 0.6, 1.0, 7, 301) < 0.001
    assert tc.prob_majority_clean("corrupted-absorbing", 0.1, 0.5, 7, 101, error=True) < 0.001
    # more samples help below the boundary and hurt above it
    below = [tc.prob_majority_clean("corrupted", 0.45, 1.0, 7, k) for k in (1, 3, 9, 27)]
    above = [tc.prob_majority_clean("corrupted", 0.55, 1.0, 7, k) for k in (3, 9, 27)]
    assert below == sorted(below) and above == sorted(above, reverse=True)


@pytest.mark.parametrize("access", ACCESS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("ties", ["random", "lowest"])
def test_majority_of_sample_along_matches_the_closed_form(access, backend, ties):
    """Monte Carlo: the majority of k samples at every prefix of planted chains, against the exact
    per-state probability (z-bound on the mean) and, for random ties, prob_majority_clean directly."""
    p, m, n, k, eta, kappa = 5, 6, 1500, 5, 0.45, 1.0
    law = "corrupted"
    pairs, prompts, chain = _chains(p, m, n, seed=f"maj{ties}")
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, kappa=kappa, corruption_seed=77, access=access,
                    rng=np.random.default_rng(3))
    if backend == "torch":
        gen = torch.Generator().manual_seed(5)
        draws = expert.sample_along(torch.as_tensor(prompts), torch.as_tensor(chain), k, generator=gen)
        labels = majority_vote(draws, p, ties, generator=gen).numpy()
    else:
        draws = expert.sample_along(prompts, chain, k)
        labels = majority_vote(draws, p, ties, generator=np.random.default_rng(6))
    assert expert.num_queries == k * n * m
    clean = task.clean_along(prompts, chain)
    hits = (labels == clean).astype(float).ravel()
    q, r, o = tc.state_probs(law, eta, kappa, p)
    by_pair: dict[tuple[int, int], float] = {}  # the exact value depends on (clean, w) only
    exact = []
    for (xs, ys) in pairs:
        for t in range(m):
            c = ref_clean_next(xs, ys[:t], p)
            w = ref_wrong(c, ref_prefix_key(xs + [p], ys[:t], 77), range(p))
            if (c, w) not in by_pair:
                probs = [o] * p
                probs[c], probs[w] = q, r
                by_pair[c, w] = tc.majority_vote_prob(probs, k, c, ties)
            exact.append(by_pair[c, w])
    good, msg = z_bound(hits.tolist(), float(np.mean(exact)))
    assert good, msg
    if ties == "random":
        want = tc.prob_majority_clean(law, eta, kappa, p, k)
        assert np.allclose(exact, want)
        assert stats.binomtest(int(hits.sum()), hits.size, want).pvalue > ALPHA


# ----- bad input ------------------------------------------------------------------------

@pytest.mark.parametrize("kwargs,match", [
    ({"law": "corrupted", "eta": 0.2, "kappa": 1.5}, r"`kappa` must be a number in \[0, 1\]"),
    ({"law": "corrupted", "eta": 0.2, "kappa": -0.1}, r"\[0, 1\]"),
    ({"law": "corrupted", "eta": 0.2, "kappa": math.nan}, r"\[0, 1\]"),
    ({"law": "corrupted", "eta": 0.2, "kappa": "high"}, "kappa"),
    ({"law": "corrupted", "eta": 0.2, "kappa": True}, "kappa"),
    ({"law": "corrupted", "eta": 1.2}, r"`eta` must be in \[0, 1\]"),
    ({"law": "corrupted", "eta": 0.2, "corruption_seed": 1.5}, "integer"),
    ({"law": "corrupted", "eta": 0.2, "corruption_seed": "abc"}, "integer"),
    ({"law": "corrupted", "eta": 0.2, "corruption_seed": -1}, r"\[0, 2\*\*64\)"),
    ({"law": "corrupted", "eta": 0.2, "corruption_seed": 2**64}, r"\[0, 2\*\*64\)"),
    ({"law": "mixture", "eta": 0.2, "kappa": 0.5}, "leave them at their defaults"),
    ({"law": "absorbing", "eta": 0.2, "corruption_seed": 3}, "corruption laws"),
    ({"law": "corupted", "eta": 0.2}, "Did you mean `corrupted`"),
])
def test_bad_law_parameters_raise(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Expert(ModAddTask(7, 5), **kwargs)
    with pytest.raises(ValueError, match=match):
        gym.make("NoisyModAdd-v0", m=5, **kwargs)
    with pytest.raises(ValueError, match=match):
        make_problem("NoisyModAdd-v0", m=5, **kwargs)


def test_theory_rejects_bad_input():
    with pytest.raises(ValueError, match="valid values: `corrupted`, `corrupted-absorbing`"):
        tc.prob_fully_clean("mixture", 0.1, 1.0, 7, 5)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tc.state_probs("corrupted", 0.1, 1.1, 7)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        tc.mode_boundary(-0.5)
    with pytest.raises(ValueError, match="`num_answers`"):
        tc.prob_mode_condition("corrupted", 0.1, 1.0, 1)
    for k in (0, -3, 2.5, True):
        with pytest.raises(ValueError, match="integer >= 1"):
            tc.prob_majority_clean("corrupted", 0.1, 1.0, 7, k)
        with pytest.raises(ValueError, match="integer >= 1"):
            tc.majority_vote_prob([0.5, 0.5], k, 0)
    with pytest.raises(ValueError, match="`ties`"):
        tc.prob_majority_clean("corrupted", 0.1, 1.0, 7, 3, ties="first")
    with pytest.raises(ValueError, match="clean_rank"):
        tc.prob_majority_clean("corrupted", 0.1, 1.0, 7, 3, ties="lowest")
    with pytest.raises(ValueError, match="distribution"):
        tc.majority_vote_prob([0.5, 0.6], 3, 0)
    with pytest.raises(ValueError, match="`m`"):
        tc.prob_fully_clean("corrupted", 0.1, 1.0, 7, -1)
    # the known-law closed forms point to this module instead of answering for a corruption law
    with pytest.raises(ValueError, match="theory_corruption"):
        theory.prob_fully_clean("corrupted", 0.1, 7, 5)
