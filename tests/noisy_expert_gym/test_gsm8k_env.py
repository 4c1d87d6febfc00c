"""NoisyGSM8K-v1: env checker, determinism, episodes, rewards, info, rendering, bad inputs,
and (when present) the shared GSM-8K data."""

from __future__ import annotations

import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.tasks.gsm8k import (
    DEFAULT_MAX_NEW_TOKENS,
    EXAMPLE_PROBLEMS,
    GSM8KTask,
    write_example_data,
    write_jsonl,
)

ENV_ID = "NoisyGSM8K-v1"
H = 120
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "gsm8k"


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_example_data(tmp_path_factory.mktemp("gsm8k"))


def make(data_dir: Path, **kwargs: object) -> gym.Env:
    kwargs.setdefault("max_new_tokens", H)
    return gym.make(ENV_ID, data_dir=str(data_dir), **kwargs)


def run_episode(env: gym.Env, policy, seed: int | None = None, options: dict | None = None):
    obs, info = env.reset(seed=seed, options=options)
    trajectory = [obs]
    while True:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        trajectory.append(obs)
        if terminated or truncated:
            return np.array(trajectory), reward, terminated, truncated, info


def test_registered() -> None:
    assert ENV_ID in gym.registry and "NoisyGSM8K-v0" in gym.registry


@pytest.mark.filterwarnings("ignore:.*out of date")
def test_v0_equals_v1_with_the_builtin_tokenizers(data_dir: Path) -> None:
    runs = []
    for env_id in ("NoisyGSM8K-v0", ENV_ID):
        env = gym.make(env_id, data_dir=str(data_dir), max_new_tokens=H, eta=0.3, law="mixture")
        expert = env.unwrapped.expert
        runs.append(run_episode(env, lambda o, e=expert: int(e.sample(o)), seed=7))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]
    assert gym.make("NoisyGSM8K-v0", data_dir=str(data_dir), max_new_tokens=H).unwrapped.stop_on == "eos"


@pytest.mark.parametrize("kwargs", [{}, {"tokenizer": "byte", "law": "biased", "eta": 0.6},
                                    {"law": "mixture", "strip_annotations": False},
                                    {"answer_format": "boxed"}])
def test_env_checker(data_dir: Path, kwargs: dict) -> None:
    env = make(data_dir, **kwargs)
    check_env(env.unwrapped, skip_render_check=True)
    u = env.unwrapped
    assert env.action_space == gym.spaces.Discrete(u.task.num_actions)
    assert env.observation_space.shape == (u.task.prompt_len + H,)
    assert env.observation_space.dtype == np.int64


def test_two_rollouts_are_deterministic(data_dir: Path) -> None:
    runs = []
    for _ in range(2):
        env = make(data_dir, eta=0.3, law="mixture")
        expert = env.unwrapped.expert
        runs.append(run_episode(env, lambda o, e=expert: int(e.sample(o)), seed=123))
    assert np.array_equal(runs[0][0], runs[1][0]) and runs[0][1] == runs[1][1]


def test_clean_expert_solves_every_problem(data_dir: Path) -> None:
    env = make(data_dir, render_mode="ansi")
    u = env.unwrapped
    for i in range(u.task.num_problems):
        traj, reward, terminated, truncated, info = run_episode(
            env, lambda o: int(u.clean_expert.sample(o)), options={"problem": i})
        assert reward == 1.0 and terminated and not truncated
        assert info["on_reference_path"] and info["full_exact"] and info["num_errors"] == 0
        assert info["answer"] == info["gold"] == u.task.golds[i] and info["problem"] == i
        assert info["text"] == u.task.solutions[i] and info["length"] == info["step"] == len(traj) - 1
        frame = env.render()
        assert u.task.problems[i].question.strip() in frame and "<eos>" in frame


