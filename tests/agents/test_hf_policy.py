"""The Hugging Face student policy, offline: tiny random GPT-2s and a locally built tokenizer."""

from __future__ import annotations

import math
from pathlib import Path

import gymnasium as gym
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")

import noisy_expert_gym  # noqa: F401  (registers the envs)
from agents import train
from agents.config import TrainConfig
from agents.hf_policy import HFPolicy
from agents.policies import build_policy
from agents.policy import TransformerPolicy
from noisy_expert_gym.tasks.gsm8k import EXAMPLE_PROBLEMS, write_example_data
from tests.noisy_expert_gym.test_gsm8k_hf import ASCII, char_tokenizer, save_teacher

H = 48  # keeps the short example problems (reference solution + EOS <= H), drops the rest


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One tiny GPT-2 + tokenizer: the teacher, and (loaded again) the student."""
    return save_teacher(tmp_path_factory.mktemp("tiny-gpt2"))


@pytest.fixture(scope="module")
def env(model_dir: Path) -> gym.Env:
    problems = EXAMPLE_PROBLEMS["train"] + EXAMPLE_PROBLEMS["test"]
    return gym.make("NoisyGSM8K-v1", problems=problems, expert=f"hf:{model_dir}", max_new_tokens=H)


@pytest.fixture(scope="module")
def task(env: gym.Env):
    return env.unwrapped.task


@pytest.fixture(scope="module")
def student(model_dir: Path, task) -> HFPolicy:
    return HFPolicy.from_pretrained(str(model_dir), task).eval()


@pytest.fixture(scope="module")
def prompts(task) -> torch.Tensor:
    p = torch.as_tensor(task.all_prompts())
    pads = (p == task.pad_token).sum(1)
    assert p.shape[0] >= 3 and pads.min() == 0 and pads.max() > 0  # left padding is exercised
    return p


def test_shapes_and_config(student: HFPolicy, task, prompts: torch.Tensor) -> None:
    B, P, A = prompts.shape[0], prompts.shape[1], task.num_actions
    chain = student.generate(prompts, H)
    assert chain.shape == (B, H) and chain.dtype == torch.long and ((chain >= 0) & (chain < A)).all()
    tokens = torch.cat([prompts, chain[:, :-1]], 1)
    logits = student(tokens)
    assert logits.shape == (B, P + H - 1, A) and torch.isfinite(logits).all()
    cl = student.chain_logits(prompts, chain)
    assert cl.shape == (B, H, A)
    torch.testing.assert_close(cl, logits[:, P - 1 :])  # what the trainer's teacher-forced call slices
    assert student.chain_logits(prompts, chain[:, :0]).shape == (B, 0, A)
    assert student.generate(prompts, 0).shape == (B, 0)
    cfg = student.cfg
    assert (cfg.num_actions, cfg.pad_token, cfg.eos_tokens) == (A, task.pad_token, (task.eos_token,))
    assert cfg.fill_token == task.tokenizer.model_fill_token and cfg.block_size == 512
    assert student.num_params() == student.num_trainable_params() > 0


def test_cached_generation_equals_uncached(student: HFPolicy, task, prompts: torch.Tensor) -> None:
    student.train()
    for temp in (0.0, 1.5):  # 20 steps: the uncached path recomputes the ~300-token prefix each step
        a = student.generate(prompts, 20, temperature=temp, generator=torch.Generator().manual_seed(3))
        b = student.generate(prompts, 20, temperature=temp, generator=torch.Generator().manual_seed(3),
                             use_cache=False)
        assert torch.equal(a, b), temp
    assert student.training  # generate restores the mode it found
    student.eval()
    greedy = student.generate(prompts, H)
    logits = student.chain_logits(prompts, greedy)  # greedy tokens are the argmax of the teacher-forced pass
    live = torch.cat([torch.ones_like(greedy[:, :1], dtype=torch.bool),
                      (greedy[:, :-1] != task.eos_token).cumprod(1).bool()], 1)
    assert torch.equal(logits.argmax(-1)[live], greedy[live])


def test_step_fn_and_eos_padding(student: HFPolicy, task, prompts: torch.Tensor) -> None:
    eos, seen = task.eos_token, []

    def roll_in(t: int, chain: torch.Tensor, tok: torch.Tensor) -> torch.Tensor:
        seen.append(t)
        forced = torch.full_like(tok, 7 + t)
        forced[1:] = eos if t == 2 else forced[1:]  # every row but the first stops at t = 2
        return forced

    for cache in (True, False):
        seen.clear()
        chain = student.generate(prompts, 12, step_fn=roll_in, use_cache=cache)
        assert chain[0].tolist() == [7 + t for t in range(12)] and seen == list(range(12))
        assert (chain[1:, 2:] == eos).all() and chain[1:, :2].tolist() == [[7, 8]] * (len(prompts) - 1)
        seen.clear()
        stop = student.generate(prompts, H, step_fn=lambda t, c, tok: torch.full_like(tok, eos), use_cache=cache)
        assert (stop == eos).all() and seen == []  # everyone wrote EOS at t = 0: stopped, EOS-filled


def test_left_padding_does_not_change_logits(student: HFPolicy, env: gym.Env, task, prompts: torch.Tensor) -> None:
    chain = student.generate(prompts, 6)
    batch = student(torch.cat([prompts, chain], 1))[:, -1]  # (B, A), rows padded by different amounts
    for i in range(prompts.shape[0]):
        real = prompts[i][prompts[i] != task.pad_token]
        alone = student(torch.cat([real, chain[i]])[None])[0, -1]  # no padding at all
        torch.testing.assert_close(batch[i], alone, atol=1e-5, rtol=1e-5)
        extra = torch.cat([torch.full((9,), task.pad_token), prompts[i], chain[i]])[None]  # more padding
        torch.testing.assert_close(student(extra)[0, -1], alone, atol=1e-5, rtol=1e-5)
    # The student loaded from the teacher's weights gives the teacher's distribution at every prefix.
    along = env.unwrapped.expert.probs_along(prompts, chain)
    torch.testing.assert_close(torch.softmax(student.chain_logits(prompts, chain), -1), along,
                               atol=1e-5, rtol=1e-4)


def test_lora_trains_only_the_adapters(model_dir: Path, task, prompts: torch.Tensor) -> None:
    pytest.importorskip("peft")
    base = HFPolicy.from_pretrained(str(model_dir), task).eval()
    torch.manual_seed(0)
    pol = HFPolicy.from_pretrained(str(model_dir), task,
                                   lora={"r": 4, "alpha": 8, "dropout": 0.0, "target_modules": ["c_attn"]}).eval()
    trainable = [n for n, p in pol.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)
    assert 0 < pol.num_trainable_params() < pol.num_params() and pol.cfg.lora["r"] == 4
    chain = pol.generate(prompts, 8)
    # LoRA's B matrices start at zero: the wrapped student starts as the base model.
    torch.testing.assert_close(pol.chain_logits(prompts, chain), base.chain_logits(prompts, chain))
    before = {n: p.detach().clone() for n, p in pol.named_parameters()}
    opt = torch.optim.AdamW([p for p in pol.parameters() if p.requires_grad], lr=1e-2)
    for _ in range(2):
        loss = torch.nn.functional.cross_entropy(pol.chain_logits(prompts, chain).flatten(0, 1), chain.flatten())
        opt.zero_grad()
        loss.backward()
        opt.step()
    changed = {n for n, p in pol.named_parameters() if not torch.equal(p, before[n])}
    assert changed and changed <= set(trainable)
    assert any("lora_B" in n for n in changed)
    assert not torch.equal(pol.chain_logits(prompts, chain), base.chain_logits(prompts, chain))


def _hf_train_kwargs(model_dir: Path, data_dir: Path, **over):
    kw = {"env_id": "NoisyGSM8K-v1", "preset": f"hf:{model_dir}", "budget_trajectories": 8, "batch_size": 4,
          "eval_prompts": 4, "device": "cpu", "progress": False, "precision": "fp32", "lr": 1e-3,
          "warmup_updates": 1, "env_kwargs": {"expert": f"hf:{model_dir}", "data_dir": str(data_dir),
                                             "split": "train", "max_new_tokens": H}}
    return {**kw, **over}


def test_train_end_to_end_with_an_hf_student(model_dir: Path, tmp_path: Path) -> None:
    data = write_example_data(tmp_path / "gsm8k")
    res = train(algo="nail-f", **_hf_train_kwargs(model_dir, data, checkpoint_dir=str(tmp_path / "ck")))
    assert isinstance(res.policy, HFPolicy) and res.trajectories == 8
    for k in ("val_loss", "train_loss", "greedy_final_exact", "greedy_full_exact", "sampled_final_exact"):
        assert math.isfinite(res.final_metrics[k]), k
    ck = torch.load(tmp_path / "ck" / "last.pt", map_location="cpu", weights_only=False)
    env = gym.make("NoisyGSM8K-v1", **ck["config"]["env_kwargs"])
    fresh = build_policy(TrainConfig(**ck["config"]), env.unwrapped.task, "cpu")
    fresh.load_state_dict(ck["model"])  # checkpoints hold the HF student's weights
    p = torch.as_tensor(env.unwrapped.task.all_prompts()[:2])
    assert torch.equal(fresh.generate(p, 8), res.policy.generate(p, 8))


@pytest.mark.parametrize("algo,over", [
    ("dagger", {}),  # roll-in through generate's step_fn
    ("opd-r", {"model": {"lora": {"r": 4, "alpha": 8, "target_modules": ["c_attn"]}}}),
])
def test_other_algorithms_and_lora_through_the_trainer(algo: str, over: dict, model_dir: Path,
                                                       tmp_path: Path) -> None:
    if over.get("model", {}).get("lora"):
        pytest.importorskip("peft")
    data = write_example_data(tmp_path / "gsm8k")
    res = train(algo=algo, **_hf_train_kwargs(model_dir, data, **over))
    assert all(math.isfinite(res.final_metrics[k]) for k in ("val_loss", "train_loss", "greedy_final_exact"))
    if "model" in over:
        assert res.policy.cfg.lora is not None and res.policy.num_trainable_params() < res.policy.num_params()


def test_hf_student_on_a_tokenizer_less_task(tmp_path: Path) -> None:
    """A model built from a config for modadd's own ids (no tokenizer) is a student there too."""
    task = gym.make("NoisyModAdd-v0", m=3).unwrapped.task
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=task.vocab_size, n_positions=16)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "m")
    res = train(algo="nail-f", env_id="NoisyModAdd-v0", env_kwargs={"m": 3}, preset=f"hf:{tmp_path / 'm'}",
                budget_trajectories=32, batch_size=16, eval_prompts=16, device="cpu", progress=False,
                precision="fp32")
    assert isinstance(res.policy, HFPolicy) and math.isfinite(res.final_metrics["val_loss"])
    cfg.vocab_size = task.vocab_size + 5
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "wrong")
    with pytest.raises(ValueError, match="does not match the task's"):
        HFPolicy.from_pretrained(str(tmp_path / "wrong"), task)


