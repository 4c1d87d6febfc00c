"""The pure batched automaton core (numpy and torch) against the pure-Python reference."""

from __future__ import annotations

import copy
import itertools
import pickle
import random

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_expert_gym.tasks.automata import (
    make_automaton,
    modadd_automaton,
    random_automaton,
    relabel,
    relabelling,
    s5_automaton,
    s5_elements,
)
from noisy_expert_gym.tasks.automaton import AutomatonTask
from noisy_expert_gym.tasks.chain import chain_step
from noisy_expert_gym.tasks.modadd import ModAddTask
from tests.noisy_expert_gym import (
    RefAutomaton,
    random_auto_prefix,
    ref_auto_clean_next,
    ref_auto_has_error,
    ref_auto_metrics,
    ref_auto_obs,
    ref_modadd_automaton,
    ref_run,
    ref_s5_automaton,
)

SETTINGS = settings(max_examples=25, deadline=None)


@st.composite
def automata(draw, max_n: int = 6, max_k: int = 5):
    """Random automata of every kind: random permutation / DFA tables, modadd, S5 (generators),
    each possibly relabelled."""
    name = draw(st.sampled_from(["random", "random", "modadd", "s5"]))
    relabel_seed = draw(st.one_of(st.none(), st.integers(0, 2**40)))
    if name == "random":
        return make_automaton("random", n=draw(st.integers(2, max_n)), k=draw(st.integers(1, max_k)),
                              kind=draw(st.sampled_from(["permutation", "dfa"])),
                              automaton_seed=draw(st.integers(0, 2**40)), relabel_seed=relabel_seed)
    if name == "modadd":
        return make_automaton("modadd", n=draw(st.integers(2, max_n)), relabel_seed=relabel_seed)
    return make_automaton("s5", alphabet="generators", relabel_seed=relabel_seed)


def _prefix_batch(auto, m, n, seed, length=None):
    ref = RefAutomaton.of(auto)
    rnd = random.Random(seed)
    pairs = [random_auto_prefix(rnd, ref, m, length=length) for _ in range(n)]
    obs = np.array([ref_auto_obs(ref, xs, ys, m) for xs, ys in pairs], dtype=np.int64)
    return ref, pairs, obs


def _chain_batch(auto, m, n, seed):
    ref, pairs, obs = _prefix_batch(auto, m, n, seed, length=m)
    return ref, pairs, obs[:, : m + 1], obs[:, m + 1 :]


# ----------------------------------------------------------------------------- the automata
def test_s5_table_is_composition_of_permutations():
    for alphabet in ("all", "generators"):
        auto, ref = s5_automaton(alphabet), ref_s5_automaton(alphabet)
        assert auto.table.tolist() == ref.table and auto.start == ref.start == 0
        assert (auto.n, auto.k) == (120, 120 if alphabet == "all" else 2)
    perms = s5_elements()
    assert perms[0] == (0, 1, 2, 3, 4) and len(set(perms)) == 120
    # A word's final state is the composition of its permutations, applied left to right.
    rnd = random.Random(0)
    auto = s5_automaton()
    for _ in range(50):
        word = [rnd.randrange(120) for _ in range(rnd.randint(1, 12))]
        state = list(range(5))
        for x in word:
            state = [state[perms[x][i]] for i in range(5)]
        assert perms[auto.run(np.array([word]))[0, -1]] == tuple(state)


def test_s5_generators_generate_s5_and_the_group_is_non_abelian():
    auto = s5_automaton("generators")
    reached, frontier = {auto.start}, [auto.start]
    while frontier:
        s = frontier.pop()
        for x in range(auto.k):
            nxt = int(auto.table[s, x])
            if nxt not in reached:
                reached.add(nxt)
                frontier.append(nxt)
    assert len(reached) == 120
    mul = auto.group.mul
    assert (mul != mul.T).any()
    assert (mul[np.arange(120), auto.group.inv] == auto.start).all()


def test_modadd_automaton_is_addition():
    auto = modadd_automaton(7)
    assert auto.table.tolist() == ref_modadd_automaton(7).table and auto.start == 0
    assert auto.slip.tolist() == [(c + 1) % 7 for c in range(7)]


