"""Tokenizers for NoisyGSM8K: two built-in ones that need no download, and a Hugging Face wrapper.

Convention shared by every tokenizer here and by the trainers: the *actions* are
the first ``num_actions`` token ids and an action id is also the input id of the
token it writes (a student reads the very ids it writes). End-of-sequence (EOS)
is an action. Tokens that are never written -- the prompt separator (built-in
tokenizers only) and the pad token of fixed-shape observations -- come after
the actions: ``sep_token``/``pad_token`` >= ``num_actions``.

- :class:`CharTokenizer` (``"char"``, the default): 96 characters (newline and
  printable ASCII) + EOS = 97 actions; SEP = 97, PAD = 98. Text is first
  normalised to ASCII (curly quotes, dashes, ``×``, ``÷``, ``€``, ``½`` ...
  are spelled out; see :data:`ASCII_FOLD`), so round trips are exact for ASCII.
- :class:`ByteTokenizer` (``"byte"``): the 256 UTF-8 bytes + EOS = 257
  actions; SEP = 257, PAD = 258. Lossless for any text.
- :class:`HFTokenizer`: any Hugging Face tokenizer (needed with an LM teacher,
  whose vocabulary the student must share). Actions = ``len(tokenizer)`` ids,
  EOS = the tokenizer's EOS; no separator (the chat template ends the prompt);
  PAD = ``len(tokenizer)`` (one id past the vocabulary, never fed to a model:
  replace it and mask it, see :meth:`HFTokenizer.model_inputs`).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import numpy as np

from noisy_expert_gym._util import did_you_mean

#: Non-ASCII characters of GSM-8K spelled in ASCII by the char tokenizer (others: NFKD, else "?").
ASCII_FOLD: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u2212": "-", "\u00d7": "x", "\u00f7": "/", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a2": "c",
    "\u00b3": "^3", "\u00b2": "^2", "\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4",
    "\u221a": "sqrt", "\u00a0": " ", "\u2028": " ", "\u200b": "", "\t": " ", "\r": "",
    "\u0410": "A",  # Cyrillic capital A, once in GSM-8K train
}

#: The paper-style system prompt an LM teacher gets (through its chat template when it has one).
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step, then write the final "
    "answer on its own last line as '#### <number>'."
)

_OUTSIDE_ALPHABET = re.compile(r"[^\n -~]")

TOKENIZERS: tuple[str, ...] = ("char", "byte")


class _BuiltinTokenizer:
    """Shared code of the built-in tokenizers: a fixed table of single-token units."""

    name = "builtin"
    #: True: the vectorised reference oracle applies (one token per character / byte).
    fast_oracle = True

    def __init__(self, units: list[bytes]) -> None:
        self.units = units
        self.num_actions = len(units) + 1
        self.eos_token = len(units)
        self.sep_token = len(units) + 1
        self.pad_token = len(units) + 2
        self.vocab_size = len(units) + 3
        self.eos_tokens: tuple[int, ...] = (self.eos_token,)
        self._byte_to_id = np.full(256, -1, np.int64)
        for i, u in enumerate(units):
            if len(u) == 1:
                self._byte_to_id[u[0]] = i
        self.newline_token = int(self._byte_to_id[ord("\n")])
        self.digit_tokens = self._byte_to_id[np.frombuffer(b"0123456789", np.uint8)].copy()
        text = [chr(c) for c in range(32, 127)] + ["\n"]
        self.text_tokens = np.sort(self._byte_to_id[np.frombuffer("".join(text).encode(), np.uint8)])
        self._pieces = list(units) + [b""] * 3  # EOS/SEP/PAD decode to nothing

    def __repr__(self) -> str:
        return f"{type(self).__name__}(num_actions={self.num_actions})"

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def normalize(self, text: str) -> str:
        return text

    def _to_bytes(self, text: str) -> bytes:
        return self.normalize(text).encode("utf-8", errors="surrogateescape")

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` (int64), no special tokens."""
        # normalize() maps every character into the alphabet, so no id is -1.
        return self._byte_to_id[np.frombuffer(self._to_bytes(text), np.uint8)]

    def encode_prompt(self, question: str) -> np.ndarray:
        """The prompt of a question: its tokens, then the separator."""
        return np.append(self.encode(question.strip()), self.sep_token)

    def decode_bytes(self, ids: Any) -> bytes:
        return b"".join(self._pieces[int(i)] for i in ids)

    def decode(self, ids: Any, errors: str = "replace") -> str:
        """Text of token ids (special tokens decode to nothing)."""
        return self.decode_bytes(ids).decode("utf-8", errors=errors)

    def token_str(self, i: int) -> str:
        if i == self.eos_token:
            return "<eos>"
        if i == self.sep_token:
            return "<sep>"
        if i == self.pad_token:
            return "<pad>"
        return self._pieces[i].decode("utf-8", errors="backslashreplace")


