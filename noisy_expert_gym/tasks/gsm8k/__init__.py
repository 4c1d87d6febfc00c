"""GSM-8K token generation (NoisyGSM8K): everything that defines the task, in one place.

- :mod:`~noisy_expert_gym.tasks.gsm8k.core`: :class:`GSM8KTask`, the pure batched task core;
- :mod:`~noisy_expert_gym.tasks.gsm8k.dynamic_oracle`: the reference teacher's dynamic oracle
  (docs/design.md §6) on every prefix, for any tokenizer (a base class of the task core);
- :mod:`~noisy_expert_gym.tasks.gsm8k.reference`: :class:`ReferenceExpert`, that oracle as a
  queryable (noisy) expert;
- :mod:`~noisy_expert_gym.tasks.gsm8k.hf_teacher`: :class:`HFTeacher`, a Hugging Face causal
  LM as the expert (temperature noise);
- :mod:`~noisy_expert_gym.tasks.gsm8k.data` (with :mod:`~noisy_expert_gym.tasks.gsm8k.tinygsm_code`,
  TinyGSM's programs read without running them), :mod:`~noisy_expert_gym.tasks.gsm8k.answers`,
  :mod:`~noisy_expert_gym.tasks.gsm8k.tokenizer` (built-in) and
  :mod:`~noisy_expert_gym.tasks.gsm8k.hf_tokenizer` (Hugging Face): word problems (GSM-8K,
  TinyGSM), answers and answer formats (``####``, ``boxed``), tokenizers and their stop tokens;
- :mod:`~noisy_expert_gym.tasks.gsm8k.kwargs`: the declared keyword arguments
  (:class:`GSM8KKwargs`) and :mod:`~noisy_expert_gym.tasks.gsm8k.problem`: the problem builder
  (task core + experts) behind ``make_problem("NoisyGSM8K-v1", ...)``.
"""

from noisy_expert_gym.tasks.gsm8k.answers import (
    ANSWER_FORMATS,
    BOXED_TOLERANCE,
    answer_line,
    answer_tolerance,
    answers_match,
    extract_answer,
    normalize_number,
    parse_gold,
    reference_solution,
    strip_annotations,
)
from noisy_expert_gym.tasks.gsm8k.core import GSM8KTask
from noisy_expert_gym.tasks.gsm8k.data import (
    DATASETS,
    ENV_VAR,
    EXAMPLE_PROBLEMS,
    SPLITS,
    TINYGSM_ENV_VAR,
    TINYGSM_EXAMPLES,
    WordProblem,
    load_problems,
    load_tinygsm,
    read_jsonl,
    tinygsm_problem,
    write_example_data,
    write_jsonl,
    write_tinygsm_example,
)
from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import (
    BOXED_SYSTEM_PROMPT,
    DEFAULT_SYSTEM_PROMPT,
    SYSTEM_PROMPTS,
    HFTokenizer,
    detect_stop_tokens,
)
from noisy_expert_gym.tasks.gsm8k.kwargs import DEFAULT_MAX_NEW_TOKENS, GSM8KKwargs
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert
from noisy_expert_gym.tasks.gsm8k.tinygsm_code import code_answer
from noisy_expert_gym.tasks.gsm8k.tokenizer import (
    ByteTokenizer,
    CharTokenizer,
    check_same_vocab,
    make_tokenizer,
)

__all__ = [
    "ANSWER_FORMATS", "BOXED_SYSTEM_PROMPT", "BOXED_TOLERANCE", "DATASETS", "DEFAULT_MAX_NEW_TOKENS",
    "DEFAULT_SYSTEM_PROMPT", "ENV_VAR", "EXAMPLE_PROBLEMS", "SPLITS", "SYSTEM_PROMPTS", "TINYGSM_ENV_VAR",
    "TINYGSM_EXAMPLES", "ByteTokenizer", "CharTokenizer", "GSM8KKwargs", "GSM8KTask", "HFTokenizer", "ReferenceExpert",
    "WordProblem", "answer_line", "answer_tolerance", "answers_match", "check_same_vocab", "code_answer",
    "detect_stop_tokens", "extract_answer", "load_problems", "load_tinygsm", "make_tokenizer",
    "normalize_number", "parse_gold", "read_jsonl", "reference_solution", "strip_annotations",
    "tinygsm_problem", "write_example_data", "write_jsonl", "write_tinygsm_example",
]
