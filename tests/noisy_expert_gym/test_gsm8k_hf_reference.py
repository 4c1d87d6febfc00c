"""The reference teacher in a Hugging Face vocabulary (issue 16): a byte-level BPE tokenizer
trained locally on the example problems (merges, so one text has several tokenizations),
with a Gemma-style chat template. The vectorised oracle is checked against a one-prefix
definition written here independently, on strings, with the tokenizer's own encode/decode.
"""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env
from hypothesis import given, settings
from hypothesis import strategies as st

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS, GSM8KTask, HFTokenizer, WordProblem
from noisy_expert_gym.tasks.gsm8k.reference import ReferenceExpert

pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

from tests.noisy_expert_gym.test_gsm8k_stop_tokens import GEMMA_CHAT

H = 96
PROBLEMS = [WordProblem(**d, index=i) for i, d in enumerate(EXAMPLE_PROBLEMS["train"] + EXAMPLE_PROBLEMS["test"])]


def bpe_tokenizer():
    """Byte-level BPE (GPT-2 / Llama 3 style) trained here on the example problems."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE())
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    specials = ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"]
    trainer = trainers.BpeTrainer(vocab_size=420, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = [f"{p.question}\n{p.answer}\n#### 1,200 -12 3.5 \\boxed{{45}}" for p in PROBLEMS] * 20
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="<pad>", eos_token="<eos>", bos_token="<bos>",
                                  extra_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    tok.chat_template = GEMMA_CHAT
    return tok


@pytest.fixture(scope="module")
def hf():
    return bpe_tokenizer()


@pytest.fixture(scope="module", params=["####", "boxed"])
def task(request: pytest.FixtureRequest, hf) -> GSM8KTask:
    return GSM8KTask(PROBLEMS, tokenizer=hf, max_new_tokens=H, answer_format=request.param)


def expected_next(task: GSM8KTask, i: int, prefix: list[int]) -> int:
    """The reference teacher's definition, one prefix, on strings (independent of the package's code)."""
    hf, eos = task.tokenizer.hf, task.eos_token
    if any(x in task.eos_tokens for x in prefix):
        return eos
    ref = task.reference_tokens(i)
    if len(prefix) < len(ref) and prefix == ref[: len(prefix)]:
        return ref[len(prefix)]  # on the path: the next reference token
    text = hf.decode(prefix, clean_up_tokenization_spaces=False)
    ref_text = hf.decode(ref[:-1], clean_up_tokenization_spaces=False)
    line = task.answer_lines[i]
    if ref_text.startswith(text):  # other ids, same text: the rest of the reference
        cont = ref_text[len(text):]
    else:  # recovery: finish the line as the answer line, or start it on a new line
        last = text.split("\n")[-1]
        cont = line[len(last):] if line.startswith(last) else "\n" + line
    return hf.encode(cont, add_special_tokens=False)[0] if cont else eos


def _ids(task: GSM8KTask, text: str) -> list[int]:
    return [int(x) for x in task.tokenizer.encode(text)]


def test_bpe_has_several_tokenizations_and_the_reference_uses_the_canonical_one(task: GSM8KTask) -> None:
    tok = task.tokenizer
    assert isinstance(tok, HFTokenizer) and tok.eos_token == tok.hf.convert_tokens_to_ids("<end_of_turn>")
    merged = [i for i in task.reference_tokens(0)[:-1] if len(tok.decode([i])) > 1]
    assert merged, "the tokenizer should merge characters"
    for i in range(task.num_problems):  # bytes of the reference == the tokenizer's decode == the solution
        assert task.reference_bytes(i).decode() == tok.decode(task.reference_tokens(i)) == task.solutions[i]
        assert task.solutions[i].endswith(task.answer_lines[i])
    assert task.answer_lines[0] == ("\\boxed{27}" if task.answer_format == "boxed" else "#### 27")


def _split_chars(task: GSM8KTask, ids: list[int], k: int) -> list[int]:
    """ids with token k written character by character (same text, other ids)."""
    text = task.tokenizer.decode([ids[k]])
    return ids[:k] + [x for ch in text for x in _ids(task, ch)] + ids[k + 1:]


def _random_chains(task: GSM8KTask, seed: int, n: int = 8) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    prompts = task.sample_prompts(rng, n)
    idx = task.problem_index(prompts)
    pool = sorted({*_ids(task, "#### 27 1,200 -12\n\n\\boxed{45} x."), *task.eos_tokens})
    chains = np.full((n, H), task.eos_token, np.int64)
    for r in range(n):
        ids = task.reference_tokens(int(idx[r]))
        kind = rng.integers(0, 4)
        if kind == 1:  # same text, other ids (then possibly an error)
            ids = _split_chars(task, ids, int(rng.integers(0, len(ids) - 1)))
        if kind in (1, 2):
            for _ in range(rng.integers(0, 4)):
                ids[int(rng.integers(0, len(ids)))] = int(rng.choice(pool))
        if kind == 3:  # a detour then a hand-written recovery
            k = int(rng.integers(0, len(ids) - 1))
            ids = ids[:k] + _ids(task, "so 9\n" + task.answer_lines[int(idx[r])]) + [task.eos_token]
        chains[r, : min(len(ids), H)] = ids[:H]
    return prompts, chains


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**31 - 1))
def test_vectorised_oracle_matches_the_one_prefix_definition(task: GSM8KTask, seed: int) -> None:
    prompts, chains = _random_chains(task, seed)
    clean = task.clean_along(prompts, chains)
    err = task.error_along(prompts, chains)
    valid = task.valid_along(prompts, chains)
    idx = task.problem_index(prompts)
    for r in range(len(chains)):
        ref = task.reference_tokens(int(idx[r]))
        for t in np.flatnonzero(valid[r]):
            prefix = [int(x) for x in chains[r, :t]]
            want = expected_next(task, int(idx[r]), prefix)
            assert clean[r, t] == want == task.next_token(int(idx[r]), prefix), (r, t)
            assert err[r, t] == (prefix != ref[:t])


def _obs(task: GSM8KTask, i: int, prefix: list[int]) -> np.ndarray:
    return task.observe(task.prompts_for(np.array([i])), np.array([prefix], np.int64))[0]


@pytest.mark.parametrize("eta", [0.0, 0.3])
def test_probabilities_on_and_off_the_path(task: GSM8KTask, eta: float) -> None:
    a = task.num_actions
    u = np.full(a, 1.0 / a)  # U: every token of an HF vocabulary
    ref = task.reference_tokens(0)
    same_text = _split_chars(task, ref, next(k for k, x in enumerate(ref) if len(task.tokenizer.decode([x])) > 1))
    cases = {
        "on": ref[:5],  # on the reference path
        "same text": same_text[: next(k for k in range(len(ref)) if same_text[k] != ref[k]) + 2],
        "off": ref[:3] + _ids(task, " 99 apples"),  # off the path: recover toward the answer line
        "answer line": _ids(task, "no idea\n" + task.answer_lines[0][:3]),
    }
    mix, absorbing = Expert(task, law="mixture", eta=eta), Expert(task, law="absorbing", eta=eta)
    clean = ReferenceExpert(task, clean=True)
    for name, prefix in cases.items():
        obs = _obs(task, 0, prefix)
        want = np.eye(a)[expected_next(task, 0, prefix)]
        np.testing.assert_allclose(clean.probs(obs), want, err_msg=name)
        np.testing.assert_allclose(mix.probs(obs), (1 - eta) * want + eta * u, atol=1e-12, err_msg=name)
        np.testing.assert_allclose(absorbing.probs(obs), mix.probs(obs) if name == "on" else u, atol=1e-12,
                                   err_msg=name)
        assert bool(task.has_error(obs[None])[0]) == (name != "on")


def _clean_continuation(task: GSM8KTask, i: int, prefix: list[int]) -> list[int]:
    chain = list(prefix)
    while len(chain) < H:
        chain.append(int(task.clean_actions(_obs(task, i, chain)[None])[0]))
        if chain[-1] in task.eos_tokens:
            break
    return chain


def test_clean_continuations_finish_with_the_gold_answer(task: GSM8KTask) -> None:
    ref = task.reference_tokens(1)
    for prefix in (_ids(task, "It sells 9 muffins"), _ids(task, "#"), _split_chars(task, ref, 0)[:3],
                   ref[:4] + _ids(task, "\n") + _ids(task, task.answer_lines[1] + "0")):
        chain = _clean_continuation(task, 1, prefix)
        assert chain[-1] == task.eos_token
        text = task.tokenizer.decode(chain)
        assert text.endswith(task.answer_lines[1]) and task.answers(np.array([chain]))[0] == task.golds[1]
    # Same text, other ids: the teacher finishes the reference text itself.
    chain = _clean_continuation(task, 1, _split_chars(task, ref, 0)[:3])
    assert task.tokenizer.decode(chain) == task.solutions[1]


def test_reference_rollouts_and_metrics(task: GSM8KTask) -> None:
    prompts = task.all_prompts()
    clean = ReferenceExpert(task, clean=True, rng=np.random.default_rng(0))
    chains = clean.rollout(prompts)
    assert np.array_equal(chains, task.clean_chains(prompts))
    m = task.metrics(prompts, chains)
    assert m["full_exact"].all() and m["final_exact"].all() and (m["num_errors"] == 0).all()
    noisy = ReferenceExpert(task, law="mixture", eta=0.3, rng=np.random.default_rng(1))
    a = noisy.rollout(prompts)
    b = ReferenceExpert(task, law="mixture", eta=0.3, rng=np.random.default_rng(1)).rollout(prompts)
    assert np.array_equal(a, b) and (a < task.num_actions).all()


def test_env_with_an_hf_tokenizer_and_the_reference_teacher(hf) -> None:
    env = gym.make("NoisyGSM8K-v1", problems=EXAMPLE_PROBLEMS["test"], tokenizer=hf, max_new_tokens=H,
                   answer_format="boxed", eta=0.1)
    u = env.unwrapped
    check_env(u, skip_render_check=True)
    assert u.answer_format == "boxed" and isinstance(u.task.tokenizer, HFTokenizer)
    prompt = u.task.all_prompts()[0]
    text = u.task.tokenizer.decode(prompt[prompt != u.task.pad_token])
    assert "give the final answer inside \\boxed{}" in text and text.endswith("<start_of_turn>model\n")
    obs, _ = env.reset(seed=0, options={"problem": 2})
    done = False
    while not done:
        obs, reward, terminated, truncated, info = env.step(int(u.clean_expert.sample(obs)))
        done = terminated or truncated
    assert terminated and reward == 1.0 and info["full_exact"] and info["text"].endswith("\\boxed{7}")


def test_builtin_tokenizers_unchanged_by_the_text_oracle() -> None:
    """The one-prefix definition (now over bytes) still agrees with the char oracle, and a byte
    task answers like before on non-ASCII text."""
    task = GSM8KTask(PROBLEMS, tokenizer="byte", max_new_tokens=160)
    prefix = list(task.tokenizer.encode("Tom has 3 \u00d7 12"))
    assert task.next_token(0, prefix) == task.tokenizer.newline_token  # off the path: a new line
    prefix = list(task.tokenizer.encode("x\n#### 2"))
    assert task.tokenizer.decode([task.next_token(0, prefix)]) == "7"
