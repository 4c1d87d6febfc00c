"""Loading word problems: GSM-8K (JSONL directory, environment variable, Hugging Face hub) and TinyGSM.

**GSM-8K** (Cobbe et al. 2021, MIT licence) is never shipped with this package. It
is read from, in order:

1. ``data_dir=``: a directory holding ``train.jsonl`` and ``test.jsonl`` (one
   JSON object per line with ``question`` and ``answer``), or one ``.jsonl`` file;
2. the directory in the environment variable ``NEG_GSM8K_DIR``;
3. the Hugging Face hub (``openai/gsm8k``, config ``main``) when the
   ``datasets`` package is installed.

**TinyGSM** (Liu et al. 2023; ~12.3M synthetic GSM-style problems, the paper's
training prompts: the authors used ~400k of them) has one split, ``train``, and
per row a ``question`` and ``code``: a Python function that computes the answer
(its docstring repeats the question). ``load_problems(dataset="tinygsm")`` reads,
in order, ``data_dir=`` (one file or a directory: ``train.jsonl[.gz]``, else its
``*.parquet`` files as the hub ships them, else its ``*.jsonl[.gz]`` files, in
name order), ``$NEG_TINYGSM_DIR``, or the hub (``TinyGSM/TinyGSM``, needs
``datasets``; streamed when ``limit`` is given). Each row becomes a
:class:`WordProblem` (:func:`tinygsm_problem`):

- gold answer: the row's ``answer`` when it has one (a number, a numeric
  string, or a GSM-8K answer ending ``#### n`` -- how the authors' 400k file
  stores golds computed offline); else the value the ``code`` returns, read by
  :func:`~noisy_expert_gym.tasks.gsm8k.tinygsm_code.code_answer`, a *static* evaluator of straight-line arithmetic
  (assignments, + - * / // % **, round/int/float/abs/min/max, math.ceil/floor/
  sqrt) over the parsed syntax tree. The code is never executed: no ``exec``,
  ``eval``, import or attribute access beyond those names. Rows whose program
  leaves that subset (loops, branches, lists, ...) or returns no number are
  skipped, with a warning that counts them. To train on every row, compute the
  golds offline once -- in a sandbox, by whatever means you trust -- and store
  them as each row's ``answer``: that field always wins.
- reference solution (the reference teacher's text): the code without its
  docstring, then the final-answer line ``#### <gold>`` (``\\boxed{<gold>}``
  under ``answer_format="boxed"``). A row without code (question and answer
  only) has the final-answer line as its whole solution.

:data:`EXAMPLE_PROBLEMS` are a few GSM-style problems written for this package
(tests, demos); :func:`write_example_data` lays them out as a data directory, and
:func:`write_tinygsm_example` writes TinyGSM-style rows (JSONL, or parquet).
"""

from __future__ import annotations

import gzip
import json
import math
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from noisy_expert_gym.tasks.gsm8k.answers import ANSWER_MARK, normalize_number, parse_gold
from noisy_expert_gym.tasks.gsm8k.tinygsm_code import code_answer, strip_docstring
from noisy_expert_gym.utils import atomic_path, did_you_mean, write_atomic

SPLITS: tuple[str, ...] = ("train", "test")
#: Datasets :func:`load_problems` reads.
DATASETS: tuple[str, ...] = ("gsm8k", "tinygsm")
#: Environment variable naming a GSM-8K JSONL directory.
ENV_VAR = "NEG_GSM8K_DIR"
HF_DATASET = "openai/gsm8k"
#: Environment variable naming a TinyGSM directory (or file).
TINYGSM_ENV_VAR = "NEG_TINYGSM_DIR"
TINYGSM_HF_DATASET = "TinyGSM/TinyGSM"


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
    """Write problems (WordProblem objects or dicts with `question`, `answer`) as GSM-8K JSONL, atomically."""
    rows = [(p.question, p.answer) if isinstance(p, WordProblem) else (p["question"], p["answer"]) for p in problems]
    return write_atomic(path, "".join(json.dumps({"question": q, "answer": a}) + "\n" for q, a in rows))