def test_wrong_answer_and_truncation(data_dir: Path) -> None:
    env = make(data_dir, max_new_tokens=60)
    u = env.unwrapped
    tok = u.task.tokenizer
    _, info = env.reset(seed=0)
    assert info == {"step": 0, "problem": info["problem"], "on_reference_path": True}
    text = tok.encode("The answer:\n#### 99999")
    for k, a in enumerate(text):
        _, reward, terminated, truncated, info = env.step(int(a))
        assert reward == 0.0 and not terminated and not truncated and info["step"] == k + 1
    assert not info["on_reference_path"]
    _, reward, terminated, truncated, info = env.step(u.task.eos_token)
    assert terminated and reward == 0.0 and info["answer"] == "99999" and info["num_errors"] >= 1
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    # Never writing EOS: truncated after max_new_tokens, reward from the text so far.
    env.reset(seed=0)
    space = int(tok.encode(" ")[0])
    for _ in range(59):
        _, reward, terminated, truncated, _ = env.step(space)
        assert not (terminated or truncated)
    _, reward, terminated, truncated, info = env.step(space)
    assert info["length"] == 60 and truncated and not terminated and reward == 0.0 and info["answer"] is None


def test_observation_layout_and_oracle_interface(data_dir: Path) -> None:
    env = make(data_dir)
    u = env.unwrapped
    obs, _ = env.reset(seed=5)
    p = u.task.prompt_len
    assert obs[p - 1] == u.task.sep_token and (obs[p:] == u.task.pad_token).all()
    assert set(np.unique(obs)) <= set(range(u.task.vocab_size))
    probs = u.expert.probs(obs)
    assert probs.shape == (u.task.num_actions,) and np.isclose(probs.sum(), 1.0)
    assert u.clean_expert.probs(obs).max() == 1.0
    batch = np.stack([obs, obs])
    assert u.expert.log_prob(batch, np.array([0, 1])).shape == (2,)
    prompts = u.task.sample_prompts(np.random.default_rng(0), 4)
    chains = u.task.clean_chains(prompts)
    assert u.expert.probs_along(prompts, chains).shape == (4, H, u.task.num_actions)
    u.expert.reset_queries()
    u.expert.rollout(prompts)
    assert 0 < u.expert.num_queries <= 4 * H


# ----- bad inputs -------------------------------------------------------------------

