"""GSM-8K support for NoisyGSM8K: data loading, answer handling and tokenizers.

The MDP itself (the pure batched task core and the reference teacher) is
:class:`noisy_expert_gym.tasks.gsm8k.GSM8KTask`; :class:`ReferenceExpert` is its
queryable (noisy) expert; the env is
:class:`noisy_expert_gym.envs.gsm8k.NoisyGSM8KEnv`; the LM teacher is
:class:`noisy_expert_gym.hf_teacher.HFTeacher`.
"""

from noisy_expert_gym.gsm8k.answers import (
    answers_match,
    extract_answer,
    normalize_number,
    parse_gold,
    reference_solution,
    strip_annotations,
)
from noisy_expert_gym.gsm8k.data import (
    ENV_VAR,
    EXAMPLE_PROBLEMS,
    SPLITS,
    Problem,
    load_problems,
    read_jsonl,
    write_example_data,
    write_jsonl,
)
from noisy_expert_gym.gsm8k.expert import ReferenceExpert
from noisy_expert_gym.gsm8k.tokenizer import (
    DEFAULT_SYSTEM_PROMPT,
    ByteTokenizer,
    CharTokenizer,
    HFTokenizer,
    check_same_vocab,
    make_tokenizer,
)

__all__ = [
    "DEFAULT_SYSTEM_PROMPT", "ENV_VAR", "EXAMPLE_PROBLEMS", "SPLITS", "ByteTokenizer", "CharTokenizer",
    "HFTokenizer", "Problem", "ReferenceExpert", "answers_match", "check_same_vocab", "extract_answer", "load_problems",
    "make_tokenizer", "normalize_number", "parse_gold", "read_jsonl", "reference_solution",
    "strip_annotations", "write_example_data", "write_jsonl",
]