def check_dataset(dataset: Any) -> Any:
    """`dataset` if it is one of :data:`DATASETS`, else a ValueError."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown `dataset` `{dataset}`; valid values: `gsm8k`, `tinygsm`."
                         f"{did_you_mean(str(dataset), DATASETS)}")
    return dataset


def check_split(split: Any) -> Any:
    """`split` if it is one of :data:`SPLITS`, else a ValueError."""
    if split not in SPLITS:
        raise ValueError(f"unknown `split` `{split}`; valid values: `train`, `test`.{did_you_mean(split, SPLITS)}")
    return split


def check_limit(limit: Any) -> Any:
    """`limit` if it is None or an integer >= 1, else a ValueError."""
    if limit is not None and (not isinstance(limit, int) or isinstance(limit, bool) or limit < 1):
        raise ValueError(f"`limit` must be an integer >= 1 or None, got {limit!r}")
    return limit


def load_problems(split: str = "train", data_dir: str | os.PathLike | None = None, dataset: str = "gsm8k",
                  limit: int | None = None) -> list[WordProblem]:
    """The problems of a split of GSM-8K or TinyGSM (see the module docstring for the sources).

    Args:
        split: ``train`` or ``test`` (TinyGSM: ``train`` only).
        data_dir: a directory or file; None: the dataset's environment variable, else the hub.
        dataset: ``gsm8k`` (default) or ``tinygsm``.
        limit: keep only the first `limit` problems (file order); None: all.

    Raises:
        ValueError: unknown split or dataset.
        FileNotFoundError: no data found; the message says how to provide it.
    """
    check_dataset(dataset)
    check_split(split)
    check_limit(limit)
    if dataset == "tinygsm":
        return load_tinygsm(split, data_dir, limit)
    source = data_dir if data_dir is not None else os.environ.get(ENV_VAR) or None
    if source is not None:
        path = Path(source).expanduser()
        if path.is_file():
            return read_jsonl(path)[:limit]
        file = path / f"{split}.jsonl"
        if not file.is_file():
            origin = "`data_dir`" if data_dir is not None else f"${ENV_VAR}"
            raise FileNotFoundError(missing_data_message(split, f": {origin} = {str(source)!r} has no {split}.jsonl"))
        return read_jsonl(file)[:limit]
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(missing_data_message(split)) from None
    ds = datasets.load_dataset(HF_DATASET, "main", split=split)  # pragma: no cover - needs the network
    return [WordProblem(r["question"], r["answer"], i) for i, r in enumerate(ds)][:limit]  # pragma: no cover


# ----- TinyGSM -------------------------------------------------------------------------

def missing_tinygsm_message(detail: str = "") -> str:
    return (
        f"TinyGSM data not found{detail}. Provide it in one of three ways: pass "
        "`data_dir='/path/to/tinygsm'` (its parquet files as the hub ships them, or JSONL / JSONL.gz with "
        f"`question` and `code` and/or `answer` per line); or set the environment variable "
        f"{TINYGSM_ENV_VAR}=/path/to/tinygsm; or `pip install datasets` to read `{TINYGSM_HF_DATASET}` from "
        "the Hugging Face hub."
    )


def _number_text(v: Any) -> str | None:
    """A gold answer as text: ints as written, floats rounded to 6 decimals (12.0 -> ``12``)."""
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return None
        return str(int(v)) if v == int(v) else f"{v:.6f}".rstrip("0").rstrip(".")
    if isinstance(v, str):
        try:
            normalize_number(v)
        except ValueError:
            return None
        return v.strip()
    return None


def tinygsm_problem(row: dict[str, Any], index: int = 0) -> WordProblem | None:
    """A TinyGSM row as a :class:`WordProblem` (see the module docstring), or None when it has no
    usable question or gold answer. ``answer`` in the row wins over evaluating ``code``."""
    question, code, answer = row.get("question"), row.get("code"), row.get("answer")
    if not isinstance(question, str) or not question.strip():
        return None
    gold = None
    if isinstance(answer, str) and ANSWER_MARK in answer:
        try:
            gold = parse_gold(answer)[1]
        except ValueError:
            gold = None
    elif answer is not None:
        gold = _number_text(answer)
    if gold is None and isinstance(code, str):
        gold = _number_text(code_answer(code))
    if gold is None:
        return None
    body = strip_docstring(code) if isinstance(code, str) and code.strip() else ""
    if not body and isinstance(answer, str) and ANSWER_MARK in answer:
        return WordProblem(question, answer, index)  # a GSM-8K-style worked answer
    return WordProblem(question, f"{body}\n{ANSWER_MARK} {gold}" if body else f"{ANSWER_MARK} {gold}", index)


def _tinygsm_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    for name in ("train.jsonl", "train.jsonl.gz"):
        if (path / name).is_file():
            return [path / name]
    parquet = sorted(path.rglob("*.parquet"))
    if parquet:
        return parquet
    return sorted([*path.rglob("*.jsonl"), *path.rglob("*.jsonl.gz")])


def _rows(file: Path) -> Iterator[dict[str, Any]]:
    name = file.name.lower()
    if name.endswith(".parquet"):
        try:
            import pyarrow.parquet as pq
        except ImportError:
            raise ImportError(f"reading {file} needs `pyarrow`: pip install pyarrow (or convert it to "
                              "JSONL)") from None
        pf = pq.ParquetFile(file)
        cols = [c for c in ("question", "code", "answer") if c in pf.schema_arrow.names]
        for batch in pf.iter_batches(columns=cols):
            yield from batch.to_pylist()
        return
    opener = gzip.open if name.endswith(".gz") else open
    with opener(file, "rt", encoding="utf-8") as f:
        for i, line in enumerate(f):
            if line.strip():
                try:
                    row = json.loads(line)
                except ValueError as e:
                    raise ValueError(f"{file}:{i + 1}: not JSON ({e})") from None
                yield row if isinstance(row, dict) else {}


def _problems_of(rows: Iterable[dict[str, Any]], limit: int | None, origin: str) -> list[WordProblem]:
    out: list[WordProblem] = []
    skipped = 0
    for row in rows:
        p = tinygsm_problem(row, len(out))
        if p is None:
            skipped += 1
            continue
        out.append(p)
        if limit is not None and len(out) >= limit:
            break
    if skipped:
        warnings.warn(f"TinyGSM ({origin}): skipped {skipped} of {skipped + len(out)} rows read without a "
                      "question or a gold answer (no `answer`, and a `code` outside the static evaluator's "
                      "arithmetic subset); store offline-computed golds as `answer` to keep them", stacklevel=3)
    return out


def load_tinygsm(split: str = "train", data_dir: str | os.PathLike | None = None,
                 limit: int | None = None) -> list[WordProblem]:
    """TinyGSM problems from `data_dir`, ``$NEG_TINYGSM_DIR`` or the hub (see the module docstring).

    Raises:
        ValueError: a split other than ``train``.
        FileNotFoundError: no data found; the message says how to provide it.
    """
    if split != "train":
        raise ValueError(f"TinyGSM has only a `train` split, got `{split}`: evaluate on GSM-8K's test split "
                         "(dataset='gsm8k', split='test') -- the paper's evaluation")
    source = data_dir if data_dir is not None else os.environ.get(TINYGSM_ENV_VAR) or None
    if source is not None:
        path = Path(source).expanduser()
        files = _tinygsm_files(path) if path.exists() else []
        if not files:
            origin = "`data_dir`" if data_dir is not None else f"${TINYGSM_ENV_VAR}"
            raise FileNotFoundError(missing_tinygsm_message(f": {origin} = {str(source)!r} holds no "
                                                            ".parquet, .jsonl or .jsonl.gz file"))
        return _problems_of((row for f in files for row in _rows(f)), limit, str(path))
    try:
        import datasets
    except ImportError:
        raise FileNotFoundError(missing_tinygsm_message()) from None
    ds = datasets.load_dataset(TINYGSM_HF_DATASET, split="train", streaming=limit is not None)
    return _problems_of(iter(ds), limit, TINYGSM_HF_DATASET)


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


#: TinyGSM-style rows written for this package (not from TinyGSM): questions with Python solutions,
#: one with a precomputed `answer`, one outside the static evaluator's subset (a loop: no gold).
TINYGSM_EXAMPLES: list[dict[str, Any]] = [
    {"question": "Lily has 4 bags with 6 marbles each. She loses 5 marbles. How many marbles are left?",
     "code": 'def simple_math_problem() -> int:\n    """\n    Lily has 4 bags with 6 marbles each. She loses 5 '
             'marbles.\n    How many marbles are left?\n    """\n    bags = 4\n    marbles_per_bag = 6\n'
             '    total = bags * marbles_per_bag\n    left = total - 5\n    result = left\n    return result\n'},
    {"question": "A pizza costs $12.50 and a drink costs $2.25. What do 2 pizzas and 3 drinks cost?",
     "code": 'def simple_math_problem() -> float:\n    """\n    A pizza costs $12.50 and a drink costs $2.25.\n'
             '    """\n    pizzas = 2 * 12.50\n    drinks = 3 * 2.25\n    result = pizzas + drinks\n'
             '    return result\n'},
    {"question": "It is -3 degrees in the morning and 8 degrees colder at night. What is the night "
                 "temperature?",
     "code": 'def simple_math_problem() -> int:\n    """It is -3 degrees; 8 degrees colder at night."""\n'
             '    morning = -3\n    night = morning - 8\n    return night\n'},
    {"question": "Sam splits 1,000 stickers among 8 friends equally. How many does each friend get?",
     "code": 'def simple_math_problem() -> int:\n    """Sam splits 1,000 stickers among 8 friends."""\n'
             '    each = 1000 // 8\n    return each\n',
     "answer": 125},
    {"question": "A counter starts at 0 and adds 3 five times. What does it show?",
     "code": 'def simple_math_problem() -> int:\n    """A counter adds 3 five times."""\n    counter = 0\n'
             '    for _ in range(5):\n        counter += 3\n    return counter\n'},
]


