"""The reference teacher of NoisyGSM8K as a dynamic oracle: the clean next token on every prefix.

**The reference teacher** (docs/design.md §6) is a deterministic dynamic oracle defined
on every prefix y = y_1..y_t, for any tokenizer. Text is taken as bytes: b(y) is
the concatenation of the tokens' bytes (:meth:`decode_bytes`). Let R be the
reference solution's tokens (its text encoded by the tokenizer) followed by EOS
(``eos_token``), S = b(R without EOS) the reference text as the tokenizer writes
it, and F = b(encode(line)) the final-answer line, ``"#### <gold>"`` (or
``"\\boxed{<gold>}"`` with ``answer_format="boxed"``), the gold as the reference
writes it (e.g. ``#### 1,080``). The clean next token after y is:

1. *On the reference path* -- the ids are R's first t ids, y == R[:t]: the next
   reference token R[t]. (Ids, not text: with a BPE tokenizer the same text has
   several tokenizations, and only R's is "the path".)
2. Otherwise the token that starts a continuation ``c`` (bytes), with
   - *the text still on the path* -- b(y) is a prefix of S (other ids, same
     text: ``"1" "2"`` where R has ``"12"``): c = the rest of S;
   - *else the recovery*: the shortest continuation after which the text's last
     line is F, then EOS. With u the current last line of b(y) (the bytes after
     its last newline; all of b(y) when it has none): u is a prefix of F (u may
     be empty, e.g. right after a newline): c = the rest of F; otherwise c =
     ``"\\n" + F``. So ``"...so 7"`` with F = ``"#### 72"`` continues
     ``"\\n#### 72<eos>"``, ``"\\n#### 7"`` continues ``"2<eos>"`` and
     ``"\\n#### 722"`` continues ``"\\n#### 72<eos>"``.

   c empty: EOS. Else the *first token of c re-tokenized*: the first id of
   ``tokenizer.encode(c)`` when its bytes are a non-empty prefix of c, else the
   longest token whose bytes are (:meth:`HFTokenizer.continuation_token`). With
   the built-in tokenizers (one token per character / byte) the text is on the
   path exactly when the ids are, and the token is c's first character.
3. After an EOS: the episode is over; placeholders: clean = slip = EOS, and
   "has an error" = whether the finished chain (EOS included) left the path.

It is a deterministic function of the prefix (its ids). An *error* is a token
that differs from the clean expert's token given the prefix as written. The
oracle follows R until the first deviation, so "the prefix contains an error"
is exactly "the prefix's ids have left R" (how the ``absorbing`` law detects it),
and errors after that are tokens that leave the continuation. A chain that ends
with another stop token than ``eos_token`` (e.g. the tokenizer's ``<eos>`` where
R ends with ``<end_of_turn>``) has left the path at its last token.

Each method accepts numpy arrays or torch tensors (any device) and returns the
same kind; the computation runs in numpy on the CPU (the oracle is over
strings), vectorised over the batch: over tokens for the built-in tokenizers,
over the bytes of the text for an HF tokenizer (the re-tokenized continuations
are cached per problem). :meth:`GSM8KTask.next_token` is the definition above
one prefix at a time; the vectorised paths are tested against it. Prompts are
mapped to their problem through a dict keyed on the prompt's tokens; prompts and
reference chains are stored ragged, so a task over hundreds of thousands of
problems (TinyGSM) costs their tokens, not problems x H.

"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from noisy_expert_gym.utils import is_torch

_NL = 10  # b"\n"


def _np(x: Any) -> np.ndarray:
    return x.detach().cpu().numpy() if is_torch(x) else np.asarray(x)


def _like(x: np.ndarray, ref: Any) -> Any:
    """`x` as the kind of `ref`: a torch tensor on ref's device, or numpy as is."""
    if is_torch(ref):
        import torch

        return torch.as_tensor(x, device=ref.device)
    return x


def recovery_text(text: Any, line: Any) -> Any:
    """The shortest continuation of `text` whose last line is `line` (EOS not included).

    Both ``str`` or both ``bytes``.
    """
    nl = "\n" if isinstance(text, str) else b"\n"
    last = text.rsplit(nl, 1)[-1]
    return line[len(last):] if line.startswith(last) else nl + line


