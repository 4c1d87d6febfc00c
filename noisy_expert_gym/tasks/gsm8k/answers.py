"""GSM-8K answer handling: gold answers, calculator annotations, final-answer extraction.

GSM-8K reference answers are worked solutions whose last line is ``#### <number>``
and whose arithmetic carries calculator annotations such as ``<<48/2=24>>``. A
model's output is scored by extracting its final answer (:func:`extract_answer`)
and comparing it numerically with the gold answer (:func:`answers_match`).

Two *answer formats* (:data:`ANSWER_FORMATS`) say how a solution states its
final answer, what a teacher is asked for and how the answer is read back:

- ``"####"`` (this package's default, GSM-8K's own): the last line is
  ``#### <number>``. Extraction: the number on the last ``####`` line, else the
  last ``\\boxed{}``, else the last number; compared exactly (as fractions).
- ``"boxed"`` (the paper authors' GSM-8K recipe): the model reasons step by step
  and puts the final answer in ``\\boxed{}``; the reference solution's final
  line is ``\\boxed{<number>}``. Extraction: the content of the *last*
  ``\\boxed{...}`` (nested braces balanced) -- its number, or None when it holds
  none -- else (no box at all) the last number of the text; compared
  numerically within :data:`BOXED_TOLERANCE` (``|pred - gold| < 1e-5``), as the
  authors' evaluation does. Commas, ``$``/``\\$``, ``%``, trailing periods and
  ``\\text{...}`` units are ignored. Deviation, on purpose: a box holding a
  fraction (``\\frac{6}{3}``, ``6/3``) is read as its value (2); the authors'
  ``float()`` reads none, so such a box never matches there.

Numbers are normalised to a canonical string (:func:`normalize_number`): commas
(thousands separators), a leading ``+``, ``$`` and trailing zeros of decimals go,
so ``"1,080"``, ``"1080.00"`` and ``"$1080"`` all become ``"1080"``;
fractions (from ``\\frac{a}{b}``) become ``"a/b"`` in lowest terms.
"""

from __future__ import annotations

import re
from decimal import Decimal
from fractions import Fraction

from noisy_expert_gym.utils import did_you_mean

#: A calculator annotation ``<<expression=result>>``.
ANNOTATION_RE = re.compile(r"<<[^<>]*>>")

#: The marker that opens GSM-8K's final-answer line.
ANSWER_MARK = "####"

_MINUS = "-\u2212\u2013"  # ASCII hyphen, unicode minus, en dash
# A number: optional sign (not when glued to a word or a digit, so "48-24" is 48 then 24),
# optional "$", then thousands-grouped digits, plain digits, or a bare ".5"; optional decimals.
NUMBER_RE = re.compile(
    rf"(?:(?<![\w.)])(?P<sign>[{_MINUS}])\s?)?\$?\s?"
    r"(?P<num>(?:\d{1,3}(?:,\d{3})+(?!\d)|\d+)(?:\.\d+)?|\.\d+)"
)
_BOXED = "\\boxed"
#: Answer formats: GSM-8K's ``#### n`` line (default) or the paper authors' ``\\boxed{n}``.
ANSWER_FORMATS: tuple[str, ...] = ("####", "boxed")
#: Numeric tolerance of the ``"boxed"`` format's comparison (the authors' evaluation).
BOXED_TOLERANCE = 1e-5
_FRAC_RE = re.compile(r"\\d?frac\{\s*(-?\d+)\s*\}\{\s*(-?\d+)\s*\}")
_FRACTION_RE = re.compile(r"-?\s?\d+\s*/\s*\d+")


def strip_annotations(text: str) -> str:
    """Remove calculator annotations: ``"48/2 = <<48/2=24>>24"`` -> ``"48/2 = 24"``."""
    return ANNOTATION_RE.sub("", text)


def normalize_number(text: str) -> str:
    """Canonical form of one number: ``"1,080"`` -> ``"1080"``, ``"-3.50"`` -> ``"-3.5"``.

    Accepts an optional sign (ASCII or unicode minus), ``$``, thousands commas,
    decimals and ``a/b`` fractions. Raises ValueError for anything else.
    """
    s = text.strip().replace(",", "").replace("$", "").replace(" ", "")
    for m in _MINUS[1:]:
        s = s.replace(m, "-")
    try:
        value = Fraction(s)
    except (ValueError, ZeroDivisionError):
        raise ValueError(f"not a number: {text!r}") from None
    if value.denominator == 1:
        return str(value.numerator)
    if "/" in s:
        return f"{value.numerator}/{value.denominator}"
    return format(Decimal(s).normalize(), "f")


def parse_gold(answer: str) -> tuple[str, str]:
    """Split a GSM-8K reference answer into (gold number, gold text as written).

    The gold is what follows the last ``####``: ``"... #### 1,080"`` -> ``("1080", "1,080")``.

    Raises:
        ValueError: when there is no ``####`` line or it holds no number.
    """
    pos = answer.rfind(ANSWER_MARK)
    if pos < 0:
        raise ValueError(f"a GSM-8K answer must end with a `#### <number>` line; got {answer[-80:]!r}")
    gold_text = answer[pos + len(ANSWER_MARK):].strip()
    try:
        return normalize_number(gold_text), gold_text
    except ValueError:
        raise ValueError(f"the `####` line of a GSM-8K answer must hold a number; got {gold_text!r}") from None