def write_tinygsm_example(directory: str | os.PathLike, fmt: str = "jsonl") -> Path:
    """Write :data:`TINYGSM_EXAMPLES` under `directory` as ``train.jsonl`` (``fmt="jsonl"``),
    ``train.jsonl.gz`` (``"jsonl.gz"``) or ``data/train-00000-of-00001.parquet`` (``"parquet"``,
    the hub's layout; needs pyarrow). Returns the directory."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        import pyarrow as pa
        import pyarrow.parquet as pq

        # The hub's schema: question and code (string); no answer column.
        table = pa.table({k: [r[k] for r in TINYGSM_EXAMPLES] for k in ("question", "code")})
        with atomic_path(directory / "data" / "train-00000-of-00001.parquet", suffix=".parquet") as tmp:
            pq.write_table(table, tmp)
        return directory
    lines = "".join(json.dumps(r) + "\n" for r in TINYGSM_EXAMPLES)
    if fmt == "jsonl.gz":
        write_atomic(directory / "train.jsonl.gz", gzip.compress(lines.encode("utf-8"), mtime=0))
    elif fmt == "jsonl":
        write_atomic(directory / "train.jsonl", lines.encode("utf-8"))
    else:
        raise ValueError(f"unknown `fmt` {fmt!r}; valid values: 'jsonl', 'jsonl.gz', 'parquet'")
    return directory