def _ragged(rows: Sequence[np.ndarray], dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    """(flat values, offsets of length len(rows) + 1)."""
    off = np.zeros(len(rows) + 1, np.int64)
    np.cumsum([len(r) for r in rows], out=off[1:])
    flat = np.concatenate(rows).astype(dtype) if rows else np.zeros(0, dtype)
    return flat, off


def _gather(flat: np.ndarray, off: np.ndarray, idx: np.ndarray, width: int, fill: int,
            right: bool = False) -> np.ndarray:
    """Rows idx of a ragged array as an (N, width) int64 matrix padded with `fill`: left-aligned
    and cut at `width`, or right-aligned (``right``: rows no longer than `width`)."""
    start, length = off[idx], off[idx + 1] - off[idx]
    ar = np.arange(width)[None, :]
    if right:
        pos = start[:, None] + ar - (width - length)[:, None]
        keep = ar >= (width - length)[:, None]
    else:
        pos = start[:, None] + ar
        keep = ar < length[:, None]
    vals = flat[np.clip(pos, 0, max(len(flat) - 1, 0))] if len(flat) else np.zeros(pos.shape, flat.dtype)
    return np.where(keep, vals, fill).astype(np.int64)


@dataclass
class _Analysis:
    """The reference oracle at every prefix chain[:, :t] of a batch, t = 0..T-1 (numpy)."""

    clean: np.ndarray  # (N, T) int64
    error: np.ndarray  # (N, T) bool: chain[:, :t] has left the reference path
    slip: np.ndarray  # (N, T) int64
    valid: np.ndarray  # (N, T) bool: t <= first EOS
    on_path_len: np.ndarray  # (N,) common-prefix length with the reference (EOS included)
    first_eos: np.ndarray  # (N,) index of the first EOS, T if none


class DynamicOracle:
    """The reference oracle over a :class:`~noisy_expert_gym.tasks.gsm8k.GSM8KTask`'s problems (a
    base class of the task: it reads the task's tokenizer, references and answer lines)."""

    # ----- the reference oracle ---------------------------------------------------
    def reference_tokens(self, i: int) -> list[int]:
        """Problem i's reference chain R: solution tokens then EOS."""
        return self._ref_flat[self._ref_off[i] : self._ref_off[i + 1]].astype(np.int64).tolist()

    def reference_bytes(self, i: int) -> bytes:
        """S: problem i's reference text as the tokenizer writes it (R without EOS, as bytes)."""
        if i not in self._ref_bytes:
            self._ref_bytes[i] = self.tokenizer.decode_bytes(self.reference_tokens(i)[:-1])
        return self._ref_bytes[i]

    def line_bytes(self, i: int) -> bytes:
        """F: problem i's final-answer line as the tokenizer writes it (bytes)."""
        return self._line_entry(i)[0].astype(np.uint8).tobytes()

    def _line_entry(self, i: int) -> tuple[np.ndarray, np.ndarray, int]:
        """(F's bytes, the continuation token of F[k:] for k < len(F), that of newline + F); cached."""
        hit = self._line_cache.get(i)
        if hit is None:
            tok = self.tokenizer
            f = tok.decode_bytes(tok.encode(self.answer_lines[i]))
            firsts = np.array([tok.continuation_token(f[k:]) for k in range(len(f))], np.int64)
            hit = (np.frombuffer(f, np.uint8).astype(np.int16), firsts, tok.continuation_token(b"\n" + f))
            self._line_cache[i] = hit
        return hit

    def next_token(self, i: int, prefix: Sequence[int]) -> int:
        """The clean expert's next token after `prefix` on problem i: the definition (module
        docstring), one prefix at a time, for any tokenizer (slow: the vectorised paths are tested
        against it)."""
        tok, eos = self.tokenizer, self.eos_token
        prefix = [int(x) for x in prefix]
        if any(x in tok.eos_tokens for x in prefix):
            return eos
        ref, t = self.reference_tokens(i), len(prefix)
        if t < len(ref) and prefix == ref[:t]:
            return ref[t]
        text, s = tok.decode_bytes(prefix), self.reference_bytes(i)
        cont = s[len(text):] if s.startswith(text) else recovery_text(text, self.line_bytes(i))
        return tok.continuation_token(cont) if cont else eos

    def _analyse(self, prompts: Any, chain: Any) -> _Analysis:
        """The oracle at every prefix of `chain`, with a one-entry cache (probs_along asks three times)."""
        p, c = _np(prompts), _np(chain).astype(np.int64, copy=False)
        hit = self._cache
        if hit is not None and hit[0].shape == p.shape and hit[1].shape == c.shape \
                and np.array_equal(hit[1], c) and np.array_equal(hit[0], p):
            return hit[2]
        idx = self.problem_index(p)
        out = self._analyse_fast(idx, c) if self.tokenizer.fast_oracle else self._analyse_text(idx, c)
        self._cache = (p.copy(), c.copy(), out)
        return out

    def _analyse_fast(self, idx: np.ndarray, chain: np.ndarray) -> _Analysis:
        """Vectorised oracle for one-token-per-character tokenizers (same result as next_token)."""
        n, t_len = chain.shape
        eos, nl = self.eos_token, self.tokenizer.newline_token
        ar = np.arange(t_len)
        ref = self._ref_rows(idx, t_len)  # (N, T)
        match = chain == ref
        d = np.where(match.all(1), t_len, match.argmin(1))  # common prefix with R
        on = ar[None, :] <= d[:, None]  # prefix chain[:t] still on the path
        # Off the path: u = the current last line, i.e. chain[s_t : t] with s_t = 1 + last newline before t.
        is_nl = chain == nl
        last_nl = np.maximum.accumulate(np.where(is_nl, ar, -1), axis=1)
        s = np.zeros((n, t_len), np.int64)
        s[:, 1:] = last_nl[:, :-1] + 1
        k = ar[None, :] - s  # position of token t within its line == len(u) at prefix t
        line, llen = self._line[idx], self._line_len[idx][:, None]
        line_k = np.take_along_axis(line, np.minimum(k, line.shape[1] - 1), 1)  # F[k]
        bad = ~((k < llen) & (chain == line_k)) & ~is_nl  # token t breaks "u is a prefix of F"
        c = np.zeros((n, t_len + 1), np.int64)
        np.cumsum(bad, axis=1, out=c[:, 1:])
        u_bad = c[:, :t_len] - np.take_along_axis(c, s, 1)  # bad tokens in u
        off = np.where(u_bad > 0, nl, np.where(k < llen, line_k, eos))
        clean = np.where(on, np.where(ref < 0, eos, ref), off)
        is_eos = np.isin(chain, self._eos_arr)  # any stop token (stop_tokens adds to EOS)
        first_eos = np.where(is_eos.any(1), is_eos.argmax(1), t_len)
        valid = ar[None, :] <= first_eos[:, None]
        clean = np.where(valid, clean, eos)
        # Past the first EOS: whether the finished chain (EOS included) left the path, whatever follows.
        error = np.where(valid, ~on, (first_eos + 1 > d)[:, None])
        return _Analysis(clean=clean, error=error, slip=self._slip_table[clean], valid=valid,
                         on_path_len=d, first_eos=first_eos)

    def _analyse_text(self, idx: np.ndarray, chain: np.ndarray) -> _Analysis:
        """Vectorised oracle for any tokenizer: ids on the path, then the text as bytes (same result
        as next_token)."""
        t_len = chain.shape[1]
        eos = self.eos_token
        ar = np.arange(t_len)
        is_eos = np.isin(chain, self._eos_arr)
        first_eos = np.where(is_eos.any(1), is_eos.argmax(1), t_len)
        valid = ar[None, :] <= first_eos[:, None]
        ref = self._ref_rows(idx, t_len)
        match = chain == ref
        d = np.where(match.all(1), t_len, match.argmin(1))
        on = ar[None, :] <= d[:, None]
        clean = np.where(ref < 0, eos, ref)
        need = valid & ~on  # prefixes off the ids path: the text decides
        rows = np.flatnonzero(need.any(1))
        if len(rows):
            clean[rows] = np.where(need[rows], self._text_clean(idx[rows], chain[rows], need[rows]), clean[rows])
        clean = np.where(valid, clean, eos)
        error = np.where(valid, ~on, (first_eos + 1 > d)[:, None])
        return _Analysis(clean=clean, error=error, slip=self._slip_table[clean], valid=valid,
                         on_path_len=d, first_eos=first_eos)

    def _text_clean(self, idx: np.ndarray, chain: np.ndarray, need: np.ndarray) -> np.ndarray:
        """The clean token at the prefixes `need` (N, T) of rows off the ids path (cases 2 of the
        definition), over the bytes of each row's text; (N, T) int64, meaningful where `need`."""
        tok, eos = self.tokenizer, self.eos_token
        data, off = tok.token_bytes()
        n = chain.shape[0]
        t_need = int(np.flatnonzero(need.any(0)).max()) + 1  # prefixes t < t_need; tokens before them
        toks = chain[:, : t_need - 1]
        lens = (off[1:] - off[:-1])[toks]  # (N, t_need - 1) bytes per token
        pos = np.zeros((n, t_need), np.int64)  # pos[:, t] = bytes written by chain[:, :t]
        np.cumsum(lens, axis=1, out=pos[:, 1:])
        width = int(pos[:, -1].max()) + 1
        # The text X (N, width) as bytes, -1 after each row's end.
        reps = lens.ravel()
        total = int(reps.sum())
        within = np.arange(total) - np.repeat(np.cumsum(reps) - reps, reps)
        x = np.full((n, width), -1, np.int16)
        x[np.repeat(np.arange(n), toks.shape[1])[np.repeat(np.arange(reps.size), reps)],
          np.repeat(pos[:, :-1].ravel(), reps) + within] = data[np.repeat(off[toks.ravel()], reps) + within]

        # Case "text still on the path": X[:pos] is a prefix of S <=> pos <= first mismatch with S.
        s_mat = np.full((n, width), -2, np.int16)
        for r in range(n):
            s = np.frombuffer(self.reference_bytes(int(idx[r])), np.uint8)[:width]
            s_mat[r, : len(s)] = s
        diff = x != s_mat
        mismatch = np.where(diff.any(1), diff.argmax(1), width)
        on_text = need[:, :t_need] & (pos <= mismatch[:, None])

        # Recovery: u = the bytes since the last newline before pos; is u a prefix of F?
        entries = [self._line_entry(int(i)) for i in idx]
        fmax = max(len(e[0]) for e in entries)
        f_mat = np.full((n, fmax + 1), -3, np.int16)
        first = np.full((n, fmax + 1), eos, np.int64)  # column len(F): u == F, write EOS
        f_len = np.zeros(n, np.int64)
        nl_tok = np.zeros(n, np.int64)
        for r, (f, firsts, nl_first) in enumerate(entries):
            f_mat[r, : len(f)], first[r, : len(f)], f_len[r], nl_tok[r] = f, firsts, len(f), nl_first
        q = np.arange(width)[None, :]
        is_nl = x == _NL
        last_nl = np.maximum.accumulate(np.where(is_nl, q, -1), axis=1)  # last newline at or before q
        line_start = np.zeros((n, width), np.int64)  # of the line holding byte q
        line_start[:, 1:] = last_nl[:, :-1] + 1
        k_q = q - line_start
        f_q = np.take_along_axis(f_mat, np.minimum(k_q, fmax), 1)
        bad = ~is_nl & ~((k_q < f_len[:, None]) & (x == f_q))
        c = np.zeros((n, width + 1), np.int64)
        np.cumsum(bad, axis=1, out=c[:, 1:])
        start = np.where(pos > 0, np.take_along_axis(last_nl, np.maximum(pos - 1, 0), 1) + 1, 0)
        k = pos - start  # len(u)
        u_bad = np.take_along_axis(c, pos, 1) - np.take_along_axis(c, start, 1)
        recover = np.where(u_bad > 0, nl_tok[:, None], np.take_along_axis(first, np.minimum(k, fmax), 1))

        out = recover
        for r, t in zip(*np.nonzero(on_text)):  # rare: other ids, same text
            i, p = int(idx[r]), int(pos[r, t])
            key = (i, p)
            if key not in self._cont_cache:
                if len(self._cont_cache) > 1 << 20:
                    self._cont_cache.clear()
                rest = self.reference_bytes(i)[p:]
                self._cont_cache[key] = tok.continuation_token(rest) if rest else eos
            out[r, t] = self._cont_cache[key]
        full = np.full(chain.shape, eos, np.int64)
        full[:, :t_need] = out
        return full

    def _analyse_obs(self, obs: Any) -> tuple[_Analysis, np.ndarray]:
        o = _np(obs)
        t = self.step_index(o)
        t_len = int(min(t.max(initial=0) + 1, self.H))
        return self._analyse(o[:, : self.P], o[:, self.P: self.P + t_len]), np.minimum(t, t_len - 1)
