"""An external trainer against the teacher endpoint: TRL's ServerDistillationTrainer (pip `trl`, the `trl` extra)
distils a tiny random Llama student on CPU from `neg serve-expert`'s NoisyGSM8K reference teacher, through TRL's own
vLLM client (top-k prompt_logprobs, forward KL with the tail bucket).

TRL's ``VLLMClient`` refuses to start unless the `vllm` package is installed, although the calls it makes here are
plain HTTP (``requests``); vLLM does not install on a CPU-only machine, so the test lifts that check
(``is_vllm_available``) and nothing else."""

from __future__ import annotations

import pytest

trl = pytest.importorskip("trl", reason="the `trl` extra (pip install -e '.[trl]')")
pytest.importorskip("datasets")
server_distillation = pytest.importorskip("trl.experimental.server_distillation")

import torch
from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

from noisy_expert_gym import make_problem
from noisy_expert_gym.serve import ExpertService, serve_in_thread

PROBLEMS = [{"question": "What is 2 plus 3?", "answer": "2+3=5\n#### 5"},
            {"question": "What is 7 minus 1?", "answer": "7-1=6\n#### 6"}]


def char_tokenizer_for_hf(tok):
    """The task's built-in char tokenizer as a transformers tokenizer with the same ids (the prompt's separator
    is the special token ``<sep>``), so TRL tokenizes prompts exactly as the task does."""
    from tokenizers import Regex, Tokenizer, models, pre_tokenizers

    vocab = {u.decode(): i for i, u in enumerate(tok.units)}
    vocab.update({"<eos>": tok.eos_token, "<sep>": tok.sep_token, "<pad>": tok.pad_token})
    t = Tokenizer(models.WordLevel(vocab, unk_token="<pad>"))
    t.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    return PreTrainedTokenizerFast(tokenizer_object=t, eos_token="<eos>", pad_token="<pad>",
                                   additional_special_tokens=["<sep>"])


def test_trl_server_distillation_trains_from_the_endpoint(tmp_path, monkeypatch):
    from datasets import Dataset
    from trl.generation import vllm_client

    problem = make_problem("NoisyGSM8K-v1", problems=PROBLEMS, eta=0.1, max_new_tokens=24, access="topk", top_k=4)
    task, tok = problem.task, problem.task.tokenizer
    hf_tok = char_tokenizer_for_hf(tok)
    first = task.all_prompts()[0]
    assert hf_tok(PROBLEMS[0]["question"] + "<sep>")["input_ids"] == first[first != task.pad_token].tolist()

    monkeypatch.setattr(vllm_client, "is_vllm_available", lambda *a, **k: True)
    server, _thread = serve_in_thread(ExpertService(problem, max_queries=10_000))
    try:
        torch.manual_seed(0)
        model = LlamaForCausalLM(LlamaConfig(
            vocab_size=tok.vocab_size, hidden_size=32, intermediate_size=64, num_hidden_layers=1,
            num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=128, eos_token_id=tok.eos_token,
            pad_token_id=tok.pad_token, bos_token_id=None))
        args = server_distillation.ServerDistillationConfig(
            output_dir=str(tmp_path), teacher_model_server_url=server.url, beta=0.0, loss_top_k=4,
            loss_add_tail=True, max_completion_length=12, per_device_train_batch_size=2, max_steps=2,
            learning_rate=1e-3, use_cpu=True, bf16=False, report_to="none", logging_steps=1, save_strategy="no",
            gradient_checkpointing=False,
            # the student writes actions only (the separator and pad are never written, as in the task)
            generation_kwargs={"suppress_tokens": [tok.sep_token, tok.pad_token]})
        trainer = server_distillation.ServerDistillationTrainer(
            model=model, args=args, processing_class=hf_tok,
            train_dataset=Dataset.from_dict({"prompt": [p["question"] + "<sep>" for p in PROBLEMS] * 2}))
        out = trainer.train()
    finally:
        server.shutdown()
        server.server_close()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    assert len(losses) == 2 and all(0 < float(v) < 10 for v in losses) and out.training_loss > 0
    # TRL scores each completion (<= 12 positions) plus one generated token per request (its max_tokens=1)
    spent = server.service.queries
    assert 0 < spent <= 2 * 2 * (12 + 1) and spent == server.service.expert.num_queries
