"""Every public object of the env layer pickles and deep-copies, and the copy behaves as the original.

The kind of fault (gym#1866, Gymnasium#292): an attribute that cannot be pickled (a ``mappingproxy``,
a lambda) makes ``pickle.dumps(env)`` and ``copy.deepcopy(env)`` raise; or one that ``deepcopy``
shares instead of copying (a lambda reading the original env's generator) makes the copy draw from
the original. Each test round-trips by ``pickle`` and by ``copy.deepcopy`` and compares what the copy
does with what the original does from the same state: same resets, steps, rewards, infos and expert
draws, for every registered id.
"""

from __future__ import annotations

import copy
import pickle

import gymnasium as gym
import numpy as np
import pytest

import noisy_expert_gym
from noisy_expert_gym import make_problem
from noisy_expert_gym.problems import family_of

ALL_IDS = sorted(noisy_expert_gym.ENV_IDS)
VECTOR_IDS = [i for i in ALL_IDS if family_of(i).vector_entry_point]
COPIES = {"pickle": lambda o: pickle.loads(pickle.dumps(o)), "deepcopy": copy.deepcopy}


@pytest.fixture(autouse=True)
def gsm8k_fixture_data(tmp_path_factory, monkeypatch):
    """NoisyGSM8K-v* read the project's own small GSM-style fixture (never the real data)."""
    from noisy_expert_gym.tasks.gsm8k.data import write_example_data

    monkeypatch.setenv("NEG_GSM8K_DIR", str(write_example_data(tmp_path_factory.mktemp("gsm8k"))))


def _trace(env, steps: int, seed: int | None = None) -> list:
    """What `env` does over `steps` expert-driven steps (reset first with `seed`, unless None): every
    observation, reward, flag and info, and the expert's draws (from the env's own generator)."""
    expert = env.unwrapped.expert
    out = []
    if seed is not None:
        obs, info = env.reset(seed=seed)
        out.append((obs.tolist(), info))
    obs = env.unwrapped._obs
    for _ in range(steps):
        action = int(expert.sample(obs))
        obs, reward, term, trunc, info = env.step(action)
        out.append((action, obs.tolist(), reward, term, trunc, info))
        if term or trunc:
            obs, info = env.reset()
            out.append((obs.tolist(), info))
    return out


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_a_fresh_env_copies_and_behaves_the_same(env_id, how):
    env = gym.make(env_id)
    twin = COPIES[how](env)
    assert type(twin.unwrapped) is type(env.unwrapped) and twin.unwrapped.problem.kwargs == env.unwrapped.problem.kwargs
    assert _trace(twin, 12, seed=3) == _trace(env, 12, seed=3)


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_an_env_copied_mid_episode_goes_on_as_the_original_on_its_own_generator(env_id, how):
    """The copy holds the episode and the generator's state; stepping it first leaves the original's
    draws unchanged (a shared generator would shift them)."""
    env = gym.make(env_id).unwrapped
    _trace(env, 2, seed=5)
    twin = COPIES[how](env)
    assert twin.expert is not env.expert and twin.np_random is not env.np_random
    assert _trace(twin, 10) == _trace(env, 10)


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("env_id", VECTOR_IDS)
def test_the_native_vector_env_copies(env_id, how):
    vec = make_problem(env_id).make_vec(num_envs=4)
    vec.reset(seed=1)
    twin = COPIES[how](vec)

    def run(v):
        actions = np.random.default_rng(0).integers(0, v.single_action_space.n, (40, 4))
        out = []
        for a in actions:  # through episode ends and autoresets (prompts from each sub-env's generator)
            obs, rew, term, trunc, _ = v.step(a)
            out.append((obs.tolist(), rew.tolist(), term.tolist(), trunc.tolist()))
        obs, _ = v.reset()
        return out, v.expert.sample(obs).tolist()  # the expert draws from sub-env 0's generator

    assert run(twin) == run(vec)


@pytest.mark.parametrize("how", COPIES)
@pytest.mark.parametrize("env_id", ALL_IDS)
def test_problems_and_their_experts_copy(env_id, how):
    """A problem (kwargs still read-only) and its seeded experts: the copy answers as the original."""
    problem = make_problem(env_id).with_rng(np.random.default_rng(7))
    twin = COPIES[how](problem)
    assert (twin.env_id, dict(twin.kwargs), twin.kwargs) == (problem.env_id, dict(problem.kwargs), problem.kwargs)
    with pytest.raises(TypeError):
        twin.kwargs["eta"] = 0.5  # type: ignore[index]
    prompts = problem.task.sample_prompts(np.random.default_rng(0), 3)
    obs = problem.task.observe(prompts, np.zeros((3, 0), np.int64))
    alone = COPIES[how](problem.expert)  # an expert on its own, at the generator's current state

    def answers(p):  # the noisy and the clean expert share the problem's generator
        return [x.tolist() for x in (p.expert.probs(obs), p.expert.sample(obs), p.clean_expert.probs(obs),
                                     p.clean_expert.sample(obs), p.expert.sample(obs))]

    copied = answers(twin)
    assert copied == answers(problem)
    assert alone.sample(obs).tolist() == copied[1]
    assert _trace(twin.make_env(), 6, seed=2) == _trace(problem.make_env(), 6, seed=2)


@pytest.mark.parametrize("how", COPIES)
def test_the_sb3_vec_env_copies(how):
    from noisy_expert_gym.bridges.sb3 import make_sb3_vec_env

    vec = make_sb3_vec_env("NoisyModAdd-m3-v0", num_envs=3)
    vec.seed(4)
    vec.reset()
    twin = COPIES[how](vec)

    def run(v):
        out = []
        for a in np.random.default_rng(0).integers(0, 7, (8, 3)):
            obs, rew, done, infos = v.step(a)
            out.append((obs.tolist(), rew.tolist(), done.tolist(), [sorted(i) for i in infos]))
        return out

    assert run(twin) == run(vec)


@pytest.mark.parametrize("how", COPIES)
def test_a_language_model_teacher_env_copies(how, tmp_path):
    """GSM-8K with a Hugging Face teacher and tokenizer (a tiny local GPT-2: no download)."""
    pytest.importorskip("transformers")
    from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS
    from tests.noisy_expert_gym.test_gsm8k_hf import save_teacher

    d = save_teacher(tmp_path / "teacher")
    env = gym.make("NoisyGSM8K-v1", problems=EXAMPLE_PROBLEMS["test"], expert=f"hf:{d}", max_new_tokens=80)
    _trace(env, 2, seed=1)
    twin = COPIES[how](env)
    assert _trace(twin, 5) == _trace(env, 5)
