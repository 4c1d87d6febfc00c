"""An HF student of Gemma 3's shape (issue 16), offline: tiny random Gemma-3 models built here.

- the student's rollouts stop at any of the task's stop tokens (``<end_of_turn>`` or ``<eos>``);
- the recipe's LoRA (:data:`agents.hf_policy.PAPER_LORA`) adapts exactly the seven projections of
  every block, at rank 128 with alpha / r = 2;
- the reference teacher in Gemma's (here: a character-level Gemma-style) vocabulary trains such a
  student end to end, through the structured expert rows.
"""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
pytest.importorskip("tokenizers")
pytest.importorskip("peft")

from agents import train
from agents.hf_policy import PAPER_LORA, HFPolicy
from noisy_expert_gym import make_problem
from noisy_expert_gym.tasks.gsm8k import GSM8KTask, HFTokenizer
from noisy_expert_gym.tasks.gsm8k.data import write_example_data
from tests.noisy_expert_gym.test_gsm8k_stop_tokens import PROBLEMS, gemma_tokenizer

PROJECTIONS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def gemma(vocab: int, layers: int = 2, positions: int = 1024, seed: int = 0):
    cfg = transformers.Gemma3TextConfig(vocab_size=vocab, hidden_size=64, intermediate_size=96,
                                        num_hidden_layers=layers, num_attention_heads=2, num_key_value_heads=1,
                                        head_dim=32, max_position_embeddings=positions, tie_word_embeddings=True,
                                        pad_token_id=0, eos_token_id=1, bos_token_id=2)
    torch.manual_seed(seed)
    return transformers.Gemma3ForCausalLM(cfg)


def successor_gemma(tok, successor: dict[str, str]):
    """A one-layer Gemma 3 whose greedy output is a next-token table (attention and MLP outputs zeroed,
    one-hot embeddings, an LM head that maps each token to its successor)."""
    v = len(tok)
    model = gemma(v, layers=1)
    model.config.tie_word_embeddings = False
    model.lm_head = torch.nn.Linear(64, v, bias=False)
    with torch.no_grad():
        model.model.embed_tokens.weight.copy_(torch.eye(v, 64))
        for layer in model.model.layers:
            layer.self_attn.o_proj.weight.zero_()
            layer.mlp.down_proj.weight.zero_()
        model.lm_head.weight.zero_()
        for a, b in successor.items():
            model.lm_head.weight[tok.convert_tokens_to_ids(b), tok.convert_tokens_to_ids(a)] = 10.0
    return model.eval()


@pytest.mark.parametrize("stop", ["<end_of_turn>", "<eos>"])
def test_student_rollouts_stop_at_any_stop_token(stop: str) -> None:
    tok = gemma_tokenizer()
    task = GSM8KTask(PROBLEMS, tokenizer=HFTokenizer(tok), max_new_tokens=24)
    eot = tok.convert_tokens_to_ids("<end_of_turn>")
    assert task.eos_tokens[0] == eot and tok.eos_token_id in task.eos_tokens
    model = successor_gemma(tok, {"\n": "4", "4": "2", "2": stop, stop: "9", "9": "9"})
    student = HFPolicy(model, task, tokenizer=tok)
    assert student.cfg.eos_tokens == task.eos_tokens
    calls = []
    student.lm.register_forward_hook(lambda *_: calls.append(1))
    prompts = torch.as_tensor(task.all_prompts())
    for temperature in (0.0, 1e-4):
        calls.clear()
        chain = student.generate(prompts, task.horizon, temperature=temperature,
                                 generator=torch.Generator().manual_seed(0))
        assert task.texts(chain) == ["42", "42"]
        assert (chain[:, 2] == tok.convert_tokens_to_ids(stop)).all()
        assert (chain[:, 3:] == eot).all()  # after the stop: the first stop token, never "9"
        assert len(calls) == 3  # prefill, then two cached steps: generation stopped at the stop token
        assert task.metrics(prompts, chain)["final_exact"].all()


