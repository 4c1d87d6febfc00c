"""GSM-8K answer handling: gold parsing, calculator annotations, final-answer extraction."""

from __future__ import annotations

import pytest

from noisy_expert_gym.tasks.gsm8k import (
    answer_line,
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


# ----- the paper authors' format: last \boxed{}, else the last number; 1e-5 ----------------

BOXED = [
    # (model output, extracted answer with answer_format="boxed")
    ("So the total is \\boxed{72}.", "72"),
    ("\\boxed{{72}}", "72"),  # nested braces
    ("\\boxed{\\text{\\{}5\\text{\\}}}", "5"),  # escaped braces inside a nested group
    ("\\boxed{\\frac{3}{4}}", "3/4"),
    ("\\boxed{\\dfrac{6}{3}}", "2"),
    ("\\boxed{6/3}", "2"),  # a plain fraction (the authors' float() reads none; see answers.py)
    ("First \\boxed{3}, then \\boxed{5}.", "5"),  # several boxes: the last
    ("\\boxed{1,080}", "1080"),  # commas
    ("\\boxed{1{,}080}", "1080"),
    ("\\boxed{\\$1,080.00}", "1080"),  # $ signs and decimals
    ("\\boxed{$18}", "18"),
    ("\\boxed{18 \\text{ apples}}", "18"),  # units
    ("\\boxed{50\\%}", "50"),
    ("\\boxed{-7}", "-7"),  # negatives
    ("\\boxed{\u22127}", "-7"),
    ("\\boxed{-0.5}", "-0.5"),  # decimals
    ("\\boxed{3.50}", "3.5"),
    ("\\boxed{.25}", "0.25"),
    ("\\boxed{72.} is it", "72"),
    ("\\boxed {12}", "12"),
    ("\\boxed{72", "72"),  # unclosed: the rest of the text
    ("\\boxed{} and 7", None),  # the last box holds no number: no answer
    ("\\boxed{x} then 7", None),
    ("no box: 12 apples and 30 pears.", "30"),  # no box: the last number
    ("#### 5\nthen 6", "6"),  # `####` is not special in this format
    ("She has -3.5 degrees", "-3.5"),
    ("no number", None),
    ("", None),
]


@pytest.mark.parametrize(("text", "expected"), BOXED)
def test_boxed_extraction_table(text: str, expected: str | None) -> None:
    assert extract_answer(text, answer_format="boxed") == expected


def test_boxed_strict_and_the_default_format_unchanged() -> None:
    assert extract_answer("no box: 12", strict=True, answer_format="boxed") is None
    assert extract_answer("\\boxed{9}", strict=True, answer_format="boxed") == "9"
    assert extract_answer("#### 5\nthen 6") == "5"  # "####": the marked line wins
    with pytest.raises(ValueError, match="Did you mean `boxed`"):
        extract_answer("1", answer_format="boxd")


def test_boxed_compare_within_tolerance() -> None:
    assert answers_match("72.000001", "72", tol=1e-5) and answers_match("1080", "1,080", tol=1e-5)
    assert not answers_match("72.0001", "72", tol=1e-5) and not answers_match(None, "72", tol=1e-5)
    assert not answers_match("72.000001", "72")  # the default is exact
    assert answers_match("3/4", "0.75", tol=1e-5) and answers_match("-0.5", "-1/2", tol=1e-5)


def test_boxed_reference_solution_and_answer_line() -> None:
    answer = "She sold 48/2 = <<48/2=24>>24 clips.\n#### 1,080"
    assert answer_line("1,080") == "#### 1,080" and answer_line("1,080", "boxed") == "\\boxed{1,080}"
    assert reference_solution(answer, answer_format="boxed") == "She sold 48/2 = 24 clips.\n\\boxed{1,080}"
    assert extract_answer(reference_solution(answer, answer_format="boxed"), answer_format="boxed") == "1080"
    assert reference_solution(answer) == "She sold 48/2 = 24 clips.\n#### 1,080"

