"""GSM-8K answer handling: gold parsing, calculator annotations, final-answer extraction."""

from __future__ import annotations

import pytest

from noisy_expert_gym.tasks.gsm8k import (
    answers_match,
    extract_answer,
    normalize_number,
    parse_gold,
    reference_solution,
    strip_annotations,
)

EXTRACTION = [
    # (model output, extracted answer)
    ("Natalia sold 72 clips.\n#### 72", "72"),
    ("#### 1,080", "1080"),
    ("#### $1,080.", "1080"),
    ("#### 72 clips", "72"),
    ("#### -7 degrees", "-7"),
    ("#### \u22127", "-7"),  # unicode minus
    ("#### 3.50", "3.5"),
    ("#### 0.25", "0.25"),
    ("#### -.5", "-0.5"),
    ("#### 5\nfoo\n#### 6", "6"),  # the last #### line counts
    ("Answer: 12\n#### ", "12"),  # empty #### line: fall back to the last number
    ("The answer is \\boxed{18}.", "18"),
    ("\\boxed{1,000} then \\boxed{42}", "42"),
    ("\\boxed{\\$1{,}000}", "1000"),
    ("\\boxed{\\text{5 apples}}", "5"),
    ("\\boxed{\\frac{3}{4}}", "3/4"),
    ("\\boxed{\\dfrac{6}{3}}", "2"),
    ("She earns $10.", "10"),
    ("So 48-24 = 24 clips are left.", "24"),
    ("10 - 3 = 7", "7"),
    ("Total: 1,234,567 dollars", "1234567"),
    ("It costs $0.25 per minute", "0.25"),
    ("1,2345", "2345"),  # not a thousands group: two numbers
    ("no number here", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), EXTRACTION)
def test_extract_answer_table(text: str, expected: str | None) -> None:
    assert extract_answer(text) == expected


def test_strict_extraction_needs_a_marked_answer() -> None:
    assert extract_answer("She earns $10.", strict=True) is None
    assert extract_answer("blah 3\n#### 10", strict=True) == "10"
    assert extract_answer("\\boxed{7}", strict=True) == "7"


def test_parse_gold_and_annotations() -> None:
    answer = "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\nShe sold 1,000 + 80 = <<1000+80=1080>>1,080.\n#### 1,080"
    assert parse_gold(answer) == ("1080", "1,080")
    assert parse_gold("x\n#### -12") == ("-12", "-12")
    assert strip_annotations(answer).startswith("Natalia sold 48/2 = 24 clips in May.\n")
    assert "<<" not in reference_solution(answer) and reference_solution(answer).endswith("#### 1,080")
    assert reference_solution(answer, strip=False) == answer
    with pytest.raises(ValueError, match="####"):
        parse_gold("no final line")
    with pytest.raises(ValueError, match="number"):
        parse_gold("#### many")


@pytest.mark.parametrize(("raw", "norm"), [("1,080", "1080"), ("+5", "5"), ("$12", "12"), ("-3.50", "-3.5"),
                                           ("7.0", "7"), ("6/4", "3/2"), ("1e2", "100"), ("-0", "0")])
def test_normalize_number(raw: str, norm: str) -> None:
    assert normalize_number(raw) == norm


def test_answers_match_is_numeric() -> None:
    assert answers_match("72.0", "72") and answers_match("1080", "1,080") and answers_match("0.5", "1/2")
    assert not answers_match(None, "72") and not answers_match("71", "72") and not answers_match("x", "72")
