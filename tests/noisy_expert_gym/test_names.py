"""Every name derived from values is injective in them (issue 24, case 5).

The kind of fault: a name that rounds or rewrites what defines it, so two different things share
one name -- eta 0.1234567 and 0.1234571 were one Minari dataset id (``:g`` keeps six digits), ``a b``
and ``a_b`` one file. Hypothesis draws close floats (neighbours, values that agree to six digits)
and names that differ only in the characters a file name cannot hold.
"""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_expert_gym.utils import exact_number, safe_name

UNIT = st.floats(0.0, 1.0, allow_nan=False)


def close_pair(values: st.SearchStrategy[float] = UNIT) -> st.SearchStrategy[tuple[float, float]]:
    """Two different floats that print alike: float neighbours, or equal to six significant digits."""
    def neighbour(x: float) -> tuple[float, float]:
        y = math.nextafter(x, 2.0)
        return (x, y) if y <= 1.0 else (math.nextafter(x, -1.0), x)

    six = st.integers(1, 999_999).flatmap(
        lambda k: st.integers(1, 49).map(lambda d: (k / 1e6 + d * 1e-9 - 2.5e-8, k / 1e6 + d * 1e-9)))
    return st.one_of(values.map(neighbour), six)


@settings(max_examples=200, deadline=None)
@given(close_pair(st.floats(-1e30, 1e30, allow_nan=False)))
def test_exact_number_names_every_float_apart(pair):
    a, b = pair
    if a != b:
        assert exact_number(a) != exact_number(b)
    assert float(exact_number(a)) == a


def test_exact_number_keeps_short_names_short():
    assert [exact_number(x) for x in (0.2, 1.0, 3, 1e-7, 0.1234567)] == ["0.2", "1", "3", "1e-07", "0.1234567"]


@settings(max_examples=300, deadline=None)
@given(st.text(min_size=0, max_size=12), st.text(min_size=0, max_size=12))
def test_safe_name_is_injective_and_keeps_plain_names(a, b):
    if a != b:
        assert safe_name(a) != safe_name(b)
    assert all(c.isascii() and (c.isalnum() or c in "._-~") for c in safe_name(a))
    if a and all(c.isascii() and (c.isalnum() or c in "._-") for c in a) and a not in (".", ".."):
        assert safe_name(a) == a


def test_safe_name_examples():
    assert safe_name("hidden-s5") == "hidden-s5"
    assert safe_name("a b") != safe_name("a_b") == "a_b"
    assert safe_name("a b").startswith("a_b~")


# ----- Minari dataset ids -------------------------------------------------------------------------------------
minari_io = pytest.importorskip("noisy_expert_gym.bridges.minari_io")


def test_the_issues_two_etas_get_two_dataset_ids():
    a = minari_io.dataset_id("NoisyModAdd-v0", {"eta": 0.1234567})
    b = minari_io.dataset_id("NoisyModAdd-v0", {"eta": 0.1234571})
    assert a != b and "eta0_1234567" in a
    assert minari_io.dataset_id("NoisyModAdd-v0", {"eta": 0.2}) == "noisy-expert/modadd-p7-m31-eta0_2/noisy-v0"


@settings(max_examples=60, deadline=None)
@given(close_pair())
def test_dataset_ids_of_close_etas_differ(pair):
    a, b = pair
    assert minari_io.dataset_id("NoisyModAdd-m3-v0", {"eta": a}) != minari_io.dataset_id("NoisyModAdd-m3-v0",
                                                                                          {"eta": b})


@settings(max_examples=60, deadline=None)
@given(close_pair())
def test_dataset_ids_of_close_kappas_differ(pair):
    kw = {"law": "corrupted", "eta": 0.3}
    ids = {minari_io.dataset_id("NoisyModAdd-m3-v0", {**kw, "kappa": k}) for k in pair}
    assert len(ids) == 2


@settings(max_examples=40, deadline=None)
@given(a=st.lists(st.sampled_from(["\n", "=", "#", 0, 5, "a"]), min_size=1, max_size=3, unique=True),
       b=st.lists(st.sampled_from(["\n", "=", "#", 0, 5, "a"]), min_size=1, max_size=3, unique=True))
def test_dataset_ids_of_other_values_differ(a, b, tmp_path_factory):
    """Values that are not numbers or short words (GSM-8K's stop tokens) are named by a hash of them, never
    by rewriting their characters (``\\n`` and ``=`` were both ``_``)."""
    from noisy_expert_gym.tasks.gsm8k import write_example_data

    d = str(write_example_data(tmp_path_factory.mktemp("gsm8k")))
    ids = [minari_io.dataset_id("NoisyGSM8K-v1", {"data_dir": d, "stop_tokens": s}) for s in (a, b)]
    assert (ids[0] == ids[1]) == (a == b)


@settings(max_examples=300, deadline=None)
@given(a=st.one_of(st.text(max_size=30), st.integers(-10**6, 10**6), UNIT, st.booleans(), st.none()),
       b=st.one_of(st.text(max_size=30), st.integers(-10**6, 10**6), UNIT, st.booleans(), st.none()))
def test_a_kwarg_value_has_one_id_text(a, b):
    """Strings that differ only in characters an id cannot hold ("Solve it." and "Solve it!" were both
    ``Solve_it_``) get different texts; so do numbers that print alike."""
    comparable = {type(a), type(b)} <= {str} or {type(a), type(b)} <= {int, float}  # a kwarg has one type
    if comparable and a != b:
        assert minari_io._id_value(a) != minari_io._id_value(b)
    assert all(c.isascii() and (c.isalnum() or c == "_") for c in minari_io._id_value(a))