@pytest.mark.parametrize("kind", ["permutation", "dfa"])
def test_random_automaton_tables(kind):
    a = random_automaton(9, 4, seed=123, kind=kind)
    assert a.table.shape == (9, 4) and a.table.min() >= 0 and a.table.max() < 9 and a.start == 0
    assert (random_automaton(9, 4, seed=123, kind=kind).table == a.table).all()
    assert any((random_automaton(9, 4, seed=s, kind=kind).table != a.table).any() for s in range(124, 127))
    if kind == "permutation":
        assert a.is_permutation
        assert all(sorted(a.table[:, x].tolist()) == list(range(9)) for x in range(4))
    # DFAs: many seeds give a table that merges states.
    else:
        assert not all(random_automaton(9, 4, seed=s, kind="dfa").is_permutation for s in range(5))


def test_default_random_automaton_is_a_non_abelian_transitive_permutation_automaton():
    """NoisyAutomaton-v0's rule (n = k = 7, automaton_seed 0): every state is reachable and the
    symbols' permutations do not commute -- a rule unlike Z_7, at modadd's sizes."""
    auto = make_automaton()
    assert (auto.n, auto.k, auto.spec["kind"], auto.spec["automaton_seed"]) == (7, 7, "permutation", 0)
    assert auto.is_permutation and auto.group is None
    perms = [tuple(auto.table[:, x]) for x in range(auto.k)]
    group, frontier = {tuple(range(7))}, [tuple(range(7))]
    while frontier:
        g = frontier.pop()
        for p in perms:
            h = tuple(p[g[i]] for i in range(7))
            if h not in group:
                group.add(h)
                frontier.append(h)
    assert {g[0] for g in group} == set(range(7))  # transitive from the start state
    assert len(group) > 7  # not a regular (Z_7-like) action
    assert any(tuple(p[q[i]] for i in range(7)) != tuple(q[p[i]] for i in range(7)) for p in perms for q in perms)


@given(auto=automata(), seed=st.integers(0, 2**40))
@SETTINGS
def test_relabelled_copy_is_isomorphic(auto, seed):
    copy = relabel(auto, seed)
    sigma, tau = relabelling(auto.n, auto.k, seed)
    assert sorted(sigma.tolist()) == list(range(auto.n)) and sorted(tau.tolist()) == list(range(auto.k))
    assert copy.start == sigma[auto.start]
    for s, x in itertools.product(range(auto.n), range(auto.k)):
        assert copy.table[sigma[s], tau[x]] == sigma[auto.table[s, x]]
    for c in range(auto.n):
        assert copy.slip[sigma[c]] == sigma[auto.slip[c]]
    assert (copy.group is None) == (auto.group is None)
    assert copy.spec["relabel_seed"] == seed and (relabel(auto, seed).table == copy.table).all()


def test_relabelling_hides_the_rule():
    plain, copy = make_automaton("modadd"), make_automaton("modadd", relabel_seed=5)
    assert (plain.table != copy.table).any()
    assert "relabelled" in repr(copy) and "table" not in repr(copy)
    # Independent streams: the relabelling does not reuse the automaton's draws.
    a = make_automaton("random", automaton_seed=3)
    assert (relabelling(7, 7, 3)[0] != a.table[:, 0]).any()


