"""GSM8KTask: tokenizers, the reference oracle (on and off the path), noise laws, valid_along,
metrics, numpy/torch agreement."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks import GSM8KTask
from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS, ByteTokenizer, CharTokenizer, WordProblem
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

TINY = [
    WordProblem("What is 2 + 3?", "2 + 3 = <<2+3=5>>5.\n#### 5", 0),
    WordProblem("A shop sells 40 pens a day for 30 days. How many pens?",
            "It sells 40 * 30 = <<40*30=1200>>1,200 pens.\n#### 1,200", 1),
    WordProblem("Mia has $8 and owes $20. What is her balance?", "8 - 20 = <<8-20=-12>>-12\n#### -12", 2),
]
H = 48


@pytest.fixture(scope="module", params=["char", "byte"])
def task(request: pytest.FixtureRequest) -> GSM8KTask:
    return GSM8KTask(TINY, tokenizer=request.param, max_new_tokens=H)


def _chain(task: GSM8KTask, text: str, eos: bool = False) -> np.ndarray:
    ids = list(task.tokenizer.encode(text)) + ([task.eos_token] if eos else [])
    return np.array(ids, np.int64)


def _next(task: GSM8KTask, problem: int, prefix_text: str) -> str:
    """The vectorised clean action after a prefix, as text ('<eos>' for EOS)."""
    prompts = task.prompts_for(np.array([problem]))
    obs = task.observe(prompts, _chain(task, prefix_text)[None])
    a = int(task.clean_actions(obs)[0])
    assert a == task.next_token(problem, _chain(task, prefix_text))  # the definition agrees
    return "<eos>" if a == task.eos_token else task.tokenizer.decode([a])


# ----- tokenizers -----------------------------------------------------------------

def test_builtin_token_conventions() -> None:
    c, b = CharTokenizer(), ByteTokenizer()
    assert (c.num_actions, c.eos_token, c.sep_token, c.pad_token, c.vocab_size) == (97, 96, 97, 98, 99)
    assert (b.num_actions, b.eos_token, b.sep_token, b.pad_token, b.vocab_size) == (257, 256, 257, 258, 259)
    for tok in (c, b):
        assert tok.sep_token >= tok.num_actions and tok.pad_token >= tok.num_actions  # specials after actions
        assert tok.eos_token < tok.num_actions  # EOS is an action
        assert tok.decode(tok.encode("0123456789")) == "0123456789"
        assert list(tok.digit_tokens) == list(tok.encode("0123456789"))


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60), st.text(max_size=30))
def test_tokenizer_round_trip(ascii_text: str, any_text: str) -> None:
    text = ascii_text + "\n" + ascii_text
    assert CharTokenizer().decode(CharTokenizer().encode(text)) == text  # exact for ASCII
    assert ByteTokenizer().decode(ByteTokenizer().encode(any_text), errors="surrogateescape") == any_text
    ids = CharTokenizer().encode(any_text)  # anything encodes into the alphabet
    assert ((ids >= 0) & (ids < 96)).all()


def test_char_tokenizer_folds_unicode_to_ascii() -> None:
    c = CharTokenizer()
    assert c.normalize("It\u2019s 3 \u00d7 4 \u2212 1 \u20ac\u00bd\tcaf\u00e9\u200b") == "It's 3 x 4 - 1 EUR1/2 cafe"
    assert c.decode(c.encode("\u4e2d")) == "?"


# ----- layout, prompts ------------------------------------------------------------

def test_sizes_and_prompt_layout(task: GSM8KTask) -> None:
    tok = task.tokenizer
    assert task.num_actions == tok.num_actions and task.vocab_size == tok.vocab_size
    assert task.horizon == H and task.obs_len == task.prompt_len + H
    assert task.prompt_len == max(len(tok.encode(p.question)) for p in TINY) + 1
    prompts = task.all_prompts()
    assert (prompts[:, -1] == task.sep_token).all()
    short = prompts[0]
    n_pad = int((short == task.pad_token).sum())
    assert (short[:n_pad] == task.pad_token).all() and tok.decode(short[n_pad:-1]) == TINY[0].question
    assert list(task.problem_index(prompts)) == [0, 1, 2]
    assert task.answer_mask.shape == (task.num_actions,) and task.answer_mask[task.eos_token]
    assert task.answer_mask.sum() == 97  # newline, 95 printable ASCII, EOS


def test_sample_prompts_numpy_and_torch(task: GSM8KTask) -> None:
    torch = pytest.importorskip("torch")
    p = task.sample_prompts(np.random.default_rng(0), 16)
    assert p.shape == (16, task.prompt_len) and p.dtype == np.int64
    assert np.array_equal(p, task.sample_prompts(np.random.default_rng(0), 16))
    g = torch.Generator().manual_seed(0)
    pt = task.sample_prompts(g, 16)
    assert isinstance(pt, torch.Tensor) and pt.shape == (16, task.prompt_len)
    set(task.problem_index(pt))  # every sampled prompt is a known problem


def test_unknown_prompt_is_a_clear_error(task: GSM8KTask) -> None:
    bad = task.all_prompts()[:1].copy()
    bad[0, -2] = int(task.tokenizer.encode("Z")[0])
    with pytest.raises(ValueError, match="not one of this task's"):
        task.clean_chains(bad)


# ----- the reference oracle -------------------------------------------------------

ON_PATH = [  # (problem, prefix, next) on the reference path: the next reference token
    (0, "", "2"), (0, "2 + 3 =", " "), (0, "2 + 3 = 5.", "\n"), (0, "2 + 3 = 5.\n#### ", "5"),
    (0, "2 + 3 = 5.\n#### 5", "<eos>"), (1, "It sells 40 * 30 = 1", ","), (2, "8 - 20 = ", "-"),
]
OFF_PATH = [  # (problem, prefix, next) off the path: toward "\n#### <gold>" then EOS
    (0, "2 + 3 = 6", "\n"),  # last line is not a prefix of "#### 5": start a new line
    (0, "2 + 3 = 6.", "\n"),
    (0, "2 + 3 = 6\n", "#"),  # empty last line: write the answer line
    (0, "2 + 3 = 6\n##", "#"),
    (0, "2 + 3 = 6\n#### ", "5"),
    (0, "2 + 3 = 6\n#### 5", "<eos>"),
    (0, "2 + 3 = 6\n#### 6", "\n"),  # wrong answer line: start over on a new line
    (0, "2 + 3 = 5.\n#### 55", "\n"),  # overshoot of the right answer
    (0, "2 + 3 = 5.\n\n", "#"),
    (0, "#", "#"),  # off the path from the start, but the line is a prefix of "#### 5"
    (0, " ", "\n"),
    (0, "2 + 3 = 5.\n####", " "),  # on the path ...
    (0, "2 + 3 = 5.\n#### 5\n", "#"),  # ... and off it after the reference's EOS position
    (1, "x\n#### 1", ","),  # the gold as the reference writes it: "#### 1,200"
    (1, "x\n#### 1,20", "0"),
    (1, "x\n#### 1200", "\n"),
    (2, "8 - 20 = 12\n#### ", "-"),
]


@pytest.mark.parametrize(("problem", "prefix", "expected"), ON_PATH + OFF_PATH)
def test_reference_oracle_hand_written(task: GSM8KTask, problem: int, prefix: str, expected: str) -> None:
    assert _next(task, problem, prefix) == expected


def test_has_error_means_left_the_reference_path(task: GSM8KTask) -> None:
    prompts = task.prompts_for(np.zeros(4, np.int64))
    chains = [_chain(task, s) for s in ("", "2 + 3", "2 + 4", "2 + 4\n#### 5")]
    obs = np.concatenate([task.observe(prompts[:1], c[None]) for c in chains])
    assert list(task.has_error(obs)) == [False, False, True, True]
    assert list(task.step_index(obs)) == [len(c) for c in chains]


def _random_chains(task: GSM8KTask, seed: int, n: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """Reference chains with random edits drawn from reference, answer-line, newline, EOS and any tokens."""
    rng = np.random.default_rng(seed)
    prompts = task.sample_prompts(rng, n)
    chains = task.clean_chains(prompts).copy()
    pool = np.concatenate([task.tokenizer.encode("#### 51,200-\n"), [task.eos_token],
                           rng.integers(0, task.num_actions, 4)])
    for r in range(n):
        for _ in range(rng.integers(0, 5)):
            chains[r, rng.integers(0, H)] = rng.choice(pool)
        if rng.random() < 0.3:  # a recovery written by hand
            k = rng.integers(0, 20)
            tail = _chain(task, "\n#### " + task.gold_texts[task.problem_index(prompts[r : r + 1])[0]], eos=True)
            chains[r, k : k + len(tail)] = tail[: H - k]
    return prompts, chains


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vectorised_oracle_matches_definition(task: GSM8KTask, seed: int) -> None:
    prompts, chains = _random_chains(task, seed)
    clean = task.clean_along(prompts, chains)
    valid = task.valid_along(prompts, chains)
    err = task.error_along(prompts, chains)
    idx = task.problem_index(prompts)
    for r in range(len(chains)):
        ref = task.reference_tokens(idx[r])
        for t in np.flatnonzero(valid[r]):
            assert clean[r, t] == task.next_token(idx[r], chains[r, :t])
            assert err[r, t] == (list(chains[r, :t]) != ref[:t])


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vectorised_oracle_matches_definition_with_stop_tokens(seed: int) -> None:
    """`stop_tokens` on a built-in tokenizer: '=' ends a chain as EOS does, in the vectorised oracle (masks,
    clean actions) as in the one-prefix definition."""
    from noisy_expert_gym.tasks.gsm8k import make_tokenizer

    task = GSM8KTask(TINY, tokenizer=make_tokenizer("char").with_stop_tokens(["="]), max_new_tokens=H)
    prompts, chains = _random_chains(task, seed)
    clean, valid = task.clean_along(prompts, chains), task.valid_along(prompts, chains)
    metrics = task.metrics(prompts, chains)
    idx = task.problem_index(prompts)
    eq = int(task.tokenizer.encode("=")[0])
    for r in range(len(chains)):
        stops = np.flatnonzero(np.isin(chains[r], [task.eos_token, eq]))
        assert valid[r].sum() == metrics["length"][r] == (stops[0] + 1 if len(stops) else H)
        assert metrics["finished"][r] == bool(len(stops))
        for t in np.flatnonzero(valid[r]):
            assert clean[r, t] == task.next_token(idx[r], chains[r, :t])


def test_clean_chains_are_solved_by_the_clean_expert(task: GSM8KTask) -> None:
    prompts = task.all_prompts()
    chains = task.clean_chains(prompts)
    assert np.array_equal(task.clean_along(prompts, chains)[task.valid_along(prompts, chains)],
                          chains[task.valid_along(prompts, chains)])
    assert not task.error_along(prompts, chains).any()
    m = task.metrics(prompts, chains)
    assert m["full_exact"].all() and m["final_exact"].all() and (m["num_errors"] == 0).all()
    assert list(m["correct_prefix_len"]) == [len(task.reference_tokens(i)) for i in range(3)] == list(m["length"])
    assert task.texts(chains)[0] == "2 + 3 = 5.\n#### 5"
    assert task.answers(chains) == ["5", "1200", "-12"]


def test_metrics_of_a_detour_and_recovery(task: GSM8KTask) -> None:
    prompts = task.prompts_for(np.zeros(3, np.int64))
    rows = [_chain(task, "2 + 4\n#### 5", eos=True), _chain(task, "2 + 3 = 5.\n#### 6", eos=True),
            _chain(task, "2 + 3 = 5.\n#### 5")]
    chains = np.full((3, H), task.eos_token, np.int64)
    chains[2, :] = task.tokenizer.encode(" ")[0]  # no EOS at all: truncated
    for r, c in enumerate(rows):
        chains[r, : len(c)] = c
    m = task.metrics(prompts, chains)
    assert list(m["final_exact"]) == [True, False, True]
    assert list(m["full_exact"]) == [False, False, False]
    assert list(m["num_errors"]) == [1, 2, 1 + (H - len(rows[2]) - 1)]  # "4"; "6" and EOS; then spaces
    assert list(m["correct_prefix_len"]) == [4, 16, 17]
    assert list(m["finished"]) == [True, True, False] and m["length"][2] == H


# ----- valid_along: junk after EOS is ignored everywhere -------------------------------

def test_valid_along_semantics(task: GSM8KTask) -> None:
    prompts = task.prompts_for(np.array([0, 0]))
    chains = np.full((2, H), int(task.tokenizer.encode("x")[0]), np.int64)
    chains[0, 3] = task.eos_token
    chains[0, 7] = task.eos_token
    valid = task.valid_along(prompts, chains)
    assert list(np.flatnonzero(valid[0])) == [0, 1, 2, 3]  # up to and including the first EOS
    assert valid[1].all()  # no EOS: every prefix is a decision


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_junk_after_eos_is_ignored(task: GSM8KTask, seed: int) -> None:
    prompts, chains = _random_chains(task, seed, n=6)
    chains[:, 30] = task.eos_token
    junk = chains.copy()
    junk[:, 31:] = np.random.default_rng(seed).integers(0, task.num_actions, (6, H - 31))
    for f in (task.clean_along, task.error_along, task.slip_along, task.valid_along):
        assert np.array_equal(f(prompts, chains), f(prompts, junk))
    m1, m2 = task.metrics(prompts, chains), task.metrics(prompts, junk)
    assert all(np.array_equal(m1[k], m2[k]) for k in m1)


# ----- noise laws over the reference oracle (closed forms) ------------------------

def _obs(task: GSM8KTask, problem: int, prefix: str) -> np.ndarray:
    return task.observe(task.prompts_for(np.array([problem])), _chain(task, prefix)[None])[0]


@pytest.mark.parametrize("eta", [0.0, 0.2, 0.7])
def test_noise_laws_closed_forms(eta: float) -> None:
    task = GSM8KTask(TINY, tokenizer="char", max_new_tokens=H, uniform_over="digits")
    tok = task.tokenizer
    digit, space, six = (int(tok.encode(c)[0]) for c in "2 6")
    on_digit, on_space = _obs(task, 0, ""), _obs(task, 0, "2")  # clean: "2", then " "
    off = _obs(task, 0, "2 + 4")  # off the path: clean "\n"
    u = np.zeros(task.num_actions)
    u[tok.digit_tokens] = 0.1

    mix = Expert(task, law="mixture", eta=eta)
    np.testing.assert_allclose(mix.probs(on_digit), (1 - eta) * np.eye(97)[digit] + eta * u)
    np.testing.assert_allclose(mix.probs(on_space), (1 - eta) * np.eye(97)[space] + eta * u)
    absorbing = Expert(task, law="absorbing", eta=eta)
    np.testing.assert_allclose(absorbing.probs(on_space), mix.probs(on_space))
    np.testing.assert_allclose(absorbing.probs(off), u)  # U once the prefix contains an error
    biased = Expert(task, law="biased", eta=eta)
    np.testing.assert_allclose(biased.probs(on_digit), (1 - eta) * np.eye(97)[digit] + eta * np.eye(97)[
        int(tok.encode("3")[0])])  # off-by-one digit
    np.testing.assert_allclose(biased.probs(on_space), np.eye(97)[space])  # non-digits never slip
    two_next = _obs(task, 1, "x\n#### 1,")  # clean "2"
    assert int(task.slip_actions(two_next[None])[0]) == int(tok.encode("3")[0])
    assert int(task.slip_actions(_obs(task, 0, "2 + 3 = 5.\n#### ")[None])[0]) == six  # clean "5"
    nine, zero = (int(tok.encode(c)[0]) for c in "90")
    assert task._slip_table[nine] == zero  # (9 + 1) mod 10
    clean = Expert(task, clean=True)
    np.testing.assert_allclose(clean.probs(off), np.eye(97)[tok.newline_token])


def test_default_uniform_support_is_text_and_eos() -> None:
    task = GSM8KTask(TINY, tokenizer="byte", max_new_tokens=H)
    mask = task.answer_mask
    assert mask.sum() == 97 and mask[task.eos_token] and mask[ord("\n")] and mask[ord("~")]
    assert not mask[0] and not mask[200]
    assert GSM8KTask(TINY, tokenizer="byte", max_new_tokens=H, uniform_over="all").answer_mask.all()


def test_reference_expert_rollouts_stop_at_eos() -> None:
    task = GSM8KTask(TINY, tokenizer="char", max_new_tokens=H)
    prompts = task.all_prompts()
    clean = ReferenceExpert(task, clean=True, rng=np.random.default_rng(0))
    chains = clean.rollout(prompts)
    assert np.array_equal(chains, task.clean_chains(prompts))
    assert clean.num_queries == sum(len(task.reference_tokens(i)) for i in range(3))
    noisy = ReferenceExpert(task, law="mixture", eta=0.5, rng=np.random.default_rng(1))
    a, b = noisy.rollout(prompts), ReferenceExpert(task, law="mixture", eta=0.5,
                                                   rng=np.random.default_rng(1)).rollout(prompts)
    assert np.array_equal(a, b)
    eos = np.argmax(a == task.eos_token, axis=1)
    for r in range(3):
        if (a[r] == task.eos_token).any():
            assert (a[r, eos[r]:] == task.eos_token).all()


# ----- numpy / torch agreement ------------------------------------------------------

def test_numpy_and_torch_agree(task: GSM8KTask) -> None:
    torch = pytest.importorskip("torch")
    prompts, chains = _random_chains(task, 7)
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(chains)
    for f in (task.clean_along, task.error_along, task.slip_along, task.valid_along):
        out = f(tp, tc)
        assert isinstance(out, torch.Tensor) and np.array_equal(out.numpy(), f(prompts, chains))
    obs = task.observe(prompts, chains[:, :10])
    tobs = task.observe(tp, tc[:, :10])
    assert isinstance(tobs, torch.Tensor) and np.array_equal(tobs.numpy(), obs)
    for f in (task.step_index, task.clean_actions, task.has_error, task.slip_actions):
        assert np.array_equal(np.asarray(f(tobs)), f(obs))
    assert np.array_equal(task.clean_chains(tp).numpy(), task.clean_chains(prompts))
    m_np, m_t = task.metrics(prompts, chains), task.metrics(tp, tc)
    for k in m_np:
        assert isinstance(m_t[k], torch.Tensor) and np.array_equal(m_t[k].numpy(), m_np[k])
    for law in ("absorbing", "mixture", "biased"):
        e = Expert(task, law=law, eta=0.3)
        np.testing.assert_allclose(e.probs_along(tp, tc).numpy(), e.probs_along(prompts, chains), atol=1e-6)


# ----- bad inputs -----------------------------------------------------------------------

@pytest.mark.parametrize("h", [0, -3, 2.5, True])
def test_bad_max_new_tokens(h: object) -> None:
    with pytest.raises(ValueError, match="max_new_tokens"):
        GSM8KTask(TINY, max_new_tokens=h)  # type: ignore[arg-type]


def test_overflow_policy_and_subset() -> None:
    probs = [WordProblem(**d, index=i) for i, d in enumerate(EXAMPLE_PROBLEMS["train"])]
    with pytest.raises(ValueError, match="does not fit.*overflow='drop'"):
        GSM8KTask(probs, max_new_tokens=30, overflow="error")
    dropped = GSM8KTask(probs, max_new_tokens=50)
    assert dropped.num_dropped > 0 and dropped.num_problems == len(probs) - dropped.num_dropped
    assert GSM8KTask(probs, max_new_tokens=200, max_prompt_tokens=70).prompt_len == 70
    with pytest.raises(ValueError, match="no problem fits"):
        GSM8KTask(probs, max_new_tokens=5)
    sub = GSM8KTask(probs, max_new_tokens=200, subset=3, seed=1)
    assert sub.num_problems == 3
    assert sub.prompt_len == GSM8KTask(probs, max_new_tokens=200).prompt_len  # the whole split's shape
    assert [p.index for p in sub.problems] == [p.index for p in GSM8KTask(probs, max_new_tokens=200,
                                                                          subset=3, seed=1).problems]
    with pytest.raises(ValueError, match="subset"):
        GSM8KTask(probs, max_new_tokens=200, subset=100)
    with pytest.raises(ValueError, match="Did you mean `drop`"):
        GSM8KTask(probs, overflow="drp")
    with pytest.raises(ValueError, match="unknown `tokenizer`"):
        GSM8KTask(probs, tokenizer="chars")


def test_validate_obs_rejects_malformed(task: GSM8KTask) -> None:
    obs = _obs(task, 0, "2 + 3")[None]
    task.validate_obs(obs)
    with pytest.raises(ValueError, match="shape"):
        task.validate_obs(obs[:, 1:])
    bad = obs.copy()
    bad[0, task.prompt_len + 10] = task.tokenizer.encode("x")[0]  # a token after padding
    with pytest.raises(ValueError, match="followed by padding"):
        task.validate_obs(bad)
    bad = obs.copy()
    bad[0, task.prompt_len - 1] = 0
    with pytest.raises(ValueError, match="separator"):
        task.validate_obs(bad)


# ----- evaluation on a whole split ---------------------------------------------------------

def test_prompt_batches_cover_every_problem_once_in_order(task: GSM8KTask) -> None:
    torch = pytest.importorskip("torch")
    batches = list(task.prompt_batches(2))
    assert [len(b) for b in batches] == [2, 1]
    assert np.array_equal(np.concatenate(batches), task.all_prompts())
    assert list(task.problem_index(np.concatenate(batches))) == list(range(task.num_problems))
    tb = list(task.prompt_batches(8, device="cpu"))
    assert len(tb) == 1 and isinstance(tb[0], torch.Tensor) and np.array_equal(tb[0].numpy(), task.all_prompts())
    with pytest.raises(ValueError, match="batch_size"):
        next(task.prompt_batches(0))


def test_torch_prompt_draws_gather_on_the_cpu_for_large_tasks(task: GSM8KTask,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    torch = pytest.importorskip("torch")
    kept = task.sample_prompts(torch.Generator().manual_seed(3), 16)
    from noisy_expert_gym.tasks.gsm8k import core

    monkeypatch.setattr(core, "_DEVICE_PROMPTS_MAX", 0)  # as for a TinyGSM-sized task
    gathered = task.sample_prompts(torch.Generator().manual_seed(3), 16)
    assert torch.equal(kept, gathered)
