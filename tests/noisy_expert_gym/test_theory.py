"""Closed forms of noisy-expert rollouts: brute force and Monte Carlo against theory.py."""

from __future__ import annotations

import itertools
import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from scipy import stats

import noisy_expert_gym
from noisy_expert_gym import theory
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import AutomatonTask, ModAddTask, make_automaton
from tests.noisy_expert_gym import (
    LAW_NAMES,
    RefAutomaton,
    enumerate_auto_rollouts,
    enumerate_rollouts,
    ref_auto_metrics,
    ref_metrics,
    ref_run,
    z_bound,
)

#: Significance level of the Monte-Carlo tests (binomial tests and z-bounds).
ALPHA = 1e-4


def test_design_example_absorbing_p7_m31_eta02():
    # docs/design.md §2.5: about 0.3% of expert trajectories, (0.8 + 0.2/7)^31, are fully clean.
    got = theory.prob_fully_clean("absorbing", 0.2, 7, 31)
    assert got == pytest.approx((0.8 + 0.2 / 7) ** 31, rel=1e-12)
    assert 0.0025 < got < 0.0035


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("p,m", [(2, 1), (2, 6), (3, 4), (5, 3), (4, 4)])
@pytest.mark.parametrize("eta", [0.0, 0.2, 0.6, 1.0])
def test_closed_forms_equal_brute_force(law, p, m, eta):
    """Enumerate all p^m chains with their probabilities (slow pure-Python reference)."""
    xs = [random.Random(f"{p}{m}").randrange(p) for _ in range(m)]
    full = final = prefix = total = 0.0
    for ys, prob in enumerate_rollouts(law, eta, p, xs):
        met = ref_metrics(xs, ys, p)
        total += prob
        full += prob * met["full_exact"]
        final += prob * met["final_exact"]
        prefix += prob * met["correct_prefix_len"]
    assert total == pytest.approx(1.0, abs=1e-12)
    assert theory.prob_fully_clean(law, eta, p, m) == pytest.approx(full, abs=1e-12)
    assert theory.prob_final_correct(law, eta, p, m) == pytest.approx(final, abs=1e-12)
    assert theory.expected_correct_prefix(law, eta, p, m) == pytest.approx(prefix, abs=1e-12)


def test_final_correct_limits():
    # eta = 0: always right; absorbing/mixture at eta = 1 are uniform: 1/p.
    for law in LAW_NAMES:
        assert theory.prob_final_correct(law, 0.0, 7, 31) == pytest.approx(1.0)
    assert theory.prob_final_correct("mixture", 1.0, 7, 31) == pytest.approx(1 / 7)
    assert theory.prob_final_correct("absorbing", 1.0, 7, 31) == pytest.approx(1 / 7)
    # biased at eta = 1 adds exactly m slips of +1: right iff p divides m.
    assert theory.prob_final_correct("biased", 1.0, 7, 14) == pytest.approx(1.0)
    assert theory.prob_final_correct("biased", 1.0, 7, 13) == pytest.approx(0.0)


@pytest.mark.parametrize("bad", [{"law": "absorbin"}, {"eta": 1.2}])
def test_theory_rejects_bad_input(bad):
    kw = {"law": "absorbing", "eta": 0.1, **bad}
    with pytest.raises(ValueError):
        theory.prob_final_correct(kw["law"], kw["eta"], 7, 5)
    with pytest.raises(ValueError):
        theory.prob_fully_clean(kw["law"], kw["eta"], 7, 5)