@pytest.mark.parametrize("kwargs,match", [
    ({"automaton": "s6"}, "Did you mean `s5`"),
    ({"automaton": "randm"}, "Did you mean `random`"),
    ({"n": 1}, r"`n` must be an integer in \[2, 1024\]"),
    ({"n": 2000}, r"`n` must be an integer in \[2, 1024\]"),
    ({"n": 3.0}, "`n` must be an integer"),
    ({"k": 0}, r"`k` must be an integer in \[1, 1024\]"),
    ({"n": True}, "`n` must be an integer"),
    ({"kind": "dfaa"}, "Did you mean `dfa`"),
    ({"automaton": "s5", "kind": "dfa"}, "`kind` applies to automaton='random' only"),
    ({"automaton": "s5", "n": 7}, "n=120 states"),
    ({"automaton": "s5", "alphabet": "gens"}, "Did you mean `generators`"),
    ({"automaton": "s5", "alphabet": "generators", "k": 120}, "k=2"),
    ({"alphabet": "all"}, "`alphabet` applies to automaton='s5' only"),
    ({"automaton": "modadd", "n": 5, "k": 4}, "k = n = p"),
    ({"automaton": "modadd", "automaton_seed": 1}, "`automaton_seed` applies to automaton='random' only"),
    ({"automaton_seed": "0"}, r"`automaton_seed` must be a non-negative integer or None, got '0' \(str\)"),
    ({"automaton_seed": 1.5}, "`automaton_seed` must be a non-negative integer"),
    ({"automaton_seed": -1}, "`automaton_seed` must be a non-negative integer"),
    ({"relabel_seed": True}, r"`relabel_seed` must be a non-negative integer or None, got True \(bool\)"),
    ({"relabel_seed": [1]}, "`relabel_seed` must be a non-negative integer"),
])
def test_bad_options_raise_with_the_fix(kwargs, match):
    with pytest.raises(ValueError, match=match):
        make_automaton(**kwargs)


def test_tasks_pickle_and_copy():
    """Harness processes and Ray workers get tasks by pickling them."""
    task = AutomatonTask(make_automaton("s5", relabel_seed=3), m=5)
    task.clean_along(torch.zeros((2, 6), dtype=torch.long), torch.zeros((2, 5), dtype=torch.long))
    for other in (pickle.loads(pickle.dumps(task)), copy.deepcopy(task)):
        assert (other.automaton.table == task.automaton.table).all() and other.m == 5
        assert other.automaton.spec == task.automaton.spec and other.automaton.group is not None
        prompts = task.sample_prompts(np.random.default_rng(0), 4)
        assert (other.clean_chains(prompts) == task.clean_chains(prompts)).all()


def test_bad_task_arguments():
    with pytest.raises(ValueError, match="`m`"):
        AutomatonTask(make_automaton(), m=0)
    with pytest.raises(TypeError, match="Automaton"):
        AutomatonTask("s5", m=3)


# ----------------------------------------------------------------------------- the task core
def test_sizes_and_token_layout():
    task = AutomatonTask(make_automaton(n=3, k=9), m=4)
    assert (task.num_actions, task.sep_token, task.pad_token, task.vocab_size) == (3, 9, 10, 11)
    assert (task.prompt_len, task.horizon, task.obs_len) == (5, 4, 9)
    assert task.answer_mask.tolist() == [True] * 3
    task = AutomatonTask(make_automaton(n=12, k=2), m=4)
    assert (task.num_actions, task.sep_token, task.pad_token) == (12, 12, 13)
    s5 = AutomatonTask(make_automaton("s5"), m=31)
    assert (s5.num_actions, s5.sep_token, s5.pad_token, s5.obs_len) == (120, 120, 121, 63)
    prompts = s5.sample_prompts(np.random.default_rng(0), 4)
    assert prompts.shape == (4, 32) and (prompts[:, -1] == 120).all() and prompts[:, :-1].max() < 120


@given(auto=automata(), m=st.integers(1, 9), seed=st.integers(0, 2**31))
@SETTINGS
def test_prefix_functions_match_reference(auto, m, seed):
    task = AutomatonTask(auto, m)
    ref, pairs, obs = _prefix_batch(auto, m, 24, seed)
    task.validate_obs(obs)
    assert task.step_index(obs).tolist() == [len(ys) for _, ys in pairs]
    clean = [ref_auto_clean_next(ref, xs, ys) for xs, ys in pairs]
    assert task.clean_actions(obs).tolist() == clean
    assert task.slip_actions(obs).tolist() == [ref.slip[c] for c in clean]
    assert task.has_error(obs).tolist() == [ref_auto_has_error(ref, xs, ys) for xs, ys in pairs]
    assert task.true_states(obs).tolist() == [ref_run(ref, xs) for xs, _ in pairs]