class CharTokenizer(_BuiltinTokenizer):
    """Character tokenizer over newline + printable ASCII (ids 0..95), EOS 96, SEP 97, PAD 98."""

    name = "char"

    def __init__(self) -> None:
        super().__init__([b"\n"] + [bytes([c]) for c in range(32, 127)])

    def normalize(self, text: str) -> str:
        """ASCII spelling of `text`: :data:`ASCII_FOLD`, then accents dropped (NFKD), else ``?``."""
        if _OUTSIDE_ALPHABET.search(text) is None:
            return text
        out = []
        for ch in text:
            if ch == "\n" or " " <= ch <= "~":
                out.append(ch)
            elif ch in ASCII_FOLD:
                out.append(ASCII_FOLD[ch])
            else:
                folded = unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode()
                out.append("".join(c for c in folded if " " <= c <= "~") or "?")
        return "".join(out)


class ByteTokenizer(_BuiltinTokenizer):
    """UTF-8 byte tokenizer: ids 0..255 are bytes, EOS 256, SEP 257, PAD 258. Lossless."""

    name = "byte"

    def __init__(self) -> None:
        super().__init__([bytes([b]) for b in range(256)])


class HFTokenizer:
    """A Hugging Face tokenizer in this package's conventions (see the module docstring).

    Args:
        tokenizer: a ``transformers`` tokenizer.
        system_prompt: the system message given to the teacher.
        chat_template: use the tokenizer's chat template (None: when it has one).
    """

    name = "hf"
    fast_oracle = False
    sep_token = None

    def __init__(self, tokenizer: Any, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 chat_template: bool | None = None) -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the Hugging Face tokenizer has no EOS token; set `tokenizer.eos_token` first")
        self.hf = tokenizer
        self.system_prompt = system_prompt
        has_template = getattr(tokenizer, "chat_template", None) is not None
        if chat_template and not has_template:
            raise ValueError("`chat_template=True` but the tokenizer has no chat template")
        self.use_chat_template = has_template if chat_template is None else bool(chat_template)
        self.num_actions = len(tokenizer)
        self.eos_token = int(tokenizer.eos_token_id)
        self.eos_tokens = (self.eos_token,)
        self.pad_token = self.num_actions
        self.vocab_size = self.num_actions + 1
        # The id fed to the model in place of PAD (masked out by the attention mask).
        fill = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_token
        self.model_fill_token = int(fill)
        self.newline_token = None
        ids = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.tokenize("0123456789")]
        self.digit_tokens = np.array(ids, np.int64) if len(ids) == 10 else np.zeros(0, np.int64)
        self.text_tokens = np.arange(self.num_actions)

    def __repr__(self) -> str:
        return f"HFTokenizer({getattr(self.hf, 'name_or_path', '?')!r}, num_actions={self.num_actions})"

    def normalize(self, text: str) -> str:
        return text

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf.encode(text, add_special_tokens=False), np.int64)

    def prompt_text(self, question: str) -> str:
        """The teacher's prompt as text: chat template with a system prompt, or a plain layout."""
        question = question.strip()
        if self.use_chat_template:
            msgs = [{"role": "system", "content": self.system_prompt}, {"role": "user", "content": question}]
            try:
                return self.hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
            except Exception:  # noqa: BLE001  (templates that reject a system role raise anything)
                # Fold the system prompt into the user turn.
                msgs = [{"role": "user", "content": f"{self.system_prompt}\n\n{question}"}]
                return self.hf.apply_chat_template(msgs, tokenize=False, add_generation_prompt=True)
        return f"{self.system_prompt}\n\nQuestion: {question}\nAnswer:"

    def encode_prompt(self, question: str) -> np.ndarray:
        text = self.prompt_text(question)
        # A chat template writes its own BOS; a plain prompt gets the tokenizer's specials.
        return np.asarray(self.hf.encode(text, add_special_tokens=not self.use_chat_template), np.int64)

    def decode(self, ids: Any, errors: str = "replace") -> str:
        ids = [int(i) for i in ids if int(i) < self.num_actions and int(i) not in self.eos_tokens]
        return self.hf.decode(ids, skip_special_tokens=False)

    def token_str(self, i: int) -> str:
        if i == self.pad_token:
            return "<pad>"
        return self.hf.convert_ids_to_tokens(int(i))

    def model_inputs(self, ids: Any) -> tuple[Any, Any]:
        """(input ids with PAD replaced by a real id, attention mask) for a torch batch."""
        mask = ids != self.pad_token
        return ids.masked_fill(~mask, self.model_fill_token), mask.long()


