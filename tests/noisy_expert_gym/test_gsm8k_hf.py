"""The Hugging Face LM teacher, offline: a tiny random GPT-2 and a locally built tokenizer."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import noisy_expert_gym  # noqa: F401  (registers the envs)
from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS, check_same_vocab

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
tokenizers = pytest.importorskip("tokenizers")

from gymnasium.utils.env_checker import check_env

from noisy_expert_gym.tasks.gsm8k.hf_teacher import HFTeacher

ENV_ID = "NoisyGSM8K-v1"
H = 80  # fits every test example's reference solution + EOS
CHAT = ("{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>\n{% endif %}")


def char_tokenizer(chars: list[str], chat_template: str | None = CHAT):
    """A character-level fast tokenizer built locally (BPE without merges): no download."""
    from tokenizers import Tokenizer, decoders, models
    from transformers import PreTrainedTokenizerFast

    vocab = {t: i for i, t in enumerate(["<unk>", "<pad>", "</s>", "<s>"] + chars)}
    tk = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tk.decoder = decoders.Fuse()
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>", pad_token="<pad>",
                                  eos_token="</s>", bos_token="<s>")
    tok.chat_template = chat_template
    return tok


ASCII = ["\n"] + [chr(c) for c in range(32, 127)]


def save_teacher(path: Path, chat_template: str | None = CHAT, n_positions: int = 512) -> Path:
    torch.manual_seed(0)
    tok = char_tokenizer(ASCII, chat_template)
    cfg = transformers.GPT2Config(n_layer=2, n_embd=32, n_head=2, vocab_size=len(tok), n_positions=n_positions,
                                  bos_token_id=3, eos_token_id=2, pad_token_id=1)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(path)
    tok.save_pretrained(path)
    return path


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_teacher(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def env(teacher_dir: Path) -> gym.Env:
    return gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"], expert=f"hf:{teacher_dir}", max_new_tokens=H, t=1.0)


def test_spaces_follow_the_teacher_vocabulary(env: gym.Env) -> None:
    u = env.unwrapped
    n = len(u.task.tokenizer.hf)
    assert env.action_space == gym.spaces.Discrete(n) and u.task.num_actions == n
    assert u.task.pad_token == n and u.task.eos_token == 2  # PAD after the actions; the tokenizer's EOS
    assert u.law == "temperature" and u.expert.t == 1.0 and u.clean_expert.is_clean


def test_prompt_uses_the_chat_template_and_system_prompt(env: gym.Env) -> None:
    u = env.unwrapped
    obs, _ = env.reset(seed=0, options={"problem": 1})
    prompt = obs[: u.task.prompt_len]
    text = u.task.tokenizer.decode(prompt[prompt != u.task.pad_token])
    assert text.startswith("<|system|>\nYou are a careful math tutor")
    assert EXAMPLE_PROBLEMS["test"][1]["question"] in text and text.endswith("<|assistant|>\n")


def test_env_checker(env: gym.Env) -> None:
    check_env(env.unwrapped, skip_render_check=True)


def _unpadded_probs(model, ids: list[int], t: float) -> np.ndarray:
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0, -1].double()
    return torch.softmax(logits / t, -1).numpy()


def test_probs_ignore_left_padding_and_follow_temperature(env: gym.Env) -> None:
    u = env.unwrapped
    obs, _ = env.reset(seed=0, options={"problem": 2})  # the shortest prompt: the most padding
    for k, a in enumerate(u.task.tokenizer.encode("There are 28")):
        obs, *_ = env.step(int(a))
    p = u.task.prompt_len
    ids = [int(x) for x in obs[: p + k + 1] if x != u.task.pad_token]
    np.testing.assert_allclose(u.expert.probs(obs), _unpadded_probs(u.expert.model, ids, 1.0), atol=1e-5)
    hot = HFTeacher(u.task, u.expert.model, t=4.0)
    np.testing.assert_allclose(hot.probs(obs), _unpadded_probs(u.expert.model, ids, 4.0), atol=1e-5)
    clean = u.clean_expert.probs(obs)
    assert clean.max() == 1.0 and clean.argmax() == u.expert.probs(obs).argmax()


def test_probs_along_equals_single_prefix_queries(env: gym.Env) -> None:
    u = env.unwrapped
    prompts = u.task.sample_prompts(np.random.default_rng(0), 3)
    chains = u.expert.rollout(prompts, generator=torch.Generator().manual_seed(0))
    u.expert.reset_queries()
    along = u.expert.probs_along(prompts, chains)
    assert along.shape == (3, H, u.task.num_actions) and u.expert.num_queries == 3 * H
    np.testing.assert_allclose(along.sum(-1), 1.0, atol=1e-5)
    for t in (0, 7, H - 1):
        np.testing.assert_allclose(u.expert.probs(u.task.observe(prompts, chains[:, :t])), along[:, t], atol=1e-5)
    tp, tc = torch.as_tensor(prompts), torch.as_tensor(chains)
    out = u.expert.probs_along(tp, tc)
    assert isinstance(out, torch.Tensor) and np.allclose(out.numpy(), along, atol=1e-5)


def test_rollouts_kv_cache_agrees_with_full_forward(env: gym.Env) -> None:
    u = env.unwrapped
    prompts = u.task.all_prompts()
    greedy = u.clean_expert.rollout(prompts)
    for t in (0, 5, 20):  # greedy KV-cached tokens == argmax of full-forward queries
        obs = u.task.observe(prompts, greedy[:, :t])
        live = ~(greedy[:, :t] == u.task.eos_token).any(1)
        assert np.array_equal(u.clean_expert.probs(obs).argmax(1)[live], greedy[live, t])
    a = u.expert.rollout(prompts, generator=torch.Generator().manual_seed(1))
    b = u.expert.rollout(prompts, generator=torch.Generator().manual_seed(1))
    assert np.array_equal(a, b) and a.shape == (len(prompts), H) and (a < u.task.num_actions).all()
    for row in a:  # EOS-padded after the first EOS
        hit = np.flatnonzero(row == u.task.eos_token)
        if len(hit):
            assert (row[hit[0]:] == u.task.eos_token).all()


def test_sample_log_prob_and_metrics(env: gym.Env) -> None:
    u = env.unwrapped
    obs, _ = env.reset(seed=3)
    batch = np.stack([obs, obs])
    a = u.expert.sample(batch)
    assert a.shape == (2,) and (a < u.task.num_actions).all()
    np.testing.assert_allclose(u.expert.log_prob(batch, a), np.log(u.expert.probs(batch)[[0, 1], a]), atol=1e-5)
    g = torch.Generator().manual_seed(0)
    assert isinstance(u.expert.sample(torch.as_tensor(batch), generator=g), torch.Tensor)
    env.step(int(a[0]))
    prompts = u.task.all_prompts()
    m = u.task.metrics(prompts, u.task.clean_chains(prompts))  # reference text in the teacher's vocabulary
    assert m["final_exact"].all() and m["full_exact"].all() and (m["num_errors"] == 0).all()


def test_no_chat_template_uses_a_plain_prompt(tmp_path: Path) -> None:
    d = save_teacher(tmp_path / "plain", chat_template=None)
    env = gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"][:1], expert=f"hf:{d}", max_new_tokens=H)
    u = env.unwrapped
    obs, _ = env.reset(seed=0)
    text = u.task.tokenizer.decode(obs[: u.task.prompt_len][obs[: u.task.prompt_len] != u.task.pad_token])
    assert "Question: A farm has" in text and text.endswith("Answer:")


def test_mismatched_tokenizers_are_a_clear_error(teacher_dir: Path) -> None:
    with pytest.raises(ValueError, match="tokenizers differ"):
        gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"], expert=f"hf:{teacher_dir}", tokenizer="char")
    other = char_tokenizer(ASCII[::-1])  # same tokens, other ids
    with pytest.raises(ValueError, match="tokenizers differ"):
        gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"], expert=f"hf:{teacher_dir}", tokenizer=other)
    with pytest.raises(ValueError, match="tokenizers differ"):
        check_same_vocab(char_tokenizer(ASCII[:50]), char_tokenizer(ASCII))
    check_same_vocab(char_tokenizer(ASCII), transformers.AutoTokenizer.from_pretrained(teacher_dir))
    env = gym.make(ENV_ID, problems=EXAMPLE_PROBLEMS["test"], expert=f"hf:{teacher_dir}", max_new_tokens=H,
                   tokenizer=char_tokenizer(ASCII))  # the same vocabulary is fine
    assert env.unwrapped.task.num_actions == len(ASCII) + 4


def test_hf_bad_inputs(teacher_dir: Path, tmp_path: Path) -> None:
    kw = {"problems": EXAMPLE_PROBLEMS["test"], "expert": f"hf:{teacher_dir}", "max_new_tokens": H}
    with pytest.raises(ValueError, match="temperature"):
        gym.make(ENV_ID, **kw | {"t": 0.0})
    with pytest.raises(ValueError, match="law"):
        gym.make(ENV_ID, **kw | {"law": "mixture"})
    with pytest.raises(ValueError, match="stop_on"):
        gym.make(ENV_ID, **kw | {"stop_on": "turns"})
    small = save_teacher(tmp_path / "short", n_positions=64)
    with pytest.raises(ValueError, match="positions"):
        gym.make(ENV_ID, **kw | {"expert": f"hf:{small}"})
