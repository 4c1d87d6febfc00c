"""Oracle access modes: the sample-only expert refuses every probability call (env, vector env,
make_problem), samples like the full one, sample_along's shape / draws / query counting,
majority_vote, and bad input."""

from __future__ import annotations

import random

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env
from scipy import stats

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym import make_problem
from noisy_expert_gym.contracts import Oracle
from noisy_expert_gym.oracle import ACCESS_MODES, Expert, ExpertAccessError, OracleBase
from noisy_expert_gym.sampling import majority_vote, sample_k
from noisy_expert_gym.tasks import ModAddTask
from noisy_expert_gym.utils import sample_categorical
from tests.noisy_expert_gym import (
    CORRUPTION_LAW_NAMES,
    LAW_NAMES,
    random_prefix,
    ref_majority,
    ref_probs,
)

ALPHA = 1e-4
ALL_LAWS = LAW_NAMES + CORRUPTION_LAW_NAMES


def _access(access: str) -> dict:
    """An access mode's constructor arguments (``topk`` needs its k)."""
    return {"access": access, "top_k": 2 if access == "topk" else None}


def _law_kw(law):
    return {"law": law, "eta": 0.6 if law == "biased" else 0.3,
            **({"kappa": 0.5, "corruption_seed": 4} if law in CORRUPTION_LAW_NAMES else {})}


def _planted(p, m, n, seed):
    rnd = random.Random(seed)
    pairs = [random_prefix(rnd, p, m, length=m) for _ in range(n)]
    return (pairs, np.array([xs + [p] for xs, _ in pairs], dtype=np.int64),
            np.array([ys for _, ys in pairs], dtype=np.int64))


def _sample_only_experts(**kw):
    """The noisy expert of a sample-only problem, however it is reached."""
    env = gym.make("NoisyModAdd-v0", access="sample", **kw)
    venv = gym.make_vec("NoisyModAdd-v0", num_envs=3, access="sample", **kw)
    problem = make_problem("NoisyModAdd-v0", access="sample", **kw)
    task = problem.task
    return {"env": (env.unwrapped.expert, env.unwrapped.clean_expert),
            "vector env": (venv.unwrapped.expert, venv.unwrapped.clean_expert),
            "make_problem": (problem.expert, problem.clean_expert),
            "env over a problem": (problem.make_env().unwrapped.expert, problem.clean_expert),
            "Expert": (Expert(task, access="sample", **{k: v for k, v in kw.items() if k not in ("m", "p")}),
                       Expert(task, clean=True))}


@pytest.mark.parametrize("law", ALL_LAWS)
def test_sample_mode_refuses_every_probability_call(law):
    m = 5
    for where, (expert, clean) in _sample_only_experts(m=m, **_law_kw(law)).items():
        assert expert.access == "sample" and clean.access == "full", where
        assert isinstance(expert, Oracle)
        task = expert.task
        prompts = task.sample_prompts(np.random.default_rng(0), 4)
        chain = task.true_sums(prompts)
        obs = task.observe(prompts, chain[:, :2])
        for backend in (np.asarray, torch.as_tensor):
            b = backend
            calls = [("probs", expert.probs, (b(obs),)), ("probs", expert.probs, (b(obs[0]),)),
                     ("log_prob", expert.log_prob, (b(obs), b(np.zeros(4, np.int64)))),
                     ("log_prob", expert.log_prob, (b(obs[0]), 1)),
                     ("probs_along", expert.probs_along, (b(prompts), b(chain)))]
            for op, call, args in calls:
                with pytest.raises(ExpertAccessError, match=rf"`{op}` is not available.*access='sample'.*sample_along"):
                    call(*args)
            assert expert.num_queries == 0  # a refused call costs nothing
            # what a sample-only expert does answer
            a = expert.sample(backend(obs))
            assert tuple(a.shape) == (4,)
            assert tuple(expert.sample_along(backend(prompts), backend(chain), k=3).shape) == (4, m, 3)
            assert tuple(expert.rollout(backend(prompts)).shape) == (4, m)
            expert.reset_queries()
        # the clean expert (evaluation only) keeps full access
        np.testing.assert_array_equal(clean.probs(obs).argmax(1), task.clean_actions(obs))
    assert issubclass(ExpertAccessError, RuntimeError)


def test_sample_mode_env_passes_the_checker_and_records_the_mode():
    env = gym.make("NoisyModAdd-v0", m=5, access="sample")
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.problem.kwargs["access"] == "sample"
    assert gym.make("NoisyModAdd-v0", m=5).unwrapped.expert.access == "full"
    assert "access='sample'" in repr(env.unwrapped.expert)


@pytest.mark.parametrize("bad", ["samples", "Full", "probs", "", None, 1])
def test_bad_access_raises_with_the_valid_values(bad):
    task = ModAddTask(7, 5)
    for make in (lambda: Expert(task, access=bad), lambda: gym.make("NoisyModAdd-v0", m=5, access=bad),
                 lambda: make_problem("NoisyModAdd-v0", m=5, access=bad)):
        with pytest.raises(ValueError, match="valid values: `full`, `sample`, `topk`"):
            make()
    with pytest.raises(ValueError, match="Did you mean `sample`"):
        Expert(task, access="samples")
    assert ACCESS_MODES == ("full", "sample", "topk")