def make_tokenizer(spec: Any = "char", **hf_kwargs: Any) -> Any:
    """A tokenizer from ``"char"``, ``"byte"``, ``"hf:<name or path>"``, a ``transformers``
    tokenizer, or an already-made tokenizer of this module (returned as is)."""
    if isinstance(spec, (_BuiltinTokenizer, HFTokenizer)):
        return spec
    if isinstance(spec, str):
        if spec == "char":
            return CharTokenizer()
        if spec == "byte":
            return ByteTokenizer()
        if spec.startswith("hf:"):
            return HFTokenizer(load_hf_tokenizer(spec[3:]), **hf_kwargs)
        raise ValueError(f"unknown `tokenizer` `{spec}`; valid values: `char`, `byte`, `hf:<name or path>` "
                         f"or a transformers tokenizer.{did_you_mean(spec, TOKENIZERS)}")
    if hasattr(spec, "get_vocab") and hasattr(spec, "eos_token_id"):
        return HFTokenizer(spec, **hf_kwargs)
    raise TypeError(f"`tokenizer` must be `char`, `byte`, `hf:<name or path>` or a transformers tokenizer, "
                    f"got {type(spec).__name__}")


def load_hf_tokenizer(name_or_path: str) -> Any:
    """``AutoTokenizer.from_pretrained`` with an install hint."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ImportError("Hugging Face tokenizers need `transformers`: pip install 'noisy-expert-gym[hf]' "
                          "(or pip install transformers)") from None
    return AutoTokenizer.from_pretrained(name_or_path)


def check_same_vocab(student: Any, teacher: Any) -> None:
    """Raise ValueError unless two tokenizers share the vocabulary (ids, tokens, EOS).

    Logit distillation compares the student's and the teacher's next-token
    distributions id by id, so they must mean the same token by every id.
    Accepts this module's tokenizers or ``transformers`` tokenizers.
    """
    a, b = make_tokenizer(student), make_tokenizer(teacher)
    if isinstance(a, _BuiltinTokenizer) or isinstance(b, _BuiltinTokenizer):
        if a == b:
            return
        raise ValueError(f"student and teacher tokenizers differ: {a!r} vs {b!r}. An LM teacher needs the "
                         "student to use the teacher's vocabulary: pass `tokenizer=None` (the teacher's) or "
                         "the teacher's Hugging Face tokenizer")
    va, vb = a.hf.get_vocab(), b.hf.get_vocab()
    if va != vb:
        only_a = sorted(set(va.items()) - set(vb.items()))[:3]
        only_b = sorted(set(vb.items()) - set(va.items()))[:3]
        raise ValueError(
            f"student and teacher tokenizers differ ({len(va)} vs {len(vb)} tokens; e.g. student has "
            f"{only_a}, teacher has {only_b}). Logit distillation needs one shared vocabulary: use the "
            "teacher's tokenizer for the student (same model family)")
    if a.eos_token != b.eos_token:
        raise ValueError(f"student and teacher tokenizers use different EOS ids: {a.eos_token} vs {b.eos_token}")