def _check_mc(law, eta, p, m, full, final, prefix):
    """Binomial tests (fractions) and a z-bound (mean prefix) at ALPHA against theory."""
    n = len(full)
    k_full = int(np.sum(full))
    k_final = int(np.sum(final))
    p_full = theory.prob_fully_clean(law, eta, p, m)
    p_final = theory.prob_final_correct(law, eta, p, m)
    assert stats.binomtest(k_full, n, p_full).pvalue > ALPHA, (k_full / n, p_full)
    assert stats.binomtest(k_final, n, p_final).pvalue > ALPHA, (k_final / n, p_final)
    ok, msg = z_bound([float(v) for v in prefix], theory.expected_correct_prefix(law, eta, p, m))
    assert ok, msg


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_expert_rollouts_match_theory(law, backend):
    p, m, eta, n = 5, 8, 0.15 if law != "biased" else 0.6, 4000
    task = ModAddTask(p, m)
    expert = Expert(task, law=law, eta=eta, rng=np.random.default_rng(2024))
    prompts = task.sample_prompts(np.random.default_rng(7), n)
    if backend == "torch":
        gen = torch.Generator().manual_seed(3)
        chains = expert.rollout(torch.as_tensor(prompts), generator=gen)
        chains = chains.numpy()
    else:
        chains = expert.rollout(prompts)
    assert chains.shape == (n, m) and chains.min() >= 0 and chains.max() < p
    sums = np.cumsum(prompts[:, :m], axis=1) % p  # independent of the core
    ok = chains == sums
    prefix = np.where(ok.all(1), m, (~ok).argmax(1))
    _check_mc(law, eta, p, m, ok.all(1), ok[:, -1], prefix)
    # spot-check the env's metric definitions on these rollouts
    for i in range(20):
        met = ref_metrics(prompts[i, :m].tolist(), chains[i].tolist(), p)
        assert met["correct_prefix_len"] == prefix[i] and met["full_exact"] == ok[i].all()


@pytest.mark.parametrize("law", LAW_NAMES)
def test_env_episodes_driven_by_expert_match_theory(law):
    """Episodes of the single env, actions sampled from its noisy expert, end metrics vs theory."""
    p, m, eta, n = 7, 4, 0.2 if law != "biased" else 0.6, 300
    env = gym.make("NoisyModAdd-v0", p=p, m=m, eta=eta, law=law)
    expert = env.unwrapped.expert
    full, final, prefix = [], [], []
    obs, _ = env.reset(seed=99)
    for _ in range(n):
        done = False
        while not done:
            obs, _, done, _, info = env.step(expert.sample(obs))
        full.append(info["full_exact"])
        final.append(info["final_exact"])
        prefix.append(info["correct_prefix_len"])
        obs, _ = env.reset()
    _check_mc(law, eta, p, m, full, final, prefix)


@pytest.mark.parametrize("law", LAW_NAMES)
def test_vector_env_episodes_driven_by_expert_match_theory(law):
    p, m, eta, n = 7, 31, 0.2 if law != "biased" else 0.3, 4000
    env = gym.make_vec("NoisyModAdd-v0", num_envs=n, p=p, m=m, eta=eta, law=law)
    obs, _ = env.reset(seed=5)
    for _ in range(m):
        obs, _, term, _, info = env.step(env.unwrapped.expert.sample(obs))
    assert term.all() and info["_full_exact"].all()
    _check_mc(law, eta, p, m, info["full_exact"], info["final_exact"], info["correct_prefix_len"])


# ----------------------------------------------------------------------------- state tracking
#: Tiny automata of every kind for brute force: (name, make_automaton kwargs, m).
TINY_AUTOMATA = [
    ("permutation", {"automaton": "random", "n": 3, "k": 2, "automaton_seed": 1}, 3),
    ("dfa", {"automaton": "random", "n": 3, "k": 2, "kind": "dfa", "automaton_seed": 4}, 3),
    ("dfa-k3", {"automaton": "random", "n": 2, "k": 3, "kind": "dfa", "automaton_seed": 0}, 4),
    ("modadd-relabelled", {"automaton": "modadd", "n": 3, "relabel_seed": 2}, 3),
    ("modadd", {"automaton": "modadd", "n": 2}, 4),
    ("s5-generators", {"automaton": "s5", "alphabet": "generators"}, 2),
]