@given(auto=automata(), m=st.integers(1, 9), seed=st.integers(0, 2**31))
@SETTINGS
def test_along_functions_and_metrics_match_reference(auto, m, seed):
    task = AutomatonTask(auto, m)
    ref, pairs, prompts, chain = _chain_batch(auto, m, 16, seed)
    clean_along, error_along = task.clean_along(prompts, chain), task.error_along(prompts, chain)
    assert clean_along.shape == error_along.shape == (16, m)
    assert task.valid_along(prompts, chain).all()
    for i, (xs, ys) in enumerate(pairs):
        assert clean_along[i].tolist() == [ref_auto_clean_next(ref, xs, ys[:t]) for t in range(m)]
        assert error_along[i].tolist() == [ref_auto_has_error(ref, xs, ys[:t]) for t in range(m)]
        assert task.slip_along(prompts, chain)[i].tolist() == [ref.slip[c] for c in clean_along[i].tolist()]
    assert task.clean_chains(prompts).tolist() == [ref_run(ref, xs) for xs, _ in pairs]
    metrics = task.metrics(prompts, chain)
    for i, (xs, ys) in enumerate(pairs):
        want = ref_auto_metrics(ref, xs, ys)
        assert {k: metrics[k][i].item() for k in want} == want


@given(auto=automata(), m=st.integers(1, 9), seed=st.integers(0, 2**31))
@SETTINGS
def test_numpy_and_torch_agree(auto, m, seed):
    task = AutomatonTask(auto, m)
    _, _, obs = _prefix_batch(auto, m, 16, seed)
    tobs = torch.as_tensor(obs)
    for fn in (task.step_index, task.clean_actions, task.has_error, task.slip_actions, task.true_states):
        out = fn(tobs)
        assert isinstance(out, torch.Tensor) and out.tolist() == fn(obs).tolist(), fn.__name__
    _, _, prompts, chain = _chain_batch(auto, m, 16, seed)
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(chain)
    for fn in (task.clean_along, task.error_along, task.slip_along, task.valid_along):
        out = fn(tp, tc)
        assert isinstance(out, torch.Tensor) and out.tolist() == fn(prompts, chain).tolist(), fn.__name__
    mt, mn = task.metrics(tp, tc), task.metrics(prompts, chain)
    assert {k: v.tolist() for k, v in mt.items()} == {k: v.tolist() for k, v in mn.items()}
    for t in range(m + 1):
        assert task.observe(tp, tc[:, :t]).tolist() == task.observe(prompts, chain[:, :t]).tolist()
    g = torch.Generator().manual_seed(seed)
    tprompts = task.sample_prompts(g, 64)
    assert tprompts.shape == (64, m + 1) and int(tprompts[:, :m].max()) < auto.k
    assert (tprompts[:, m] == task.sep_token).all()


@given(p=st.integers(2, 11), m=st.integers(1, 9), seed=st.integers(0, 2**31))
@SETTINGS
def test_modadd_automaton_core_equals_modadd(p, m, seed):
    """automaton='modadd' is NoisyModAdd's core, function by function, numpy and torch."""
    auto_task, mod_task = AutomatonTask(modadd_automaton(p), m), ModAddTask(p, m)
    for attr in ("num_actions", "sep_token", "pad_token", "vocab_size", "prompt_len", "horizon", "obs_len"):
        assert getattr(auto_task, attr) == getattr(mod_task, attr), attr
    assert (auto_task.answer_mask == mod_task.answer_mask).all()
    a = auto_task.sample_prompts(np.random.default_rng(seed), 16)
    b = mod_task.sample_prompts(np.random.default_rng(seed), 16)
    assert (a == b).all()
    rnd = random.Random(seed)
    ref = ref_modadd_automaton(p)
    pairs = [random_auto_prefix(rnd, ref, m) for _ in range(24)]
    obs = np.array([ref_auto_obs(ref, xs, ys, m) for xs, ys in pairs], dtype=np.int64)
    full = [random_auto_prefix(rnd, ref, m, length=m) for _ in range(16)]
    prompts = np.array([xs + [p] for xs, _ in full], dtype=np.int64)
    chain = np.array([ys for _, ys in full], dtype=np.int64)
    for backend in (np.asarray, torch.as_tensor):
        o, pr, ch = backend(obs), backend(prompts), backend(chain)
        for name in ("step_index", "clean_actions", "has_error", "slip_actions", "clean_chains"):
            assert getattr(auto_task, name)(o).tolist() == getattr(mod_task, name)(o).tolist(), name
        for name in ("clean_along", "error_along", "slip_along", "valid_along"):
            assert getattr(auto_task, name)(pr, ch).tolist() == getattr(mod_task, name)(pr, ch).tolist(), name
        ma, mm = auto_task.metrics(pr, ch), mod_task.metrics(pr, ch)
        assert {k: v.tolist() for k, v in ma.items()} == {k: v.tolist() for k, v in mm.items()}
    for reward in ("final", "full", "dense"):
        actions = np.array([rnd.randrange(p) for _ in pairs])
        sa, sm = chain_step(auto_task, obs, actions, reward), chain_step(mod_task, obs, actions, reward)
        for x, y in zip(sa, sm, strict=True):
            if isinstance(x, dict):
                assert {k: v.tolist() for k, v in x.items()} == {k: v.tolist() for k, v in y.items()}
            else:
                assert x.tolist() == y.tolist()