def test_recipe_lora_adapts_the_seven_projections_at_rank_128() -> None:
    tok = gemma_tokenizer()
    task = GSM8KTask(PROBLEMS, tokenizer=HFTokenizer(tok), max_new_tokens=24)
    base = gemma(len(tok), layers=2)
    frozen = {n: p.detach().clone() for n, p in base.named_parameters()}
    student = HFPolicy(base, task, tokenizer=tok, lora=PAPER_LORA)
    assert student.cfg.lora["r"] == 128 and student.cfg.lora["alpha"] == 256
    adapted = {}
    for name, module in student.model.named_modules():
        if hasattr(module, "lora_A") and "default" in module.lora_A:
            adapted[name] = module
    want = {f"layers.{i}.{'self_attn' if p in PROJECTIONS[:4] else 'mlp'}.{p}" for i in range(2) for p in PROJECTIONS}
    assert {n[n.index("layers."):] for n in adapted} == want  # all seven, every block, nothing else
    for m in adapted.values():
        assert m.lora_A["default"].weight.shape[0] == 128 and m.lora_B["default"].weight.shape[1] == 128
        assert m.scaling["default"] == pytest.approx(2.0)  # alpha / r
        assert m.lora_dropout["default"].__class__.__name__ == "Identity"  # dropout 0
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all("lora_" in n for n in trainable)
    n_lora = sum(128 * (m.in_features + m.out_features) for m in adapted.values())
    assert student.num_trainable_params() == n_lora
    # The base weights are untouched and frozen.
    base_params = {n.replace("base_layer.", ""): p for n, p in student.lm.named_parameters() if "lora_" not in n}
    assert set(base_params) == set(frozen)
    assert all(torch.equal(p, frozen[n]) and not p.requires_grad for n, p in base_params.items())


def test_reference_teacher_trains_a_gemma_student_with_the_recipe_lora(tmp_path: Path) -> None:
    """The download-free reference teacher in the student's vocabulary, absorbing noise, structured rows,
    two micro-batches: NAIL-F runs end to end; the adapters move, the base does not."""
    tok = gemma_tokenizer()
    d = tmp_path / "student"
    base = gemma(len(tok))
    base.save_pretrained(d)
    tok.save_pretrained(d)
    data = str(write_example_data(tmp_path / "gsm8k"))
    env_kwargs = {"data_dir": data, "tokenizer": f"hf:{d}", "max_new_tokens": 128, "max_prompt_tokens": 256,
                  "law": "absorbing", "eta": 0.1, "answer_format": "boxed"}
    task = make_problem("NoisyGSM8K-v1", **env_kwargs).task
    assert task.num_problems >= 4 and task.eos_token == tok.convert_tokens_to_ids("<end_of_turn>")
    res = train(algo="nail-f", env_id="NoisyGSM8K-v1", env_kwargs=env_kwargs, preset=f"hf:{d}",
                model={"lora": PAPER_LORA}, batch_size=4, grad_accum=2, budget_trajectories=4, eval_mode="all",
                eval_sampled=False, eval_batch_size=3, eval_env_kwargs={"split": "test"}, device="cpu",
                precision="fp32", progress=False, lr=1e-3, expert_form="structured")
    assert res.trajectories == 4 and res.queries == 4 * 128 and res.final_metrics["val_loss"] > 0
    params = dict(res.policy.named_parameters())
    assert any(float(p.detach().abs().max()) > 0 for n, p in params.items() if "lora_B" in n)  # adapters learned
    after = {n.replace("base_layer.", ""): p for n, p in res.policy.lm.named_parameters() if "lora_" not in n}
    before = dict(base.named_parameters())
    assert set(after) == set(before)
    assert all(torch.equal(after[n].detach(), p.detach()) for n, p in before.items())  # the base did not move