def _brute_force(law, eta, auto, m):
    """P(fully clean), P(final correct), E[correct prefix] over all k^m prompts and all n^m chains."""
    ref = RefAutomaton.of(auto)
    full = final = prefix = total = 0.0
    prompts = list(itertools.product(range(ref.k), repeat=m))
    for xs in prompts:
        for ys, prob in enumerate_auto_rollouts(law, eta, ref, xs):
            met = ref_auto_metrics(ref, xs, ys)
            w = prob / len(prompts)
            total += w
            full += w * met["full_exact"]
            final += w * met["final_exact"]
            prefix += w * met["correct_prefix_len"]
    assert total == pytest.approx(1.0, abs=1e-10)  # sums of up to n^m * k^m terms
    return full, final, prefix


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("eta", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("name,kwargs,m", TINY_AUTOMATA, ids=[a[0] for a in TINY_AUTOMATA])
def test_automaton_closed_forms_equal_brute_force(name, kwargs, m, law, eta):
    auto = make_automaton(**kwargs)
    task = AutomatonTask(auto, m)
    full, final, prefix = _brute_force(law, eta, auto, m)
    forms = theory.closed_forms(task, law, eta)
    assert forms["fully_clean"] == pytest.approx(full, abs=1e-10)
    assert forms["final_correct"] == pytest.approx(final, abs=1e-10)
    assert forms["correct_prefix"] == pytest.approx(prefix, abs=1e-10)
    assert theory.final_correct_pair_chain(auto, law, eta, m) == pytest.approx(final, abs=1e-10)
    if auto.group is not None and (law != "biased" or name.startswith("modadd")):
        assert theory.final_correct_offset_chain(auto, law, eta, m) == pytest.approx(final, abs=1e-10)


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("p,m", [(3, 4), (7, 31)])
def test_modadd_closed_forms_are_the_automaton_family_forms(law, p, m):
    """theory's modadd functions (signatures and results unchanged) = the family's chains at modadd."""
    eta = 0.2 if law != "biased" else 0.6
    auto = make_automaton("modadd", n=p)
    want = theory.prob_final_correct(law, eta, p, m)
    assert theory.final_correct_pair_chain(auto, law, eta, m) == pytest.approx(want, abs=1e-12)
    assert theory.final_correct_offset_chain(auto, law, eta, m) == pytest.approx(want, abs=1e-12)
    relabelled = make_automaton("modadd", n=p, relabel_seed=9)
    assert theory.automaton_final_correct(relabelled, law, eta, m) == pytest.approx(want, abs=1e-12)
    forms = theory.closed_forms(ModAddTask(p, m), law, eta)
    assert forms["final_correct"] == want
    assert theory.closed_forms(AutomatonTask(auto, m), law, eta) == pytest.approx(forms, abs=1e-12)


@pytest.mark.parametrize("seed", range(4))
def test_permutation_automata_share_modadds_final_correct(seed):
    """Under `mixture` a permutation automaton keeps w = s and w != s alike, and under `absorbing` every
    write after the first error is uniform (any automaton): P(final) is modadd's with p = n."""
    m, eta = 9, 0.25
    for kind, laws in (("permutation", ("mixture", "absorbing")), ("dfa", ("absorbing",))):
        auto = make_automaton("random", n=5, k=3, kind=kind, automaton_seed=seed)
        for law in laws:
            want = theory.prob_final_correct(law, eta, 5, m)
            assert theory.final_correct_pair_chain(auto, law, eta, m) == pytest.approx(want, abs=1e-12)
    q = theory.step_clean_prob("absorbing", eta, 5)
    assert theory.prob_final_correct("absorbing", eta, 5, m) == pytest.approx(q**m + (1 - q ** (m - 1)) / 5)
    # A DFA that merges states heals slips: mixture's final answer is right more often.
    dfa = make_automaton("random", n=5, k=3, kind="dfa", automaton_seed=seed)
    assert not dfa.is_permutation
    assert theory.final_correct_pair_chain(dfa, "mixture", eta, m) > theory.prob_final_correct("mixture", eta, 5, m)


def test_automaton_theory_rejects_bad_input():
    s5 = make_automaton("s5")
    with pytest.raises(ValueError, match="Did you mean `pair`"):
        theory.automaton_final_correct(s5, "mixture", 0.1, 5, method="pairs")
    with pytest.raises(ValueError, match="not a left translation"):
        theory.final_correct_offset_chain(s5, "biased", 0.1, 5)
    with pytest.raises(ValueError, match="not a group"):
        theory.final_correct_offset_chain(make_automaton(), "mixture", 0.1, 5)
    with pytest.raises(ValueError, match="`m`"):
        theory.final_correct_pair_chain(make_automaton(), "mixture", 0.1, 0)
    with pytest.raises(ValueError, match="Did you mean `absorbing`"):
        theory.final_correct_pair_chain(make_automaton(), "absorbin", 0.1, 3)
    with pytest.raises(ValueError, match="n\\*n\\*k"):
        theory.final_correct_pair_chain(make_automaton("random", n=1024, k=1024), "mixture", 0.1, 3)
    with pytest.raises(TypeError, match="Automaton"):
        theory.automaton_final_correct("s5", "mixture", 0.1, 3)


#: Automata for Monte Carlo through the oracle and the envs: (env id, kwargs). The general DFA (pair
#: chain) and S5 (offset chain; pair chain for biased) run by default; the others with -m slow.
MC_CONFIGS = [
    ("NoisyDFA-v0", {"m": 8}),
    ("NoisyS5-v0", {"m": 6, "alphabet": "generators"}),
    pytest.param("NoisyAutomaton-v0", {"m": 8}, marks=pytest.mark.slow),
    pytest.param("NoisyAutomaton-v0", {"m": 7, "automaton": "modadd", "n": 5, "relabel_seed": 3},
                 marks=pytest.mark.slow),
]


def _auto_check_mc(task, law, eta, full, final, prefix):
    forms = theory.closed_forms(task, law, eta)
    n = len(full)
    assert stats.binomtest(int(np.sum(full)), n, forms["fully_clean"]).pvalue > ALPHA
    assert stats.binomtest(int(np.sum(final)), n, forms["final_correct"]).pvalue > ALPHA
    ok, msg = z_bound([float(v) for v in prefix], forms["correct_prefix"])
    assert ok, msg


@pytest.mark.parametrize("law", LAW_NAMES)
@pytest.mark.parametrize("env_id,kwargs", MC_CONFIGS, ids=["dfa", "s5-generators", "permutation", "modadd-relabelled"])
def test_automaton_rollouts_through_oracle_and_envs_match_theory(env_id, kwargs, law):
    """The oracle's own rollouts (numpy and torch), the single env and the vector env driven by the
    expert: fully clean, final correct and the correct prefix against the closed forms."""
    eta = 0.2 if law != "biased" else 0.6
    problem = noisy_expert_gym.make_problem(env_id, eta=eta, law=law, **kwargs)
    task, m = problem.task, problem.task.horizon
    ref = RefAutomaton.of(task.automaton)
    # the oracle's rollouts, numpy and torch
    for backend in ("numpy", "torch"):
        expert = problem.expert.with_rng(np.random.default_rng(11))
        prompts = task.sample_prompts(np.random.default_rng(12), 2000)
        if backend == "torch":
            chains = expert.rollout(torch.as_tensor(prompts), generator=torch.Generator().manual_seed(5)).numpy()
        else:
            chains = expert.rollout(prompts)
        runs = np.array([ref_run(ref, xs) for xs in prompts[:, :m].tolist()])  # independent of the core
        ok = chains == runs
        _auto_check_mc(task, law, eta, ok.all(1), ok[:, -1], np.where(ok.all(1), m, (~ok).argmax(1)))
    # the vector env, episodes driven by its expert
    vec = problem.make_vec(2000)
    obs, _ = vec.reset(seed=3)
    for _ in range(m):
        obs, _, term, _, info = vec.step(vec.unwrapped.expert.sample(obs))
    assert term.all()
    _auto_check_mc(task, law, eta, info["full_exact"], info["final_exact"], info["correct_prefix_len"])
    # the single env
    env = problem.make_env()
    full, final, prefix = [], [], []
    obs, _ = env.reset(seed=4)
    for _ in range(120):
        done = False
        while not done:
            obs, _, done, _, info = env.step(env.unwrapped.expert.sample(obs))
        full.append(info["full_exact"])
        final.append(info["final_exact"])
        prefix.append(info["correct_prefix_len"])
        obs, _ = env.reset()
    _auto_check_mc(task, law, eta, full, final, prefix)
