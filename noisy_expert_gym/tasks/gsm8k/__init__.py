"""GSM-8K token generation (NoisyGSM8K): everything that defines the task, in one place.

- :mod:`~noisy_expert_gym.tasks.gsm8k.core`: :class:`GSM8KTask`, the pure batched task
  core and the reference teacher's dynamic oracle (DESIGN §6);
- :mod:`~noisy_expert_gym.tasks.gsm8k.reference`: :class:`ReferenceExpert`, that oracle as a
  queryable (noisy) expert;
- :mod:`~noisy_expert_gym.tasks.gsm8k.hf_teacher`: :class:`HFTeacher`, a Hugging Face causal
  LM as the expert (temperature noise);
- :mod:`~noisy_expert_gym.tasks.gsm8k.data`, :mod:`~noisy_expert_gym.tasks.gsm8k.answers`,
  :mod:`~noisy_expert_gym.tasks.gsm8k.tokenizer`: word problems, answers, tokenizers;
- :mod:`~noisy_expert_gym.tasks.gsm8k.problem`: the problem builder (task core + experts
  from the env's keyword arguments) behind ``make_problem("NoisyGSM8K-v0", ...)``.
"""

from noisy_expert_gym.tasks.gsm8k.answers import (
    answers_match,
    extract_answer,
    normalize_number,
    parse_gold,
    reference_solution,
    strip_annotations,
)
from noisy_expert_gym.tasks.gsm8k.core import DEFAULT_MAX_NEW_TOKENS, GSM8KTask
from noisy_expert_gym.tasks.gsm8k.data import (
    ENV_VAR,
    EXAMPLE_PROBLEMS,
    SPLITS,
    WordProblem,
    load_problems,
    read_jsonl,
    write_example_data,
    write_jsonl,
)
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert
from noisy_expert_gym.tasks.gsm8k.tokenizer import (
    DEFAULT_SYSTEM_PROMPT,
    ByteTokenizer,
    CharTokenizer,
    HFTokenizer,
    check_same_vocab,
    make_tokenizer,
)

__all__ = [
    "DEFAULT_MAX_NEW_TOKENS", "DEFAULT_SYSTEM_PROMPT", "ENV_VAR", "EXAMPLE_PROBLEMS", "SPLITS",
    "ByteTokenizer", "CharTokenizer", "GSM8KTask", "HFTokenizer", "ReferenceExpert", "WordProblem",
    "answers_match", "check_same_vocab", "extract_answer", "load_problems", "make_tokenizer",
    "normalize_number", "parse_gold", "read_jsonl", "reference_solution", "strip_annotations",
    "write_example_data", "write_jsonl",
]
