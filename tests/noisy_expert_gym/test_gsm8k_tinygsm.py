"""TinyGSM (issue 16): the loader on fixtures the project writes itself (JSONL, JSONL.gz, the hub's
parquet layout), gold answers from `answer` or by static evaluation of `code`, the hub path
(a stand-in `datasets` module), clear errors, and an env over TinyGSM."""

from __future__ import annotations

import sys
import types
import warnings
from pathlib import Path

import gymnasium as gym
import pytest

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.tasks.gsm8k import (
    TINYGSM_EXAMPLES,
    GSM8KTask,
    code_answer,
    load_problems,
    tinygsm_problem,
    write_tinygsm_example,
)
from noisy_expert_gym.tasks.gsm8k.tinygsm_code import strip_docstring

GOLDS = ["19", "31.75", "-11", "125"]  # the fifth example (a loop) has no gold


def _load(*args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out = load_problems(*args, **kwargs)
    return out, [str(w.message) for w in caught]


@pytest.mark.parametrize("fmt", ["jsonl", "jsonl.gz", "parquet"])
def test_fixture_formats(tmp_path: Path, fmt: str) -> None:
    if fmt == "parquet":
        pytest.importorskip("pyarrow")
    d = write_tinygsm_example(tmp_path, fmt)
    problems, warned = _load("train", d, dataset="tinygsm")
    assert [p.answer.rsplit("#### ", 1)[1] for p in problems] == GOLDS
    assert [p.question for p in problems] == [r["question"] for r in TINYGSM_EXAMPLES[:4]]
    assert len(warned) == 1 and "skipped 1 of 5 rows" in warned[0]
    first = problems[0].answer
    assert first.startswith("def simple_math_problem() -> int:\n    bags = 4\n")  # the docstring is gone
    assert '"""' not in first and first.endswith("    return result\n#### 19")
    limited, _ = _load("train", d, dataset="tinygsm", limit=2)
    assert len(limited) == 2


@pytest.mark.parametrize(("code", "value"), [
    ("def f():\n    a = 3\n    b = a * 4\n    return b - 1\n", 11),
    ("def f():\n    '''doc'''\n    x = 7 / 2\n    return x\n", 3.5),
    ("def f():\n    x = 10\n    x -= 4\n    x *= 2\n    return x\n", 12),
    ("def f():\n    return round(10 / 3, 2)\n", 3.33),
    ("def f():\n    import math\n    return math.ceil(7 / 2) + int(2.9) + abs(-1) + max(1, 5)\n", 4 + 2 + 1 + 5),
    ("def f():\n    return 2 ** 10 // 3 % 100\n", 41),
    ("def f() -> int:\n    total: int = 5\n    return -total\n", -5),
    ("x = 2\nresult = x + 1\n", None),  # no return
    ("def f():\n    for i in range(3):\n        pass\n    return 1\n", None),  # a loop
    ("def f():\n    if True:\n        return 1\n", None),
    ("def f():\n    return [1, 2][0]\n", None),
    ("def f():\n    return open('x')\n", None),  # a call outside the subset is never made
    ("def f():\n    return __import__('os').getcwd()\n", None),
    ("def f():\n    return 1 / 0\n", None),
    ("def f():\n    return 10 ** 100\n", None),
    ("def f():\n    return y\n", None),
    ("def f():\n    return 'text'\n", None),
    ("def f(:\n", None),
])
def test_code_answer_evaluates_arithmetic_only(code: str, value: object) -> None:
    assert code_answer(code) == value


def test_row_conversion_rules() -> None:
    code = 'def f():\n    """Q."""\n    a = 2\n    return a * 3\n'
    assert tinygsm_problem({"question": "Q?", "code": code}).answer == "def f():\n    a = 2\n    return a * 3\n#### 6"
    # `answer` wins over the code (the authors' file stores offline-computed golds).
    assert tinygsm_problem({"question": "Q?", "code": code, "answer": 7}).answer.endswith("#### 7")
    assert tinygsm_problem({"question": "Q?", "answer": "8.50"}).answer == "#### 8.50"
    assert tinygsm_problem({"question": "Q?", "answer": 12.0}).answer == "#### 12"
    gsm = "2 + 2 = 4\n#### 4"
    assert tinygsm_problem({"question": "Q?", "answer": gsm}).answer == gsm  # a worked GSM-8K answer
    assert tinygsm_problem({"question": "Q?"}) is None
    assert tinygsm_problem({"question": "", "answer": 3}) is None
    assert tinygsm_problem({"question": "Q?", "answer": "many"}) is None
    assert strip_docstring("def f():\n    'one line'\n    return 1\n") == "def f():\n    return 1"


def test_task_over_tinygsm_in_both_answer_formats(tmp_path: Path) -> None:
    d = write_tinygsm_example(tmp_path)
    problems, _ = _load("train", d, dataset="tinygsm")
    for fmt, line in (("####", "#### 31.75"), ("boxed", "\\boxed{31.75}")):
        task = GSM8KTask(problems, max_new_tokens=256, answer_format=fmt)
        assert task.solutions[1].endswith("\n" + line) and task.golds == GOLDS
        prompts = task.all_prompts()
        m = task.metrics(prompts, task.clean_chains(prompts))
        assert m["final_exact"].all() and m["full_exact"].all()


def test_env_over_tinygsm(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NEG_TINYGSM_DIR", str(write_tinygsm_example(tmp_path)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = gym.make("NoisyGSM8K-v1", dataset="tinygsm", max_new_tokens=256, limit=3)
    u = env.unwrapped
    assert u.task.num_problems == 3 and u.problem.kwargs["dataset"] == "tinygsm"
    obs, _ = env.reset(seed=0)
    done = False
    while not done:
        obs, reward, terminated, truncated, _ = env.step(int(u.clean_expert.sample(obs)))
        done = terminated or truncated
    assert reward == 1.0


def test_hub_path_with_datasets(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a directory, rows come from `datasets.load_dataset("TinyGSM/TinyGSM")` (a stand-in here)."""
    calls = []

    def load_dataset(name, split=None, streaming=False):
        calls.append((name, split, streaming))
        return [{"question": r["question"], "code": r["code"]} for r in TINYGSM_EXAMPLES]  # the hub's columns

    monkeypatch.delenv("NEG_TINYGSM_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    problems, _ = _load("train", dataset="tinygsm", limit=2)
    assert len(problems) == 2 and calls == [("TinyGSM/TinyGSM", "train", True)]
    problems, _ = _load("train", dataset="tinygsm")
    assert len(problems) == 4 and calls[-1] == ("TinyGSM/TinyGSM", "train", False)


def test_clear_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NEG_TINYGSM_DIR", raising=False)
    monkeypatch.setitem(sys.modules, "datasets", None)  # as if `datasets` were not installed
    with pytest.raises(FileNotFoundError) as e:
        load_problems("train", dataset="tinygsm")
    msg = str(e.value)
    assert "data_dir=" in msg and "NEG_TINYGSM_DIR" in msg and "pip install datasets" in msg
    with pytest.raises(FileNotFoundError, match="holds no .parquet"):
        load_problems("train", tmp_path, dataset="tinygsm")
    with pytest.raises(ValueError, match="only a `train` split"):
        load_problems("test", tmp_path, dataset="tinygsm")
    with pytest.raises(ValueError, match="Did you mean `tinygsm`"):
        load_problems("train", tmp_path, dataset="tinygms")
    with pytest.raises(ValueError, match="limit"):
        load_problems("train", tmp_path, dataset="tinygsm", limit=0)
    (tmp_path / "train.jsonl").write_text('{"question": "q", "answer": 1}\nnot json\n')
    with pytest.raises(ValueError, match=r"train.jsonl:2"):
        load_problems("train", tmp_path, dataset="tinygsm")