@pytest.mark.parametrize("law", ALL_LAWS)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_sample_along_is_sampling_the_rows_of_probs_along(law, backend):
    """Full mode: the same draws as sample_categorical on probs_along's rows repeated k times; sample mode:
    the same draws as full mode from the same generator state."""
    p, m, n, k = 7, 6, 50, 4
    _, prompts, chain = _planted(p, m, n, seed=law)
    task = ModAddTask(p, m)
    full = Expert(task, **_law_kw(law))
    sample = Expert(task, access="sample", **_law_kw(law))
    if backend == "torch":
        prompts, chain = torch.as_tensor(prompts), torch.as_tensor(chain)
        gen = lambda: torch.Generator().manual_seed(11)
    else:
        gen = lambda: np.random.default_rng(11)
    probs = full.probs_along(prompts, chain)
    rows = probs[:, :, None, :].expand(n, m, k, p) if backend == "torch" else np.broadcast_to(
        probs[:, :, None, :], (n, m, k, p))
    want = sample_categorical(rows, gen())
    got_full = full.sample_along(prompts, chain, k, generator=gen())
    got_sample = sample.sample_along(prompts, chain, k, generator=gen())
    assert tuple(got_full.shape) == (n, m, k) and got_full.dtype in (np.int64, torch.int64)
    np.testing.assert_array_equal(np.asarray(got_full), np.asarray(want))
    np.testing.assert_array_equal(np.asarray(got_sample), np.asarray(want))
    # k = 1 is one draw per row of probs_along
    one = full.sample_along(prompts, chain, 1, generator=gen())
    np.testing.assert_array_equal(np.asarray(one[..., 0]), np.asarray(sample_categorical(probs, gen())))


@pytest.mark.parametrize("law", ALL_LAWS)
@pytest.mark.parametrize("access", ACCESS_MODES)
def test_sample_along_draws_follow_the_reference_distribution(law, access):
    """Chi-square on the offsets (draw - clean) mod p, pooled over planted prefixes, against the reference."""
    p, m, n, k = 5, 6, 200, 40
    pairs, prompts, chain = _planted(p, m, n, seed=f"d{law}")
    expert = Expert(ModAddTask(p, m), **_access(access), rng=np.random.default_rng(21), **_law_kw(law))
    draws = expert.sample_along(prompts, chain, k)
    kw = _law_kw(law)
    law_kw = {"kappa": kw["kappa"], "seed": kw["corruption_seed"]} if law in CORRUPTION_LAW_NAMES else {}
    want = np.zeros(p)
    counts = np.zeros(p)
    for (xs, ys), d in zip(pairs, draws, strict=True):
        for t in range(m):
            row = np.array(ref_probs(law, kw["eta"], p, xs, ys[:t], **law_kw))
            counts += np.bincount(d[t], minlength=p)
            want += k * row
    nz = want > 1e-9
    assert counts[~nz].sum() == 0
    assert stats.chisquare(counts[nz], want[nz] * counts.sum() / want.sum()).pvalue > ALPHA, (counts, want)


@pytest.mark.parametrize("access", ACCESS_MODES)
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_query_counting(access, backend):
    p, m, n = 7, 5, 6
    _, prompts, chain = _planted(p, m, n, seed=1)
    conv = torch.as_tensor if backend == "torch" else np.asarray
    prompts, chain = conv(prompts), conv(chain)
    expert = Expert(ModAddTask(p, m), law="corrupted", eta=0.2, **_access(access))
    for k in (1, 3, 9):
        expert.reset_queries()
        expert.sample_along(prompts, chain, k)
        assert expert.num_queries == k * n * m
    expert.reset_queries()
    expert.sample(expert.task.observe(prompts, chain[:, :2]))
    expert.rollout(prompts)
    assert expert.num_queries == n + n * m
    # views share nothing but the task and the law
    view = expert.with_rng(np.random.default_rng(0))
    assert view.num_queries == 0 and view.access == access


def test_generic_sample_along_for_other_oracles():
    """OracleBase.sample_along serves any full-access oracle with a probs_along (e.g. the LM teacher)."""

    class Stub(OracleBase):
        def __init__(self, task):
            super().__init__(np.random.default_rng(0))
            self.task = task

        def probs_along(self, prompts, chain):
            self.num_queries += chain.shape[0] * chain.shape[1]
            out = np.zeros(chain.shape + (self.task.num_actions,))
            out[..., 2] = 1.0
            return out

    task = ModAddTask(5, 4)
    stub = Stub(task)
    _, prompts, chain = _planted(5, 4, 3, seed=2)
    got = stub.sample_along(prompts, chain, 5)
    assert got.shape == (3, 4, 5) and (got == 2).all() and stub.num_queries == 5 * 3 * 4
    assert stub.access == "full"


