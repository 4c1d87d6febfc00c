"""Loading GSM-8K problems: a JSONL directory, an environment variable, or the Hugging Face hub.

GSM-8K (Cobbe et al. 2021, MIT licence) is never shipped with this package. It
is read from, in order:

1. ``data_dir=``: a directory holding ``train.jsonl`` and ``test.jsonl`` (one
   JSON object per line with ``question`` and ``answer``), or one ``.jsonl`` file;
2. the directory in the environment variable ``NEG_GSM8K_DIR``;
3. the Hugging Face hub (``openai/gsm8k``, config ``main``) when the
   ``datasets`` package is installed.

:data:`EXAMPLE_PROBLEMS` are a few GSM-style problems written for this package
(tests, demos); :func:`write_example_data` lays them out as a data directory.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisy_expert_gym._util import did_you_mean
from noisy_expert_gym.tasks.gsm8k.answers import parse_gold

SPLITS: tuple[str, ...] = ("train", "test")
#: Environment variable naming a GSM-8K JSONL directory.
ENV_VAR = "NEG_GSM8K_DIR"
HF_DATASET = "openai/gsm8k"


@dataclass(frozen=True)
class WordProblem:
    """One GSM-8K problem as stored: the question and the reference answer (annotations,
    final ``#### <number>`` line); ``index`` is its line number in the split."""

    question: str
    answer: str
    index: int = 0


def missing_data_message(split: str, detail: str = "") -> str:
    return (
        f"GSM-8K `{split}` data not found{detail}. Provide it in one of three ways: pass "
        f"`data_dir='/path/to/gsm8k'` (a directory holding train.jsonl and test.jsonl, one JSON object "
        f"per line with `question` and `answer`); or set the environment variable {ENV_VAR}=/path/to/gsm8k; "
        f"or `pip install datasets` to read `{HF_DATASET}` from the Hugging Face hub."
    )


def read_jsonl(path: str | os.PathLike) -> list[WordProblem]:
    """Problems of one GSM-8K JSONL file; malformed lines raise ValueError with their number."""
    out = []
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                q, a = row["question"], row["answer"]
                if not isinstance(q, str) or not isinstance(a, str):
                    raise TypeError("`question` and `answer` must be strings")
                parse_gold(a)
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{i + 1}: not a GSM-8K record ({type(e).__name__}: {e})") from None
            out.append(WordProblem(q, a, len(out)))
    return out


def write_jsonl(path: str | os.PathLike, problems: list[WordProblem] | list[dict[str, Any]]) -> Path:
    """Write problems (WordProblem objects or dicts with `question`, `answer`) as GSM-8K JSONL."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for p in problems:
            q, a = (p.question, p.answer) if isinstance(p, WordProblem) else (p["question"], p["answer"])
            f.write(json.dumps({"question": q, "answer": a}) + "\n")
    return path


def load_problems(split: str = "train", data_dir: str | os.PathLike | None = None) -> list[WordProblem]:
    """The problems of a GSM-8K split, from `data_dir`, ``$NEG_GSM8K_DIR`` or the HF hub.

    Raises:
        ValueError: unknown split.
        FileNotFoundError: no data found; the message says how to provide it.
    """
    if split not in SPLITS:
        raise ValueError(f"unknown `split` `{split}`; valid values: `train`, `test`.{did_you_mean(split, SPLITS)}")
    source = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or None
    if source is not None:
        path = Path(source).expanduser()
        if path.is_file():
            return read_jsonl(path)
        file = path / f"{split}.jsonl"
        if not file.is_file():
            origin = "`data_dir`" if data_dir is not None else f"${ENV_VAR}"
            raise FileNotFoundError(missing_data_message(split, f": {origin} = {str(source)!r} has no {split}.jsonl"))
        return read_jsonl(file)
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(missing_data_message(split)) from None
    ds = datasets.load_dataset(HF_DATASET, "main", split=split)  # pragma: no cover - needs the network
    return [WordProblem(r["question"], r["answer"], i) for i, r in enumerate(ds)]  # pragma: no cover


#: GSM-style problems written for this package (not from GSM-8K): fixtures and demos.
EXAMPLE_PROBLEMS: dict[str, list[dict[str, str]]] = {
    "train": [
        {"question": "Tom has 3 boxes with 12 pencils each. He gives away 9 pencils. How many pencils "
                     "does he have left?",
         "answer": "Tom has 3 * 12 = <<3*12=36>>36 pencils.\nAfter giving some away he has "
                   "36 - 9 = <<36-9=27>>27 pencils.\n#### 27"},
        {"question": "A bakery sells 240 muffins a day for 5 days. How many muffins is that?",
         "answer": "It sells 240 * 5 = <<240*5=1200>>1,200 muffins.\n#### 1,200"},
        {"question": "Mia had $8. She spent $20 on a book using credit. What is her balance in dollars?",
         "answer": "Her balance is 8 - 20 = <<8-20=-12>>-12 dollars.\n#### -12"},
        {"question": "A rope is 7 meters long and is cut into 2 equal pieces. How long is each piece?",
         "answer": "Each piece is 7 / 2 = <<7/2=3.5>>3.5 meters long.\n#### 3.5"},
        {"question": "Sam reads 15 pages on Monday and twice as many on Tuesday. How many pages does "
                     "he read in total?",
         "answer": "On Tuesday he reads 15 * 2 = <<15*2=30>>30 pages.\nIn total he reads "
                   "15 + 30 = <<15+30=45>>45 pages.\n#### 45"},
        {"question": "Ana buys 4 apples at $2 each. How much does she pay?",
         "answer": "She pays 4 * 2 = $<<4*2=8>>8.\n#### 8"},
    ],
    "test": [
        {"question": "A farm has 6 cows and 4 times as many chickens. How many animals are there?",
         "answer": "There are 6 * 4 = <<6*4=24>>24 chickens.\nThere are 6 + 24 = <<6+24=30>>30 animals.\n#### 30"},
        {"question": "Lea saves $5 a week for 9 weeks. How much has she saved?",
         "answer": "She has saved 5 * 9 = $<<5*9=45>>45.\n#### 45"},
        {"question": "A class of 28 students splits into teams of 4. How many teams are there?",
         "answer": "There are 28 / 4 = <<28/4=7>>7 teams.\n#### 7"},
    ],
}


def write_example_data(directory: str | os.PathLike) -> Path:
    """Write :data:`EXAMPLE_PROBLEMS` as ``train.jsonl``/``test.jsonl`` under `directory`."""
    directory = Path(directory)
    for split, rows in EXAMPLE_PROBLEMS.items():
        write_jsonl(directory / f"{split}.jsonl", rows)
    return directory