def test_missing_data_says_how_to_provide_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("NEG_GSM8K_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if `datasets` were not installed
    with pytest.raises(FileNotFoundError) as e:
        gym.make(ENV_ID)
    msg = str(e.value)
    assert "data_dir=" in msg and "NEG_GSM8K_DIR" in msg and "pip install datasets" in msg
    with pytest.raises(FileNotFoundError, match="has no test.jsonl"):
        gym.make(ENV_ID, data_dir=str(tmp_path), split="test")


def test_data_from_env_var_or_file(monkeypatch: pytest.MonkeyPatch, data_dir: Path, tmp_path: Path) -> None:
    monkeypatch.setenv("NEG_GSM8K_DIR", str(data_dir))
    env = gym.make(ENV_ID, split="test", max_new_tokens=H)
    assert env.unwrapped.task.num_problems == len(EXAMPLE_PROBLEMS["test"])
    one = write_jsonl(tmp_path / "mine.jsonl", EXAMPLE_PROBLEMS["train"][:2])
    assert gym.make(ENV_ID, data_dir=str(one), max_new_tokens=H).unwrapped.task.num_problems == 2
    env = gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"], max_new_tokens=H, subset=2, seed=3)
    assert env.unwrapped.task.num_problems == 2


def test_malformed_jsonl_names_the_line(tmp_path: Path) -> None:
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": "a\\n#### 1"}\n{"question": "q"}\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2"):
        gym.make(ENV_ID, data_dir=str(tmp_path))


@pytest.mark.parametrize(("kwargs", "error", "match"), [
    ({"split": "valid"}, ValueError, "unknown `split`"),
    ({"split": "tset"}, ValueError, "Did you mean `test`"),
    ({"max_new_tokens": 0}, ValueError, "max_new_tokens"),
    ({"max_new_tokens": -5}, ValueError, "max_new_tokens"),
    ({"eta": 1.5}, ValueError, "eta"),
    ({"law": "temperature"}, ValueError, "temperature"),
    ({"law": "absorbin"}, ValueError, "Did you mean `absorbing`"),
    ({"expert": "gpt"}, ValueError, "hf:<model name or local path>"),
    ({"expert": "refrence"}, ValueError, "Did you mean `reference`"),
    ({"render_mode": "rgb_array"}, ValueError, "render_mode"),
    ({"tokenizer": "bytes"}, ValueError, "unknown `tokenizer`"),
    ({"max_new_tokens": 10, "overflow": "error"}, ValueError, "does not fit"),
    ({"uniform_over": "txt"}, ValueError, "uniform_over"),
    ({"answer_format": "box"}, ValueError, "Did you mean `boxed`"),
    ({"dataset": "gsm"}, ValueError, "unknown `dataset`"),
    ({"stop_on": "turns"}, ValueError, "stop_on"),
])
@pytest.mark.filterwarnings("ignore:.*render_mode")  # gymnasium warns before the env raises
def test_bad_kwargs(data_dir: Path, kwargs: dict, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        make(data_dir, **kwargs)


def test_bad_actions_and_options(data_dir: Path) -> None:
    env = make(data_dir)
    with pytest.raises(RuntimeError, match="reset"):
        env.unwrapped.step(0)
    env.reset(seed=0)
    for bad in (-1, 97, 1.5, "a"):
        with pytest.raises(ValueError, match="Discrete"):
            env.step(bad)
    with pytest.raises(ValueError, match="problem"):
        env.reset(options={"problem": 99})


# ----- the shared GSM-8K data (skipped when absent) ---------------------------------------

@pytest.mark.skipif(not SHARED.is_dir(), reason="shared GSM-8K data not present")
def test_shared_data_default_horizon_fits_every_solution() -> None:
    # Annotations kept is the longest teacher text; overflow="error" proves nothing is dropped.
    train = GSM8KTask.from_split("train", SHARED, strip_annotations=False, overflow="error")
    assert train.num_problems == 7473 and train.horizon == DEFAULT_MAX_NEW_TOKENS
    test = GSM8KTask.from_split("test", SHARED, overflow="error")
    assert test.num_problems == 1319
    prompts = test.all_prompts()
    m = test.metrics(prompts, test.clean_chains(prompts))
    assert m["final_exact"].all() and m["full_exact"].all()  # every gold is extracted from its solution
    env = gym.make(ENV_ID, data_dir=str(SHARED), split="test", subset=3)
    _, reward, terminated, _, info = run_episode(env, lambda o: int(env.unwrapped.clean_expert.sample(o)), seed=0)
    assert reward == 1.0 and terminated and info["full_exact"]
    boxed = GSM8KTask.from_split("test", SHARED, overflow="error", answer_format="boxed")
    m = boxed.metrics(prompts, boxed.clean_chains(prompts))  # every \boxed{gold} is read back
    assert boxed.num_problems == 1319 and m["final_exact"].all()


@pytest.mark.parametrize("tokenizer", ["char", "byte"])
def test_stop_tokens_end_episodes_with_the_builtin_tokenizers(data_dir: Path, tokenizer: str) -> None:
    """`stop_tokens` (trl#6357, mlx-vlm#244): with a built-in tokenizer, as with a Hugging Face one, a stop
    token ends the episode (and the chain's text, masks and metrics); one it could never write is refused."""
    def expert_episode(**kw):
        env = make(data_dir, tokenizer=tokenizer, eta=0.0, **kw)
        return env.unwrapped.task, run_episode(env, env.unwrapped.expert.sample, seed=0)

    task, (traj, _, term, _, info) = expert_episode()
    assert term and "\n" in info["text"]
    newline = int(task.tokenizer.encode("\n")[0])
    for stops in ([newline], ["\n"]):
        task, (short, _, term, _, info) = expert_episode(stop_tokens=stops)
        assert task.eos_tokens == (task.eos_token, newline)
        assert term and len(short) < len(traj) and int(short[-1][task.prompt_len + len(short) - 2]) == newline
        assert info["text"] == task.texts(traj[-1][None, task.prompt_len:])[0].split("\n")[0]
    for bad in ([12345], [task.num_actions], ["ab"], [True]):
        with pytest.raises(ValueError, match="is not a token of the"):
            make(data_dir, tokenizer=tokenizer, stop_tokens=bad)

