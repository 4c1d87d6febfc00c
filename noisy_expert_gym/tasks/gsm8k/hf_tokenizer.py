"""A Hugging Face tokenizer for NoisyGSM8K (:class:`HFTokenizer`): prompts, stop tokens, the bytes of a token.

Any Hugging Face tokenizer (needed with an LM teacher, whose vocabulary the student
must share), under the conventions of :mod:`noisy_expert_gym.tasks.gsm8k.tokenizer`.
Actions = ``len(tokenizer)`` ids; no separator (the chat template ends the prompt);
PAD = ``len(tokenizer)`` (one id past the vocabulary, never fed to a model: replace it
and mask it, see :meth:`HFTokenizer.model_inputs`). The system prompts of the answer
formats (:data:`SYSTEM_PROMPTS`) are what an LM is prompted with.

**Stop tokens.** ``eos_tokens`` are every id that ends a generation; rollouts,
loss masks (``valid_along``), metrics and answer extraction stop at the first of
any of them, and ``eos_token`` (= ``eos_tokens[0]``) is the one a teacher writes
and chains are padded with. Built-in tokenizers: their one EOS. An HF tokenizer
(:func:`detect_stop_tokens`), in this order:

1. the end-of-turn token(s) of its chat template, when the prompt uses it:
   the special tokens the template writes right after an assistant message
   (read by rendering a two-turn conversation: Gemma's ``<end_of_turn>``,
   Llama 3's ``<|eot_id|>``, ChatML's ``<|im_end|>``, ...);
2. the tokenizer's ``eos_token_id`` (with ``stop_on="eos"``, NoisyGSM8K-v0's
   behaviour, only this one and 3.);
3. ``stop_tokens`` given by the caller (the LM teacher adds its model's
   ``generation_config.eos_token_id``, which is how Gemma 3 declares ``[1, 106]``);
4. the usual end markers (:data:`KNOWN_STOP_TOKENS`) that the tokenizer has as
   special tokens -- the stop strings the paper authors' evaluation uses.

**Bytes of a token.** The reference teacher works on text as bytes: each id has
a byte string (:meth:`HFTokenizer.token_bytes`, read from the tokenizer's
vocabulary and decoder: byte-level BPE, SentencePiece ``\u2581`` spaces and
``<0xNN>`` byte fallback; special tokens write their content), and a prefix's
text is the concatenation (:meth:`decode_bytes`) -- what ``decode`` gives, up
to a decoder's removal of one leading space at the start of the whole text
(Llama 2's ``Strip``, ``Metaspace``), which is kept here.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

from noisy_expert_gym.utils import did_you_mean

#: The system prompt an LM teacher gets (through its chat template when it has one), answer format ``####``.
DEFAULT_SYSTEM_PROMPT = (
    "You are a careful math tutor. Solve the problem step by step, then write the final "
    "answer on its own last line as '#### <number>'."
)
#: The system prompt of answer format ``boxed``: a step-by-step instruction with the final answer
#: in ``\\boxed{}``, the kind of prompt the paper's GSM-8K runs give the teacher (our wording;
#: pass ``system_prompt=`` to use another one verbatim).
BOXED_SYSTEM_PROMPT = "Work through the problem step by step, then give the final answer inside \\boxed{}."
#: The system prompt of each answer format (see :mod:`~noisy_expert_gym.tasks.gsm8k.answers`).
SYSTEM_PROMPTS: dict[str, str] = {"####": DEFAULT_SYSTEM_PROMPT, "boxed": BOXED_SYSTEM_PROMPT}

#: End-of-turn / end-of-text markers that stop generation when the tokenizer has them as special
#: tokens (beside what its chat template and EOS say; see :func:`detect_stop_tokens`).
KNOWN_STOP_TOKENS: tuple[str, ...] = ("<end_of_turn>", "<|eot_id|>", "<|im_end|>", "<|end|>", "<|eom_id|>",
                                      "<|endoftext|>", "</s>", "<eos>")
#: Which stop tokens an HF tokenizer uses: ``turn`` (end of turn and more; NoisyGSM8K-v1) or ``eos`` (v0).
STOP_ON: tuple[str, ...] = ("turn", "eos")
_SENTINEL = "\u2063NEG-SENTINEL\u2063"  # an assistant message / question no template rewrites


def check_stop_on(stop_on: Any) -> Any:
    """`stop_on` if it is one of :data:`STOP_ON`, else a ValueError."""
    if stop_on not in STOP_ON:
        raise ValueError(f"unknown `stop_on` {stop_on!r}; valid values: 'turn', 'eos'.{did_you_mean(str(stop_on), STOP_ON)}")
    return stop_on



class HFTokenizer:
    """A Hugging Face tokenizer in this package's conventions (see the module docstring).

    Args:
        tokenizer: a ``transformers`` tokenizer.
        system_prompt: the system message given to the teacher.
        chat_template: use the tokenizer's chat template (None: when it has one).
        stop_tokens: more ids (or token strings) that end a generation, beside the
            detected ones (see :func:`detect_stop_tokens`).
        stop_on: ``"turn"`` (default): the chat template's end-of-turn tokens, EOS,
            `stop_tokens` and the usual end markers; ``"eos"``: the tokenizer's EOS and
            `stop_tokens` only (``NoisyGSM8K-v0``'s behaviour).
    """

    name = "hf"
    fast_oracle = False
    sep_token = None

    def __init__(self, tokenizer: Any, system_prompt: str = DEFAULT_SYSTEM_PROMPT,
                 chat_template: bool | None = None, stop_tokens: Any = (), stop_on: str = "turn") -> None:
        if tokenizer.eos_token_id is None:
            raise ValueError("the Hugging Face tokenizer has no EOS token; set `tokenizer.eos_token` first")
        self.hf = tokenizer
        self.system_prompt = system_prompt
        has_template = getattr(tokenizer, "chat_template", None) is not None
        if chat_template and not has_template:
            raise ValueError("`chat_template=True` but the tokenizer has no chat template")
        self.use_chat_template = has_template if chat_template is None else bool(chat_template)
        self.num_actions = len(tokenizer)
        self.stop_on = check_stop_on(stop_on)
        self.eos_tokens: tuple[int, ...] = detect_stop_tokens(tokenizer, self.use_chat_template, stop_tokens,
                                                              stop_on)
        self.eos_token = self.eos_tokens[0]
        self.pad_token = self.num_actions
        self.vocab_size = self.num_actions + 1
        # The id fed to the model in place of PAD (masked out by the attention mask).
        fill = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else int(tokenizer.eos_token_id)
        self.model_fill_token = int(fill)
        self.newline_token = None
        ids = [tokenizer.convert_tokens_to_ids(t) for t in tokenizer.tokenize("0123456789")]
        self.digit_tokens = np.array(ids, np.int64) if len(ids) == 10 else np.zeros(0, np.int64)
        self.text_tokens = np.arange(self.num_actions)
        self._pieces: tuple[np.ndarray, np.ndarray] | None = None
        self._piece_ids: dict[bytes, int] | None = None
        self._prompt_frame: tuple[str, str] | None | bool = False  # False: not probed yet

    def __repr__(self) -> str:
        return f"HFTokenizer({getattr(self.hf, 'name_or_path', '?')!r}, num_actions={self.num_actions})"

    def normalize(self, text: str) -> str:
        return text

    def encode(self, text: str) -> np.ndarray:
        return np.asarray(self.hf.encode(text, add_special_tokens=False), np.int64)

    def encode_batch(self, texts: list[str]) -> list[np.ndarray]:
        """``encode`` of many texts in one call (the fast tokenizers' batch path)."""
        if not texts:
            return []
        out = self.hf(list(texts), add_special_tokens=False)["input_ids"]
        return [np.asarray(x, np.int64) for x in out]

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

    def encode_prompts(self, questions: list[str]) -> list[np.ndarray]:
        """``encode_prompt`` of many questions: the template is rendered once around a sentinel
        question (when it leaves the question as written) and the texts are encoded in one batch."""
        if self._prompt_frame is False:
            self._prompt_frame = None
            frame = self.prompt_text(_SENTINEL)
            if frame.count(_SENTINEL) == 1:
                head, tail = frame.split(_SENTINEL)
                probe = "A test question: 12 + 3 = ?"
                if head + probe + tail == self.prompt_text(probe):
                    self._prompt_frame = (head, tail)
        if self._prompt_frame is None:
            return [self.encode_prompt(q) for q in questions]
        head, tail = self._prompt_frame
        texts = [head + q.strip() + tail for q in questions]
        if not texts:
            return []
        out = self.hf(texts, add_special_tokens=not self.use_chat_template)["input_ids"]
        return [np.asarray(x, np.int64) for x in out]

    def decode(self, ids: Any, errors: str = "replace") -> str:
        ids = [int(i) for i in ids if int(i) < self.num_actions and int(i) not in self.eos_tokens]
        return self.hf.decode(ids, skip_special_tokens=False, clean_up_tokenization_spaces=False)

    def token_str(self, i: int) -> str:
        if i == self.pad_token:
            return "<pad>"
        return self.hf.convert_ids_to_tokens(int(i))

    def model_inputs(self, ids: Any) -> tuple[Any, Any]:
        """(input ids with PAD replaced by a real id, attention mask) for a torch batch."""
        mask = ids != self.pad_token
        return ids.masked_fill(~mask, self.model_fill_token), mask.long()

    # ----- text as bytes (the reference teacher) -----------------------------------
    def token_bytes(self) -> tuple[np.ndarray, np.ndarray]:
        """Every action's bytes, flat: ``(data uint8, offsets int64 of length A + 1)``; built once."""
        if self._pieces is None:
            pieces = _token_pieces(self.hf, self.num_actions)
            off = np.zeros(len(pieces) + 1, np.int64)
            np.cumsum([len(b) for b in pieces], out=off[1:])
            self._pieces = (np.frombuffer(b"".join(pieces), np.uint8), off)
        return self._pieces

    def decode_bytes(self, ids: Any) -> bytes:
        """The bytes a sequence of actions writes (the concatenation of :meth:`token_bytes`)."""
        data, off = self.token_bytes()
        return b"".join(data[off[i] : off[i + 1]].tobytes() for i in (int(x) for x in ids))

    def continuation_token(self, text: bytes) -> int:
        """The token that starts writing `text` (bytes, non-empty): the first token of the
        tokenizer's encoding of `text` when that token's bytes are a non-empty prefix of it; else
        (an encoding that adds a space, or `text` starting inside a character) the longest
        vocabulary token whose bytes are a prefix of `text`.

        Raises:
            ValueError: no token's bytes are a prefix of `text`.
        """
        data, off = self.token_bytes()
        try:
            ids = self.hf.encode(text.decode("utf-8"), add_special_tokens=False)
        except UnicodeDecodeError:
            ids = []
        if ids and ids[0] < self.num_actions:
            piece = data[off[ids[0]] : off[ids[0] + 1]].tobytes()
            if piece and text.startswith(piece):
                return int(ids[0])
        if self._piece_ids is None:
            special = _special_ids(self.hf)
            self._piece_ids = {}
            for i in range(self.num_actions - 1, -1, -1):  # the lowest id wins among equal bytes
                if i not in special and off[i + 1] > off[i]:
                    self._piece_ids[data[off[i] : off[i + 1]].tobytes()] = i
        for j in range(len(text), 0, -1):
            i = self._piece_ids.get(text[:j])
            if i is not None:
                return i
        raise ValueError(f"no token of the tokenizer writes a prefix of {text[:20]!r}")


def _special_ids(hf: Any) -> set[int]:
    """Ids of the tokenizer's special tokens (``all_special_ids`` and added tokens flagged special)."""
    out = {int(i) for i in getattr(hf, "all_special_ids", [])}
    for i, tok in (getattr(hf, "added_tokens_decoder", None) or {}).items():
        if getattr(tok, "special", False):
            out.add(int(i))
    return out


def _stop_id(hf: Any, token: Any) -> int | None:
    if isinstance(token, (int, np.integer)) and not isinstance(token, bool):
        return int(token) if 0 <= int(token) < len(hf) else None
    if isinstance(token, str):
        i = hf.convert_tokens_to_ids(token)
        unk = getattr(hf, "unk_token_id", None)
        if isinstance(i, int) and 0 <= i < len(hf) and (i != unk or token == getattr(hf, "unk_token", None)):
            return i
    return None


def template_stop_tokens(hf: Any) -> list[int]:
    """The special tokens a chat template writes right after an assistant message (its end of
    turn): ``[<end_of_turn>]`` for Gemma, ``[<|eot_id|>]`` for Llama 3; [] without a template."""
    if getattr(hf, "chat_template", None) is None:
        return []
    msgs = [{"role": "user", "content": "1 + 1?"}, {"role": "assistant", "content": _SENTINEL}]
    try:
        text = hf.apply_chat_template(msgs, tokenize=False)
    except Exception:  # noqa: BLE001  (a template may reject anything)
        return []
    if not isinstance(text, str) or _SENTINEL not in text:
        return []
    tail = text.rsplit(_SENTINEL, 1)[1]
    special = _special_ids(hf)
    return [int(i) for i in hf.encode(tail, add_special_tokens=False) if int(i) in special]


def detect_stop_tokens(hf: Any, use_chat_template: bool = True, extra: Any = (),
                       stop_on: str = "turn") -> tuple[int, ...]:
    """Every id that ends a generation, the one a teacher writes first (see the module docstring).

    Args:
        hf: a ``transformers`` tokenizer.
        use_chat_template: the prompt uses the chat template (its end-of-turn tokens come first).
        extra: more ids or token strings (e.g. a model's ``generation_config.eos_token_id``);
            an id outside the vocabulary or an unknown token string raises ValueError.
        stop_on: ``"turn"`` (all of the above and the usual end markers) or ``"eos"`` (the
            tokenizer's EOS and `extra` only).
    """
    out: list[int] = []
    if use_chat_template and stop_on == "turn":
        out += template_stop_tokens(hf)
    out.append(int(hf.eos_token_id))
    if isinstance(extra, (int, str, np.integer)):
        extra = [extra]
    for token in extra or ():
        i = _stop_id(hf, token)
        if i is None:
            raise ValueError(f"`stop_tokens`: {token!r} is not a token of the tokenizer ({len(hf)} ids); give an "
                             "id of its vocabulary or one of its token strings")
        out.append(i)
    if stop_on == "turn":
        special = _special_ids(hf)
        for name in KNOWN_STOP_TOKENS:
            i = _stop_id(hf, name)
            if i is not None and i in special:
                out.append(i)
    return tuple(dict.fromkeys(out))  # first occurrence order, no repeats


def _byte_level_table() -> dict[str, int]:
    """Inverse of byte-level BPE's byte -> printable character map (GPT-2's alphabet): bytes that
    are printable Latin-1 stand for themselves, the other 68 are shifted to 256 and up."""
    keep = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    table, shift = {}, 0
    for b in range(256):
        if b in keep:
            table[chr(b)] = b
        else:
            table[chr(256 + shift)] = b
            shift += 1
    return table


_BYTE_FALLBACK = re.compile(r"<0x([0-9A-Fa-f]{2})>")


def _decoder_steps(hf: Any) -> list[dict[str, Any]] | None:
    """The backend decoder's steps (JSON), flattened; None when there is no Rust backend."""
    backend = getattr(hf, "backend_tokenizer", None)
    if backend is None:
        return None
    import json

    def flat(d: Any) -> list[dict[str, Any]]:
        if not d:
            return []
        return [x for sub in d["decoders"] for x in flat(sub)] if d.get("type") == "Sequence" else [d]

    return flat(json.loads(backend.to_str()).get("decoder"))


def _token_pieces(hf: Any, n: int) -> list[bytes]:
    """Each id's bytes: the vocabulary string through the decoder's per-token steps."""
    tokens = hf.convert_ids_to_tokens(list(range(n)))
    special = {int(i) for i in (getattr(hf, "added_tokens_decoder", None) or {})}
    steps = _decoder_steps(hf)
    known = {"ByteLevel", "Replace", "ByteFallback", "Fuse", "Strip", "Metaspace"}
    if steps is None or any(d.get("type") not in known for d in steps):  # e.g. WordPiece: decode each id
        return [hf.decode([i], skip_special_tokens=False, clean_up_tokenization_spaces=False).encode()
                for i in range(n)]
    byte_level = any(d["type"] == "ByteLevel" for d in steps)
    fallback = any(d["type"] == "ByteFallback" for d in steps)
    replace = [(d["pattern"].get("String", ""), d["content"]) for d in steps
               if d["type"] == "Replace" and d["pattern"].get("String")]
    if any(d["type"] == "Metaspace" for d in steps):
        replace.append(("\u2581", " "))
    inverse = _byte_level_table() if byte_level else {}
    out = []
    for i, tok in enumerate(tokens):
        tok = tok or ""
        if i in special:
            out.append(tok.encode())
        elif byte_level and all(c in inverse for c in tok):
            out.append(bytes(inverse[c] for c in tok))
        elif fallback and _BYTE_FALLBACK.fullmatch(tok):
            out.append(bytes([int(tok[3:5], 16)]))
        else:
            for a, b in replace:
                tok = tok.replace(a, b)
            out.append(tok.encode("utf-8", errors="surrogateescape"))
    return out


def load_hf_tokenizer(name_or_path: str) -> Any:
    """``AutoTokenizer.from_pretrained`` with an install hint."""
    try:
        from transformers import AutoTokenizer
    except ImportError:
        raise ImportError("Hugging Face tokenizers need `transformers`: pip install 'noisy-expert-gym[hf]' "
                          "(or pip install transformers)") from None
    return AutoTokenizer.from_pretrained(name_or_path)


__all__ = ["BOXED_SYSTEM_PROMPT", "DEFAULT_SYSTEM_PROMPT", "KNOWN_STOP_TOKENS", "STOP_ON", "SYSTEM_PROMPTS",
           "HFTokenizer", "check_stop_on", "detect_stop_tokens", "load_hf_tokenizer", "template_stop_tokens"]