@given(auto=automata(), m=st.integers(1, 9), seed=st.integers(0, 2**31),
       reward=st.sampled_from(["final", "full", "dense"]))
@SETTINGS
def test_chain_step_matches_reference(auto, m, seed, reward):
    task = AutomatonTask(auto, m)
    ref, pairs, obs = _prefix_batch(auto, m, 16, seed)
    rnd = random.Random(seed + 1)
    actions = np.array([rnd.randrange(auto.n) for _ in pairs], dtype=np.int64)
    before = obs.copy()
    new, rew, term, info = chain_step(task, obs, actions, reward)
    assert (obs == before).all(), "chain_step must not write into its input"
    for i, (xs, ys) in enumerate(pairs):
        a = int(actions[i])
        ys2 = ys + [a]
        assert new[i].tolist() == ref_auto_obs(ref, xs, ys2, m)
        done = len(ys2) == m
        s = ref_run(ref, xs)
        if reward == "final":
            want = 1.0 if done and ys2[-1] == s[-1] else 0.0
        elif reward == "full":
            want = 1.0 if done and ys2 == s else 0.0
        else:
            want = (a == ref_auto_clean_next(ref, xs, ys)) / m
        assert bool(term[i]) == done and rew[i] == pytest.approx(want, abs=1e-12)
        assert int(info["step"][i]) == len(ys2)
        assert bool(info["clean_so_far"][i]) == (ys2 == s[: len(ys2)])
    # Every row at the same step: the scalar-t (column) path gives the same result.
    for t in range(m):
        _, _, same = _prefix_batch(auto, m, 8, seed + t, length=t)
        a = np.array([rnd.randrange(auto.n) for _ in range(8)], dtype=np.int64)
        x, y = chain_step(task, same, a, reward), chain_step(task, same, a, reward, t=t)
        assert all((u == v).all() for u, v in zip(x[:3], y[:3], strict=True))
        assert all((x[3][k] == y[3][k]).all() for k in x[3])


def test_validate_obs_errors():
    task = AutomatonTask(make_automaton(n=3, k=5), m=3)
    ref = RefAutomaton.of(task.automaton)
    good = np.array([ref_auto_obs(ref, [4, 0, 1], [1], 3)])
    task.validate_obs(good)
    with pytest.raises(ValueError, match=r"shape \(N, 7\)"):
        task.validate_obs(good[:, :-1])
    for bad_tok in (-1, 7, 100):
        bad = good.copy()
        bad[0, 4] = bad_tok
        with pytest.raises(ValueError, match=r"\[0, 6\]"):
            task.validate_obs(bad)
    bad = good.copy()
    bad[0, 0] = 5  # a symbol equal to the separator
    with pytest.raises(ValueError, match="input symbols"):
        task.validate_obs(bad)
    bad = good.copy()
    bad[0, 4] = 4  # a chain token that is a symbol, not a state
    with pytest.raises(ValueError, match=r"states in 0\.\.2"):
        task.validate_obs(bad)
    bad = np.array([ref_auto_obs(ref, [4, 0, 1], [], 3)])
    bad[0, 5] = 1  # a token after a pad
    with pytest.raises(ValueError, match="followed by padding"):
        task.validate_obs(bad)
