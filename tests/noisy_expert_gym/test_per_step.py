"""Per-step rules (NoisyPerStepAutomaton-v0, NoisyPerStepModAdd-v0) against the pure-Python reference:
the drawn blocks, prompts, episodes, oracle rows, chains and metrics for P in {1, 2, m}; P = 1 equal to
the shared-rule tasks; the closed forms with a per-step transition against enumeration and Monte Carlo."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from noisy_expert_gym import make_problem, theory
from noisy_expert_gym.envs.per_step_vector import NoisyPerStepAutomatonVectorEnv
from noisy_expert_gym.tasks.automata import random_automaton
from noisy_expert_gym.tasks.per_step import modadd_blocks, random_blocks
from tests.noisy_expert_gym import (
    LAW_NAMES,
    RefPerStep,
    ref_modadd_blocks,
    ref_ps_clean_next,
    ref_ps_final_correct,
    ref_ps_has_error,
    ref_ps_metrics,
    ref_ps_probs,
    ref_ps_run,
    ref_random_blocks,
    z_bound,
)

END_KEYS = {"full_exact", "final_exact", "num_errors", "correct_prefix_len"}
ALPHA = 1e-4


def periods(m: int) -> list[int]:
    """The periods the tests cover: one shared rule, two alternating rules, a rule per step."""
    return sorted({1, min(2, m), m})


# ----------------------------------------------------------------------------- the blocks
@pytest.mark.parametrize("n,k", [(2, 2), (3, 2), (3, 6), (4, 3), (7, 7)])
@pytest.mark.parametrize("seed", [0, 1, 17])
def test_random_blocks_are_the_reference_draws_distinct_and_nested(n, k, seed):
    ref = ref_random_blocks(n, k, 6, seed)
    auto = random_blocks(n, k, 6, seed)
    assert auto.table.shape == (n, 6 * k) and auto.is_permutation
    for b in range(6):
        for j in range(k):
            assert auto.table[:, b * k + j].tolist() == ref.rules[b][j], (b, j)
        assert len({tuple(r) for r in ref.rules[b]}) == k  # distinct within a block
    for p in range(1, 6):  # block b does not depend on P: the instances are nested
        assert (random_blocks(n, k, p, seed).table == auto.table[:, : p * k]).all()


def test_modadd_blocks_are_the_reference_draws():
    for p, seed in [(2, 0), (3, 0), (3, 5), (7, 1)]:
        ref, auto = ref_modadd_blocks(p, 5, seed), modadd_blocks(p, 5, seed)
        for b in range(5):
            for j in range(p):
                assert auto.table[:, b * p + j].tolist() == ref.rules[b][j]
        assert auto.group is not None
        assert (modadd_blocks(p, 3, seed).table == auto.table[:, : 3 * p]).all()


def test_p1_random_block_is_the_shared_rule_automaton_when_its_symbols_are_distinct():
    """The same stream as random_automaton: equal tables whenever that draw has no repeat; a repeat
    (which would make a position's symbol irrelevant) is drawn again here."""
    equal = differ = 0
    for seed in range(40):
        shared = random_automaton(3, 2, seed)
        block = random_blocks(3, 2, 1, seed)
        if (shared.table[:, 0] != shared.table[:, 1]).any():
            assert (block.table == shared.table).all(), seed
            equal += 1
        else:
            assert (block.table[:, 0] != block.table[:, 1]).any(), seed
            differ += 1
    assert equal > 20 and differ > 0  # both cases occur at n = 3, k = 2 (a repeat has probability 1/6)


# ----------------------------------------------------------------------------- the task and the env
CONFIGS = st.one_of(
    st.fixed_dictionaries({"automaton": st.just("random"), "n": st.integers(2, 5), "k": st.integers(1, 2),
                           "automaton_seed": st.integers(0, 2**32)}),
    st.fixed_dictionaries({"automaton": st.just("modadd"), "n": st.integers(2, 5),
                           "automaton_seed": st.integers(0, 2**32)}),
)


def _ref_of(problem, kwargs, relabel_seed) -> RefPerStep:
    """The reference: drawn independently (no relabelling), or read from the task's data (relabelled)."""
    task = problem.task
    if relabel_seed is not None:
        return RefPerStep.of(task)
    n, seed = kwargs["n"], kwargs["automaton_seed"]
    ref = (ref_modadd_blocks(n, task.period, seed) if kwargs["automaton"] == "modadd"
           else ref_random_blocks(n, kwargs["k"], task.period, seed))
    view = RefPerStep.of(task)
    assert (view.rules, view.tokens) == (ref.rules, ref.tokens)  # the blocks are the reference's draws
    return ref


def _ref_reward(kind, ref, xs, ys_before, action, m):
    ys = ys_before + [action]
    done = len(ys) == m
    s = ref_ps_run(ref, xs)
    if kind == "final":
        return 1.0 if done and ys[-1] == s[-1] else 0.0
    if kind == "full":
        return 1.0 if done and ys == s else 0.0
    return (1.0 / m) if action == ref_ps_clean_next(ref, xs, ys_before) else 0.0


@given(config=CONFIGS, m=st.integers(1, 7), which=st.integers(0, 2), relabel_seed=st.one_of(st.none(), st.integers(0, 99)),
       eta=st.floats(0, 1), law=st.sampled_from(LAW_NAMES), reward=st.sampled_from(["final", "full", "dense"]),
       seed=st.integers(0, 2**31), p_clean=st.sampled_from([0.0, 0.5, 0.9, 1.0]))
@settings(max_examples=40, deadline=None)
def test_episodes_and_oracle_rows_match_reference(config, m, which, relabel_seed, eta, law, reward, seed, p_clean):
    """Observations, rewards, every info key and the oracle's rows, step by step, for P in {1, 2, m}."""
    period = periods(m)[min(which, len(periods(m)) - 1)]
    env = gym.make("NoisyPerStepAutomaton-v0", m=m, period=period, eta=eta, law=law, reward=reward,
                   relabel_seed=relabel_seed, **config)
    u = env.unwrapped
    assert u.period == period and u.n == config["n"]
    ref = _ref_of(u.problem, config, relabel_seed)
    rnd = random.Random(seed)
    obs, info = env.reset(seed=seed)
    assert env.observation_space.contains(obs) and info == {"step": 0, "clean_so_far": True}
    xs, ys = [int(v) for v in obs[:m]], []
    assert all(x in ref.tokens[t % period] for t, x in enumerate(xs))  # each position its block's tokens
    for t in range(m):
        probs = u.expert.probs(obs)
        np.testing.assert_allclose(probs, ref_ps_probs(law, eta, ref, xs, ys), atol=1e-12)
        np.testing.assert_array_equal(u.clean_expert.probs(obs), ref_ps_probs("clean", 0.0, ref, xs, ys))
        clean = ref_ps_clean_next(ref, xs, ys)
        action = clean if rnd.random() < p_clean else rnd.randrange(ref.n)
        obs, r, term, trunc, info = env.step(action)
        want = _ref_reward(reward, ref, xs, ys, action, m)
        ys = ys + [action]
        assert r == pytest.approx(want, abs=1e-12) and term == (t == m - 1) and trunc is False
        assert info["clean_so_far"] == (ys == ref_ps_run(ref, xs)[: t + 1])
        if term:
            assert {k: info[k] for k in END_KEYS} == ref_ps_metrics(ref, xs, ys)


def _chains(ref: RefPerStep, m: int, count: int, rnd: random.Random, sep: int):
    """Prompts (each position its block's tokens) and complete chains of mixed kinds."""
    pairs = []
    for _ in range(count):
        xs = [rnd.choice(ref.tokens[t % ref.period]) for t in range(m)]
        s = ref_ps_run(ref, xs)
        kind = rnd.choice(["clean", "slip", "random"])
        if kind == "clean":
            ys = list(s)
        elif kind == "random":
            ys = [rnd.randrange(ref.n) for _ in range(m)]
        else:  # one wrong token, carried forward by the clean expert
            i = rnd.randrange(m)
            ys = list(s[:i]) + [(s[i] + rnd.randrange(1, ref.n)) % ref.n]
            while len(ys) < m:
                ys.append(ref_ps_clean_next(ref, xs, ys))
        pairs.append((xs, ys))
    prompts = np.array([xs + [sep] for xs, _ in pairs], dtype=np.int64)
    return pairs, prompts, np.array([ys for _, ys in pairs], dtype=np.int64)


@given(config=CONFIGS, m=st.integers(1, 7), which=st.integers(0, 2), eta=st.floats(0, 1),
       law=st.sampled_from(LAW_NAMES), seed=st.integers(0, 2**31))
@settings(max_examples=30, deadline=None)
def test_along_functions_rows_and_metrics_match_reference_numpy_and_torch(config, m, which, eta, law, seed):
    period = periods(m)[min(which, len(periods(m)) - 1)]
    problem = make_problem("NoisyPerStepAutomaton-v0", m=m, period=period, eta=eta, law=law, **config)
    task = problem.task
    ref = _ref_of(problem, config, None)
    pairs, prompts, chain = _chains(ref, m, 12, random.Random(seed), task.sep_token)
    for backend in ("numpy", "torch"):
        p, c = (prompts, chain) if backend == "numpy" else (torch.as_tensor(prompts), torch.as_tensor(chain))
        clean, err = task.clean_along(p, c), task.error_along(p, c)
        rows = problem.expert.probs_along(p, c)
        metrics = task.metrics(p, c)
        for i, (xs, ys) in enumerate(pairs):
            assert clean[i].tolist() == [ref_ps_clean_next(ref, xs, ys[:t]) for t in range(m)]
            assert err[i].tolist() == [ref_ps_has_error(ref, xs, ys[:t]) for t in range(m)]
            np.testing.assert_allclose(np.asarray(rows[i], dtype=float),
                                       [ref_ps_probs(law, eta, ref, xs, ys[:t]) for t in range(m)], atol=1e-6)
            assert {k: metrics[k][i].item() for k in END_KEYS} == ref_ps_metrics(ref, xs, ys)
        assert task.clean_chains(p).tolist() == [ref_ps_run(ref, xs) for xs, _ in pairs]


@pytest.mark.parametrize("automaton", ["random", "modadd"])
@pytest.mark.parametrize("relabel_seed", [None, 7])
def test_prompts_draw_each_position_from_its_block_uniformly(automaton, relabel_seed):
    problem = make_problem("NoisyPerStepAutomaton-v0", automaton=automaton, m=6, period=3, relabel_seed=relabel_seed)
    task = problem.task
    tokens = task.block_tokens
    assert sorted(tokens.reshape(-1).tolist()) == list(range(task.k))
    for prompts in (task.sample_prompts(np.random.default_rng(0), 6000),
                    task.sample_prompts(torch.Generator().manual_seed(0), 6000).numpy()):
        assert (prompts[:, 6] == task.sep_token).all()
        for t in range(6):
            col = prompts[:, t]
            counts = [int((col == x).sum()) for x in tokens[t % 3]]
            assert sum(counts) == 6000, t  # only the block's own tokens
            assert stats.chisquare(counts).pvalue > ALPHA
    # n prompts at once equal n drawn one at a time (the native vector env relies on it)
    a = task.sample_symbols(np.random.default_rng(3), 5)
    rng = np.random.default_rng(3)
    assert (a == np.concatenate([task.sample_symbols(rng, 1) for _ in range(5)])).all()


def test_validate_obs_refuses_a_symbol_of_another_block():
    task = make_problem("NoisyPerStepAutomaton-v0", m=3).task  # blocks {0, 1}, {2, 3}, {4, 5}
    ok = task.observe(np.array([[0, 3, 4, task.sep_token]]), np.zeros((1, 0), np.int64))
    task.validate_obs(ok)
    bad = ok.copy()
    bad[0, 1] = 0
    with pytest.raises(ValueError, match=r"position 1 must be one of block 1's tokens \[2, 3\]"):
        task.validate_obs(bad)
    with pytest.raises(ValueError, match="block 1"):
        make_problem("NoisyPerStepAutomaton-v0", m=3).expert.probs(bad[0])


@pytest.mark.parametrize("kwargs,match", [
    ({"period": 0}, r"`period` must be an integer in \[1, m\]"),
    ({"m": 3, "period": 4}, r"\[1, m\] = \[1, 3\]"),
    ({"period": True}, "`period`"),
    ({"n": 2, "k": 3}, "n = 2 states have only 2"),
    ({"automaton": "modadd", "k": 2}, "k = n = p"),
    ({"automaton": "s5"}, "unknown `automaton` `s5` for per-step rules"),
    ({"m": 600, "k": 2}, "exceed the 1024"),
    ({"kappa": 0.5}, "kappa"),
])
def test_bad_kwargs_raise_with_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_problem("NoisyPerStepAutomaton-v0", **kwargs)


def test_ids_defaults_and_attributes():
    u = gym.make("NoisyPerStepAutomaton-v0").unwrapped
    assert (u.n, u.k, u.m, u.period, u.eta, u.law, u.automaton) == (3, 2, 5, 5, 0.5, "absorbing", "random")
    assert u.observation_space == gym.spaces.Box(0, 11, shape=(11,), dtype=np.int64)
    v = gym.make("NoisyPerStepModAdd-v0", period=2).unwrapped
    assert (v.n, v.k, v.period, v.automaton) == (3, 3, 2, "modadd")
    vec = gym.make_vec("NoisyPerStepAutomaton-v0", num_envs=2, period=1)
    assert isinstance(vec, NoisyPerStepAutomatonVectorEnv) and vec.period == 1
    assert "## Version History" in NoisyPerStepAutomatonVectorEnv.__doc__
    for heading in ("## Description", "## Action Space", "## Observation Space", "## Starting State", "## Rewards",
                    "## Episode End", "## Information", "## Arguments", "## Version History"):
        assert heading in type(u).__doc__, heading


# ----------------------------------------------------------------------------- P = 1: the shared-rule tasks
def _trace(env_id, seed, episodes, **kwargs):
    """Observations, oracle rows (noisy and clean), sampled expert actions, rewards and infos."""
    env = gym.make(env_id, **kwargs)
    u = env.unwrapped
    rnd = random.Random(seed)
    out = []
    obs, info = env.reset(seed=seed)
    out.append((obs.tolist(), info))
    for _ in range(episodes):
        done = False
        while not done:
            probs, clean = u.expert.probs(obs), u.clean_expert.probs(obs)
            sampled = int(u.expert.sample(obs))
            action = sampled if rnd.random() < 0.7 else rnd.randrange(env.action_space.n)
            obs, r, term, trunc, info = env.step(action)
            out.append((probs.tolist(), clean.tolist(), sampled, obs.tolist(), r, term, trunc, info))
            done = term or trunc
        obs, info = env.reset()
        out.append((obs.tolist(), info))
    return out


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("seed", [0, 3])
def test_p1_random_equals_noisy_automaton(law, seed):
    """Period 1 is NoisyAutomaton-v0 with the same n, k and automaton seed (a seed whose k
    permutations are distinct): observations, oracle rows, expert draws, rewards, infos."""
    kw = {"n": 5, "k": 4, "m": 6, "eta": 0.3, "law": law, "automaton_seed": seed}
    assert (random_automaton(5, 4, seed).table == random_blocks(5, 4, 1, seed).table).all()
    assert _trace("NoisyPerStepAutomaton-v0", seed, 4, period=1, **kw) == _trace("NoisyAutomaton-v0", seed, 4, **kw)


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("p", [3, 7])
def test_p1_modadd_equals_noisy_modadd(law, p):
    kw = {"m": 5, "eta": 0.3, "law": law}
    assert (_trace("NoisyPerStepModAdd-v0", 11, 4, period=1, n=p, **kw)
            == _trace("NoisyModAdd-v0", 11, 4, p=p, **kw))


def test_p1_tasks_agree_on_the_trainers_fast_path():
    a = make_problem("NoisyPerStepModAdd-v0", n=3, m=4, period=1, eta=0.4)
    b = make_problem("NoisyModAdd-v0", p=3, m=4, eta=0.4)
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    pa, pb = a.task.sample_prompts(g1, 64), b.task.sample_prompts(g2, 64)
    assert torch.equal(pa, pb)
    chain = torch.randint(0, 3, (64, 4), generator=g1)
    assert torch.equal(a.expert.probs_along(pa, chain), b.expert.probs_along(pb, chain))
    assert {k: v.tolist() for k, v in a.task.metrics(pa, chain).items()} == \
        {k: v.tolist() for k, v in b.task.metrics(pb, chain).items()}


# ----------------------------------------------------------------------------- closed forms
@pytest.mark.parametrize("automaton,n,k", [("random", 3, 2), ("random", 2, 2), ("modadd", 3, 3)])
@pytest.mark.parametrize("m", [3, 4])
@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("eta", [0.0, 0.3, 0.7])
def test_closed_forms_with_a_per_step_transition_equal_enumeration(automaton, n, k, m, law, eta):
    """P(final answer right) over every prompt and every chain (pure Python) for P in {1, 2, m}: the
    pair chain with per-step columns (and the offset chain for modadd blocks)."""
    for period in periods(m):
        kw = {"automaton": automaton, "n": n, "m": m, "period": period, "eta": eta, "law": law}
        if automaton == "random":
            kw["k"] = k
        task = make_problem("NoisyPerStepAutomaton-v0", **kw).task
        want = ref_ps_final_correct(law, eta, RefPerStep.of(task), m)
        assert theory.automaton_final_correct(task, law, eta, m, method="pair") == pytest.approx(want, abs=1e-12)
        assert theory.closed_forms(task, law, eta)["final_correct"] == pytest.approx(want, abs=1e-12)
        if automaton == "modadd":
            assert theory.automaton_final_correct(task, law, eta, m, method="offset") == pytest.approx(want, abs=1e-12)


def test_biased_final_correct_depends_on_the_per_step_transition():
    """Under `biased` the answer depends on which rules the prompt applies: the per-step chain differs from
    the chain over all of the automaton's symbols at every step (what a per-step-blind formula would give)."""
    task = make_problem("NoisyPerStepAutomaton-v0", n=4, k=2, m=4, law="biased", eta=0.3, automaton_seed=2).task
    per_step = theory.automaton_final_correct(task, "biased", 0.3, 4)
    blind = theory.final_correct_pair_chain(task.automaton, "biased", 0.3, 4, columns=np.arange(task.k)[None, :])
    assert per_step == pytest.approx(ref_ps_final_correct("biased", 0.3, RefPerStep.of(task), 4), abs=1e-12)
    assert abs(per_step - blind) > 1e-3


@pytest.mark.parametrize("law", LAW_NAMES)
def test_expert_rollouts_match_the_per_step_closed_forms(law):
    """Monte Carlo through the oracle (torch rollouts of 20k prompts): fully clean q^m, final correct."""
    problem = make_problem("NoisyPerStepAutomaton-v0", n=3, k=2, m=5, law=law, eta=0.4).with_rng(
        np.random.default_rng(0))
    task = problem.task
    gen = torch.Generator().manual_seed(1)
    prompts = task.sample_prompts(gen, 20_000)
    chain = problem.expert.rollout(prompts, generator=gen)
    met = task.metrics(prompts, chain)
    forms = theory.closed_forms(task, law, 0.4)
    for key, want in (("full_exact", forms["fully_clean"]), ("final_exact", forms["final_correct"])):
        k = int(met[key].sum())
        assert stats.binomtest(k, 20_000, want).pvalue > ALPHA, (key, k / 20_000, want)
    ok, msg = z_bound(met["correct_prefix_len"].double().tolist(), forms["correct_prefix"])
    assert ok, msg


def test_clean_prefix_rates_are_q_to_the_t():
    """Under `absorbing` the expert's prefix of length t is clean with probability q^t (the
    offline lower bound's quantity), position by position."""
    problem = make_problem("NoisyPerStepAutomaton-v0", n=3, k=2, m=6, eta=0.6).with_rng(np.random.default_rng(0))
    task = problem.task
    gen = torch.Generator().manual_seed(2)
    prompts = task.sample_prompts(gen, 40_000)
    chain = problem.expert.rollout(prompts, generator=gen)
    prefix = task.metrics(prompts, chain)["correct_prefix_len"]
    q = theory.step_clean_prob("absorbing", 0.6, 3)
    for t in range(1, 7):
        k = int((prefix >= t).sum())
        assert stats.binomtest(k, 40_000, q**t).pvalue > ALPHA, (t, k / 40_000, q**t)