@pytest.mark.parametrize("k", [0, -1, 2.5, True, "3", None])
def test_bad_k_raises(k):
    task = ModAddTask(7, 5)
    _, prompts, chain = _planted(7, 5, 2, seed=0)
    for access in ACCESS_MODES:
        with pytest.raises(ValueError, match=r"`k` \(samples per prefix\) must be an integer >= 1"):
            Expert(task, **_access(access)).sample_along(prompts, chain, k)


def test_sample_along_checks_its_chains():
    task = ModAddTask(7, 5)
    expert = Expert(task, access="sample")
    _, prompts, chain = _planted(7, 5, 4, seed=0)
    for bad_prompts, bad_chain in ((prompts, chain[:, :-1]), (prompts[:1], chain), (prompts[:, :-1], chain)):
        with pytest.raises(ValueError):
            expert.sample_along(bad_prompts, bad_chain, 2)
    bad = chain.copy()
    bad[0, 0] = 7
    with pytest.raises(ValueError, match="chain tokens"):
        expert.sample_along(prompts, bad, 2)


# ----- majority_vote ------------------------------------------------------------------------

@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_majority_vote_lowest_equals_reference(backend):
    rng = np.random.default_rng(0)
    samples = rng.integers(0, 4, size=(30, 7, 5))
    got = majority_vote(torch.as_tensor(samples) if backend == "torch" else samples, 4, "lowest")
    assert tuple(got.shape) == (30, 7)
    want = np.array([[ref_majority(s, "lowest") for s in row] for row in samples])
    np.testing.assert_array_equal(np.asarray(got), want)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_majority_vote_random_ties_are_uniform_among_the_tied(backend):
    # every row ties tokens 1, 3 and 4 (two votes each); token 0 has one vote
    row = np.array([1, 3, 4, 1, 3, 4, 0])
    samples = np.tile(row, (30000, 1))
    if backend == "torch":
        got = majority_vote(torch.as_tensor(samples), 5, "random", generator=torch.Generator().manual_seed(0))
        got = got.numpy()
    else:
        got = majority_vote(samples, 5, "random", generator=np.random.default_rng(0))
    counts = np.bincount(got, minlength=5)
    assert counts[0] == counts[2] == 0
    assert stats.chisquare(counts[[1, 3, 4]]).pvalue > ALPHA, counts
    # no tie: the unique mode, whatever the rule
    samples = np.array([[2, 2, 0, 1, 2]])
    assert majority_vote(samples, 3, "random")[0] == majority_vote(samples, 3, "lowest")[0] == 2


def test_majority_vote_bad_input():
    with pytest.raises(ValueError, match="valid values: `random`, `lowest`"):
        majority_vote(np.zeros((2, 3), np.int64), 4, "first")
    with pytest.raises(ValueError, match="k >= 1"):
        majority_vote(np.zeros((2, 0), np.int64), 4)


def test_sample_k_matches_a_reference_draw():
    """sample_k's inverse CDF, draw by draw, against plain Python on the same uniforms."""
    rng = np.random.default_rng(3)
    probs = rng.dirichlet(np.ones(6), size=(8, 3))
    got = sample_k(probs, 4, np.random.default_rng(9))
    u = np.random.default_rng(9).random((8, 3, 4))
    for i in range(8):
        for j in range(3):
            for s in range(4):
                cdf = np.cumsum(probs[i, j])
                assert got[i, j, s] == min(int((u[i, j, s] > cdf).sum()), 5)



@pytest.mark.parametrize("env_id", ["NoisyAutomaton-v0", "NoisyDFA-v0", "NoisyS5-v0"])
@pytest.mark.parametrize("law", ["corrupted", "corrupted-absorbing"])
def test_the_state_tracking_family_takes_the_corruption_laws_and_sample_access(env_id, law):
    """The laws and the access mode are task-generic: the automaton family builds them too, and a
    sample-only expert refuses every probability call there as well."""
    problem = make_problem(env_id, m=4, law=law, eta=0.3, kappa=0.5, corruption_seed=9, access="sample")
    full = make_problem(env_id, m=4, law=law, eta=0.3, kappa=0.5, corruption_seed=9)
    prompts = problem.task.sample_prompts(np.random.default_rng(0), 8)
    chain = problem.clean_expert.rollout(prompts)
    assert problem.expert.access == "sample" and problem.clean_expert.access == "full"
    for call in (lambda: problem.expert.probs_along(prompts, chain),
                 lambda: problem.expert.probs(problem.task.observe(prompts, chain[:, :1]))):
        with pytest.raises(ExpertAccessError, match="access='sample'"):
            call()
    # The same hidden law in full access: the clean token keeps 1 - eta + eta (1 - kappa) / A.
    rows = full.expert.probs_along(prompts, chain)  # the clean chain: no error yet at any prefix
    clean = full.task.clean_along(prompts, chain)
    a = full.task.num_actions
    expect = 1 - 0.3 + 0.3 * 0.5 / a
    assert np.allclose(np.take_along_axis(rows, clean[..., None], -1)[..., 0], expect)
    assert problem.expert.sample_along(prompts, chain, 3).shape == (8, 4, 3)