def test_vocabulary_mismatch_is_a_clear_error(model_dir: Path, task, tmp_path: Path) -> None:
    other = char_tokenizer(ASCII[::-1])  # same tokens, other ids
    torch.manual_seed(0)
    cfg = transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=len(other), n_positions=512)
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "other")
    other.save_pretrained(tmp_path / "other")
    with pytest.raises(ValueError, match="tokenizers differ"):
        HFPolicy.from_pretrained(str(tmp_path / "other"), task)
    with pytest.raises(ValueError, match="tokenizers differ"):  # through the trainer, before any training
        train(algo="nail-f", **_hf_train_kwargs(model_dir, write_example_data(tmp_path / "d"),
                                                preset=f"hf:{tmp_path / 'other'}"))
    transformers.GPT2LMHeadModel(cfg).save_pretrained(tmp_path / "bare")  # a model without a tokenizer
    with pytest.raises(ValueError, match="no tokenizer"):
        HFPolicy.from_pretrained(str(tmp_path / "bare"), task)
    HFPolicy.from_pretrained(str(tmp_path / "bare"), task, tokenizer=str(model_dir))  # the teacher's: fine
    small = transformers.GPT2LMHeadModel(transformers.GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=50))
    with pytest.raises(ValueError, match="resize_token_embeddings"):
        HFPolicy(small, task, tokenizer=task.tokenizer)
    modadd = gym.make("NoisyModAdd-v0", m=3).unwrapped.task
    with pytest.raises(ValueError, match="task .* has none"):
        HFPolicy.from_pretrained(str(model_dir), modadd)