def check_answer_format(answer_format: str) -> str:
    """`answer_format` if it is one of :data:`ANSWER_FORMATS`, else a ValueError that lists them."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"unknown `answer_format` {answer_format!r}; valid values: "
                         f"{', '.join(repr(f) for f in ANSWER_FORMATS)}.{did_you_mean(str(answer_format), ANSWER_FORMATS)}")
    return answer_format


def answer_line(gold_text: str, answer_format: str = "####") -> str:
    """The final-answer line of a reference solution: ``#### 1,080`` or ``\\boxed{1,080}``."""
    if check_answer_format(answer_format) == "boxed":
        return f"{_BOXED}{{{gold_text}}}"
    return f"{ANSWER_MARK} {gold_text}"


def reference_solution(answer: str, strip: bool = True, answer_format: str = "####") -> str:
    """The teacher text of a reference answer: annotations stripped (if `strip`), whitespace trimmed,
    and (``answer_format="boxed"``) its ``#### n`` line rewritten as ``\\boxed{n}``."""
    text = (strip_annotations(answer) if strip else answer).strip()
    if check_answer_format(answer_format) == "boxed":
        pos = text.rfind(ANSWER_MARK)
        if pos >= 0:
            text = text[:pos] + answer_line(text[pos + len(ANSWER_MARK):].strip(), "boxed")
    return text


def _first_number(text: str) -> str | None:
    m = NUMBER_RE.search(text)
    return _number_of(m) if m else None


def _number_of(m: re.Match) -> str:
    sign = "-" if m.group("sign") else ""
    return normalize_number(sign + m.group("num"))


def _boxed_content(text: str) -> str | None:
    """Content of the last ``\\boxed{...}`` (nested braces balanced), or None."""
    pos = text.rfind(_BOXED)
    while pos >= 0:
        i = pos + len(_BOXED)
        while i < len(text) and text[i] == " ":
            i += 1
        if i < len(text) and text[i] == "{":
            depth, j = 0, i
            while j < len(text):
                depth += {"{": 1, "}": -1}.get(text[j], 0)
                if depth == 0:
                    return text[i + 1 : j]
                j += 1
            return text[i + 1 :]  # unclosed: take the rest
        pos = text.rfind(_BOXED, 0, pos)
    return None


def _box_number(box: str) -> str | None:
    """The number a ``\\boxed{...}`` content holds (``\\frac{a}{b}`` as ``a/b``), or None."""
    frac = _FRAC_RE.search(box)
    if frac:
        try:
            return normalize_number(f"{frac.group(1)}/{frac.group(2)}")
        except ValueError:
            pass
    box = box.replace("\\$", "$").replace("\\!", "").replace("{,}", ",").replace("\\%", "%")
    m = _FRACTION_RE.fullmatch(box.strip().rstrip("."))  # a box that is a plain "a/b"
    if m:
        try:
            return normalize_number(m.group(0))
        except ValueError:
            pass
    return _first_number(box)


def extract_answer(text: str, strict: bool = False, answer_format: str = "####") -> str | None:
    """Extract the final numeric answer from a model's output, normalised; None if there is none.

    ``answer_format="####"`` (default), first rule that applies:

    1. ``#### n``: the first number on the line after the *last* ``####``
       (``"#### $1,080."`` -> ``"1080"``, ``"#### -7 degrees"`` -> ``"-7"``);
    2. ``\\boxed{n}``: the last box's number (``\\$``, ``\\text{...}`` units and
       ``\\frac{a}{b}`` are handled);
    3. unless ``strict``: the last number anywhere in the text (trailing units
       and periods ignored: ``"She earns $10."`` -> ``"10"``).

    ``answer_format="boxed"`` (the paper authors'): the number in the *last*
    ``\\boxed{...}`` (nested braces balanced; None when that box holds no
    number); without any box, unless ``strict``, the last number of the text
    (``####`` lines are not special).
    """
    if check_answer_format(answer_format) == "boxed":
        box = _boxed_content(text)
        if box is not None:
            return _box_number(box)
        if strict:
            return None
        matches = list(NUMBER_RE.finditer(text))
        return _number_of(matches[-1]) if matches else None
    pos = text.rfind(ANSWER_MARK)
    if pos >= 0:
        line = text[pos + len(ANSWER_MARK):].split("\n", 1)[0]
        num = _first_number(line)
        if num is not None:
            return num
    box = _boxed_content(text)
    if box is not None:
        frac = _FRAC_RE.search(box)
        if frac:
            try:
                return normalize_number(f"{frac.group(1)}/{frac.group(2)}")
            except ValueError:
                pass
        num = _first_number(box.replace("\\$", "$").replace("\\!", "").replace("{,}", ","))
        if num is not None:
            return num
    if strict:
        return None
    matches = list(NUMBER_RE.finditer(text))
    return _number_of(matches[-1]) if matches else None


def answers_match(pred: str | None, gold: str, tol: float = 0.0) -> bool:
    """Whether an extracted answer equals the gold numerically (``"72.0"`` matches ``"72"``).

    ``tol == 0``: exact (as fractions); ``tol > 0``: ``|pred - gold| < tol`` (the
    ``"boxed"`` format uses :data:`BOXED_TOLERANCE`).
    """
    if pred is None:
        return False
    try:
        p, g = Fraction(pred.replace(",", "")), Fraction(gold.replace(",", ""))
    except (ValueError, ZeroDivisionError):
        return False
    return abs(float(p) - float(g)) < tol if tol > 0 else p == g


def answer_tolerance(answer_format: str) -> float:
    """The comparison tolerance of an answer format: 0 (exact) for ``####``, 1e-5 for ``boxed``."""
    return BOXED_TOLERANCE if check_answer_format(answer_format) == "boxed" else 0.0
