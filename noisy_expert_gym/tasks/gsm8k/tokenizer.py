"""Tokenizers for NoisyGSM8K: two built-in ones that need no download, and the choice among all.

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
- :class:`~noisy_expert_gym.tasks.gsm8k.hf_tokenizer.HFTokenizer` (``"hf:<name>"`` or a
  transformers tokenizer): any Hugging Face tokenizer, its stop tokens and the bytes of
  its tokens (:mod:`noisy_expert_gym.tasks.gsm8k.hf_tokenizer`).

:func:`make_tokenizer` makes one from a spec; :func:`check_same_vocab` compares a
student's and a teacher's.
"""

from __future__ import annotations

import copy
import re
import unicodedata
from collections.abc import Sequence
from typing import Any

import numpy as np

from noisy_expert_gym.tasks.gsm8k.hf_tokenizer import HFTokenizer, load_hf_tokenizer
from noisy_expert_gym.utils import did_you_mean

#: Non-ASCII characters of GSM-8K spelled in ASCII by the char tokenizer (others: NFKD, else "?").
ASCII_FOLD: dict[str, str] = {
    "\u2018": "'", "\u2019": "'", "\u201c": '"', "\u201d": '"', "\u2013": "-", "\u2014": "-",
    "\u2212": "-", "\u00d7": "x", "\u00f7": "/", "\u20ac": "EUR", "\u00a3": "GBP", "\u00a2": "c",
    "\u00b3": "^3", "\u00b2": "^2", "\u00bc": "1/4", "\u00bd": "1/2", "\u00be": "3/4",
    "\u221a": "sqrt", "\u00a0": " ", "\u2028": " ", "\u200b": "", "\t": " ", "\r": "",
    "\u0410": "A",  # Cyrillic capital A, once in GSM-8K train
}

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
        stops = f", eos_tokens={self.eos_tokens}" if len(self.eos_tokens) > 1 else ""
        return f"{type(self).__name__}(num_actions={self.num_actions}{stops})"

    def __eq__(self, other: object) -> bool:  # the vocabulary (stop tokens are the task's, as with HFTokenizer)
        return type(other) is type(self)

    def __hash__(self) -> int:
        return hash(type(self))

    def normalize(self, text: str) -> str:
        return text

    def with_stop_tokens(self, tokens: Sequence[Any]) -> _BuiltinTokenizer:
        """This tokenizer with more stop tokens, each of which ends a generation as EOS does (EOS stays
        first: the one a teacher writes), as ``stop_tokens`` does with a Hugging Face tokenizer.

        Args:
            tokens: action ids, or one-character strings of the alphabet (``"\\n"``).

        Raises:
            ValueError: a token that is not an action of this tokenizer (it could never be written).
        """
        ids = [self._stop_id(t) for t in tokens]
        out = copy.copy(self)
        out.eos_tokens = tuple(dict.fromkeys((self.eos_token, *ids)))
        return out

    def _stop_id(self, token: Any) -> int:
        if isinstance(token, (int, np.integer)) and not isinstance(token, bool) and 0 <= token < self.num_actions:
            return int(token)
        if isinstance(token, str) and len(ids := self.encode(token)) == 1:
            return int(ids[0])
        raise ValueError(f"`stop_tokens`: {token!r} is not a token of the `{self.name}` tokenizer: give an action id "
                         f"in 0..{self.num_actions - 1} (EOS is {self.eos_token}) or one character it writes, "
                         "e.g. '\\n'")

    def _to_bytes(self, text: str) -> bytes:
        return self.normalize(text).encode("utf-8", errors="surrogateescape")

    def encode(self, text: str) -> np.ndarray:
        """Token ids of `text` (int64), no special tokens."""
        # normalize() maps every character into the alphabet, so no id is -1.
        return self._byte_to_id[np.frombuffer(self._to_bytes(text), np.uint8)]

    def encode_prompt(self, question: str) -> np.ndarray:
        """The prompt of a question: its tokens, then the separator."""
        return np.append(self.encode(question.strip()), self.sep_token)

    def encode_prompts(self, questions: list[str]) -> list[np.ndarray]:
        return [self.encode_prompt(q) for q in questions]

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        return [self.encode(t) for t in texts]

    def continuation_token(self, text: bytes) -> int:
        """The token that starts writing `text` (bytes, non-empty): its first character / byte."""
        return int(self.encode(text.decode("utf-8", errors="surrogateescape"))[0])

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
    # The tokenizers' own EOS (the stop tokens are the task's: a wrapper's `eos_token` depends on `stop_on`).
    if a.hf.eos_token_id != b.hf.eos_token_id:
        raise ValueError(f"student and teacher tokenizers use different EOS ids: {a.hf.eos_token_id} vs "
                         f"{b.hf.eos_token_id}")