def test_bad_options_are_clear_errors(model_dir: Path, task) -> None:
    with pytest.raises(ValueError, match="Did you mean `lora`"):
        build_policy(TrainConfig(preset=f"hf:{model_dir}", model={"lroa": True}), task, "cpu")
    with pytest.raises(ValueError, match="needs a model|names no model"):
        build_policy(TrainConfig(preset="hf:"), task, "cpu")
    with pytest.raises(ValueError, match="torch_dtype"):
        HFPolicy.from_pretrained(str(model_dir), task, torch_dtype="bfloat17")
    pytest.importorskip("peft")
    with pytest.raises(ValueError, match="unknown LoRA option"):
        HFPolicy.from_pretrained(str(model_dir), task, lora={"rank": 4})
    short = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        n_layer=1, n_embd=32, n_head=2, vocab_size=task.num_actions, n_positions=64))
    with pytest.raises(ValueError, match="positions"):
        HFPolicy(short, task, tokenizer=task.tokenizer)


def test_builtin_presets_still_build_the_transformer(task) -> None:
    modadd = gym.make("NoisyModAdd-v0", m=3).unwrapped.task
    pol = build_policy(TrainConfig(preset="tiny", model={"n_layer": 2}), modadd, "cpu")
    assert isinstance(pol, TransformerPolicy) and pol.cfg.n_layer == 2
