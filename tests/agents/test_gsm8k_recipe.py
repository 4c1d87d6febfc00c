"""The trainer options of the GSM-8K recipe (issue 16): full-split evaluation, one epoch of prompts,
gradient accumulation, the schedule's floor, the validation text, warm starts."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from agents import TrainConfig, train
from agents.algos.base import Context, epoch_order
from agents.budget import Budget
from agents.evaluation import HeldOut, matching_chains
from agents.policies import build_policy, load_weights
from agents.trainer import lr_lambda
from noisy_expert_gym import make_problem
from noisy_expert_gym.tasks.gsm8k import GSM8KTask, WordProblem
from noisy_expert_gym.tasks.gsm8k.data import write_example_data

H, P = 160, 200
FAST = {"preset": "tiny", "device": "cpu", "progress": False, "precision": "fp32"}


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(write_example_data(tmp_path_factory.mktemp("gsm8k")))


@pytest.fixture(scope="module")
def env_kwargs(data_dir: str) -> dict:
    return {"data_dir": data_dir, "max_new_tokens": H, "max_prompt_tokens": P, "eta": 0.05}


def gsm8k(env_kwargs: dict, **fields) -> dict:
    return {**FAST, "env_id": "NoisyGSM8K-v1", "env_kwargs": env_kwargs, "batch_size": 4,
            "budget_trajectories": 8, **fields}


# ----- evaluation on every problem once -------------------------------------------------------------
def test_eval_mode_all_evaluates_every_test_problem_once_in_order(env_kwargs: dict) -> None:
    cfg = TrainConfig(**gsm8k(env_kwargs, eval_mode="all", eval_env_kwargs={"split": "test"}, eval_sampled=False,
                              eval_batch_size=2))
    problem = make_problem("NoisyGSM8K-v1", **env_kwargs)
    held = HeldOut.for_run(cfg, problem, torch.device("cpu"))
    test_task = make_problem("NoisyGSM8K-v1", **env_kwargs, split="test").task
    assert torch.equal(held.prompts, torch.as_tensor(test_task.all_prompts()))
    assert held.task.problem_index(held.prompts).tolist() == list(range(test_task.num_problems))
    policy = build_policy(cfg, problem.task, "cpu")
    m = held.evaluate(policy, "fp32")
    assert not any(k.startswith("sampled_") for k in m) and "greedy_final_exact" in m
    # Chunked (2 prompts per batch, 3 problems) or not, the same numbers.
    whole = HeldOut.for_run(cfg.model_copy(update={"eval_batch_size": 64}), problem, torch.device("cpu"))
    assert whole.evaluate(policy, "fp32") == pytest.approx(m)
    # One greedy chain per problem: the mean over all of them.
    g = policy.generate(held.prompts, H, temperature=0.0)
    want = test_task.metrics(held.prompts, g)["correct_prefix_len"].float().mean()
    assert m["greedy_correct_prefix_len"] == pytest.approx(float(want))
    with pytest.raises(ValueError, match="finite list of problems"):
        HeldOut.for_run(TrainConfig(eval_mode="all", **FAST), make_problem("NoisyModAdd-v0", m=3),
                        torch.device("cpu"))


def test_eval_sampled_is_kept_by_default(env_kwargs: dict) -> None:
    res = train(algo="nail-f", **gsm8k(env_kwargs, eval_prompts=4))
    assert "sampled_final_exact" in res.final_metrics and "val_problems" not in res.final_metrics


# ----- the validation loss on another text -----------------------------------------------------------
def test_val_env_kwargs_score_the_raw_answers(env_kwargs: dict) -> None:
    """val_env_kwargs: the cross-entropy on GSM-8K's raw answer text (annotations and '#### n' kept) after
    the evaluation prompts, here of a boxed-format task."""
    boxed = {**env_kwargs, "answer_format": "boxed"}
    raw = {"answer_format": "####", "strip_annotations": False}
    cfg = TrainConfig(**gsm8k(boxed, eval_mode="all", val_env_kwargs=raw))
    problem = make_problem("NoisyGSM8K-v1", **boxed)
    held = HeldOut.for_run(cfg, problem, torch.device("cpu"))
    raw_task = make_problem("NoisyGSM8K-v1", **{**boxed, **raw}).task
    texts = [raw_task.tokenizer.decode(c[c != raw_task.eos_token].tolist()) for c in held.val_chain]
    assert texts == [p.answer for p in problem.task.problems]  # the raw answers, in the eval order
    assert any("<<" in t and "####" in t for t in texts) and not any("boxed" in t for t in texts)
    policy = build_policy(cfg, problem.task, "cpu")
    m = held.evaluate(policy, "fp32")
    # The loss by hand: mean over problems of the per-token cross-entropy up to and with the stop token.
    with torch.no_grad():
        logits = policy.chain_logits(held.prompts, held.val_chain)
    ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), held.val_chain.flatten(), reduction="none")
    valid = torch.as_tensor(raw_task.valid_along(held.prompts, held.val_chain)).float()
    want = ((ce.view_as(valid) * valid).sum(1) / valid.sum(1)).mean()
    assert m["val_loss"] == pytest.approx(float(want), rel=1e-5)
    assert m["val_problems"] == problem.task.num_problems
    plain = HeldOut.for_run(cfg.model_copy(update={"val_env_kwargs": {}}), problem, torch.device("cpu"))
    assert plain.evaluate(policy, "fp32")["val_loss"] != pytest.approx(m["val_loss"])  # another text


def test_problems_without_a_validation_text_are_left_out() -> None:
    short = WordProblem("Q one?", "1 + 1 = <<1+1=2>>2\n#### 2", 0)
    long = WordProblem("Q two?", "2 + 2 = <<2+2=4>>4 and " + "so on " * 12 + "\n#### 4", 1)
    task = GSM8KTask([short, long], max_new_tokens=96)  # both fit once annotations are stripped
    raw = GSM8KTask([short, long], max_new_tokens=96, strip_annotations=False)  # the long one is dropped
    if raw.num_problems != 1:  # the fixture's sizes: the long raw answer must not fit, the stripped one must
        pytest.fail(f"fixture sizes changed: {raw.num_problems} raw problems fit")
    prompts = torch.as_tensor(task.all_prompts())
    chains, rows = matching_chains(task, raw, prompts)
    assert rows.tolist() == [True, False]
    assert raw.tokenizer.decode([t for t in chains[0].tolist() if t != raw.eos_token]) == short.answer
    with pytest.raises(ValueError, match="max_new_tokens"):
        matching_chains(task, GSM8KTask([short, long], max_new_tokens=120), prompts)


# ----- one epoch of training prompts ------------------------------------------------------------------
def _ctx(task, seed: int = 0, world: int = 1, rank: int = 0) -> Context:
    cfg = TrainConfig(prompt_order="epoch", seed=seed, **FAST)
    return Context(cfg=cfg, task=task, expert=None, clean_expert=None, policy=None, device=torch.device("cpu"),
                   gen=torch.Generator().manual_seed(0), budget=Budget(100), world_size=world, rank=rank,
                   batch_size=4)


def test_epoch_order_visits_every_problem_once_per_epoch(data_dir: str) -> None:
    task = make_problem("NoisyGSM8K-v1", data_dir=data_dir, max_new_tokens=H, max_prompt_tokens=P).task
    m = task.num_problems  # 6
    ctx = _ctx(task)
    drawn = torch.cat([epoch_order(ctx, 4) for _ in range(3)])  # 12 = two epochs
    first, second = drawn[:m], drawn[m:]
    assert sorted(first.tolist()) == sorted(second.tolist()) == list(range(m))
    assert not torch.equal(first, second)  # each epoch its own permutation
    assert ctx.state["prompt_order"] == {"epoch": 2, "pos": 0}
    # sample_prompts gives the prompts of those problems (here the third epoch's first four); the order
    # depends on the seed and the position only, not on the run's generator.
    p = ctx.sample_prompts()
    third = _ctx(task)
    third.gen.manual_seed(99)
    third.state["prompt_order"] = {"epoch": 2, "pos": 0}
    assert task.problem_index(p).tolist() == epoch_order(third, 4).tolist()
    assert not torch.equal(epoch_order(_ctx(task, seed=1), m), epoch_order(_ctx(task), m))
    # Resuming from the checkpointed position continues the same order.
    again = _ctx(task)
    again.state["prompt_order"] = {"epoch": 0, "pos": 4}
    assert torch.equal(epoch_order(again, 4), drawn[4:8])
    # Two ranks take consecutive slices of one order.
    r0, r1 = epoch_order(_ctx(task, world=2, rank=0), 2), epoch_order(_ctx(task, world=2, rank=1), 2)
    assert torch.equal(torch.cat([r0, r1]), drawn[:4])
    with pytest.raises(ValueError, match="finite list of problems"):
        epoch_order(_ctx(make_problem("NoisyModAdd-v0", m=3).task), 4)


def test_one_epoch_of_training_sees_every_problem_once(env_kwargs: dict) -> None:
    seen: list[int] = []
    problem = make_problem("NoisyGSM8K-v1", **env_kwargs)
    task = problem.task

    class Spy:  # the expert, recording which problems the training prompts are
        def __init__(self, inner):
            self.inner, self.task, self.access = inner, inner.task, inner.access

        def __getattr__(self, name):
            return getattr(self.inner, name)

        def probs_along(self, prompts, chain):
            seen.extend(task.problem_index(prompts).tolist())
            return self.inner.probs_along(prompts, chain)

    spy = problem.with_experts(Spy(problem.expert), problem.clean_expert)
    train(algo="nail-f", problem=spy, **gsm8k(env_kwargs, batch_size=2, budget_trajectories=task.num_problems,
                                                prompt_order="epoch", eval_prompts=2))
    assert sorted(seen) == list(range(task.num_problems))


# ----- gradient accumulation and the schedule ---------------------------------------------------------
def test_grad_accum_takes_the_step_of_the_whole_batch(env_kwargs: dict, tmp_path) -> None:
    """bc-clean reads its dataset in order, so 2 micro-batches of 4 are exactly one batch of 8: the same
    step (the token mean over all 8), the same budget."""
    kw = gsm8k(env_kwargs, batch_size=8, budget_trajectories=24, eval_prompts=2, data_dir=str(tmp_path), seed=3,
               lr=1e-2)
    one, acc = train(algo="bc-clean", **kw), train(algo="bc-clean", grad_accum=2, **kw)
    for a, b in zip(one.policy.parameters(), acc.policy.parameters(), strict=True):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)  # float32 sums in another order
    assert acc.trajectories == one.trajectories == 24 and acc.queries == one.queries
    assert acc.curve[-1]["train_loss"] == pytest.approx(one.curve[-1]["train_loss"], rel=1e-4)
    # Not a no-op: micro-batches of 4 stepped on their own give other weights.
    four = train(algo="bc-clean", **{**kw, "batch_size": 4})
    assert not all(torch.allclose(a, b) for a, b in zip(one.policy.parameters(), four.policy.parameters(),
                                                        strict=True))


def test_grad_accum_shares_a_cut_batch_and_must_divide(env_kwargs: dict) -> None:
    res = train(algo="nail-f", **gsm8k(env_kwargs, batch_size=4, grad_accum=4, budget_trajectories=6,
                                       eval_prompts=2))
    assert res.trajectories == 6  # 4, then the last update cut to 2: micro-batches of 1, 1 (two are empty)
    with pytest.raises(ValueError, match="must divide"):
        TrainConfig.build(batch_size=6, grad_accum=4)


def test_cosine_floor() -> None:
    cfg = TrainConfig(schedule="cosine", warmup_updates=10, min_lr_ratio=0.0, **FAST)
    f = lr_lambda(cfg, 100)
    assert f(0) == pytest.approx(0.1) and f(9) == pytest.approx(1.0) and f(10) == pytest.approx(1.0)
    assert f(55) == pytest.approx(0.5) and f(100) == pytest.approx(0.0, abs=1e-12)
    theirs = lr_lambda(cfg.model_copy(update={"min_lr_ratio": 0.01}), 100)  # the paper authors' floor
    assert theirs(100) == pytest.approx(0.01) and theirs(55) == pytest.approx(0.01 + 0.99 * 0.5)
    ours = lr_lambda(TrainConfig(schedule="cosine", warmup_updates=10, **FAST), 100)  # the default: 10%
    assert ours(100) == pytest.approx(0.1)


# ----- warm start ------------------------------------------------------------------------------------
def test_init_checkpoint_warm_starts_the_student(env_kwargs: dict, tmp_path) -> None:
    first = train(algo="bc-clean", checkpoint_dir=str(tmp_path / "warm"), data_dir=str(tmp_path),
                  **gsm8k(env_kwargs, eval_prompts=2))
    cfg = TrainConfig(**gsm8k(env_kwargs), init_checkpoint=str(tmp_path / "warm"))
    task = make_problem("NoisyGSM8K-v1", **env_kwargs).task
    warm = build_policy(cfg, task, "cpu")
    for a, b in zip(first.policy.state_dict().values(), warm.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    cold = build_policy(cfg.model_copy(update={"init_checkpoint": None}), task, "cpu")
    assert not all(torch.equal(a, b) for a, b in zip(cold.state_dict().values(), warm.state_dict().values(),
                                                     strict=True))
    # A run from the warm start begins where the first one ended: its first evaluation's loss is near it.
    res = train(algo="nail-f", init_checkpoint=str(tmp_path / "warm" / "last.pt"),
                **gsm8k(env_kwargs, eval_prompts=2, lr=1e-9))
    assert res.final_metrics["val_loss"] == pytest.approx(first.final_metrics["val_loss"], rel=1e-3)
    with pytest.raises(ValueError, match="do not fit"):
        load_weights(build_policy(TrainConfig(preset="cpu", **{k: v for k, v in FAST.items() if k != "preset"}),
                                  task, "cpu"), str(tmp_path / "warm"))
    with pytest.raises(FileNotFoundError):
        build_policy(cfg.model_copy(update={"init_checkpoint": str(tmp_path / "nowhere")}), task, "cpu")


def test_new_fields_are_the_run_identity() -> None:
    base = TrainConfig(**FAST)
    for field, value in (("grad_accum", 2), ("min_lr_ratio", 0.0), ("prompt_order", "epoch"),
                         ("eval_mode", "all"), ("eval_sampled", False), ("val_env_kwargs", {"a": 1}),
                         ("init_checkpoint", "x"), ("teacher_checkpoint", "y"), ("teacher_t", 4.0),
                         ("expert_form", "dense")):
        assert base.model_copy(update={field: value}).identity() != base.identity(), field
    assert base.model_copy(update={"eval_batch_size": 8}).identity() == base.identity()  # chunking only
    assert math.isclose(TrainConfig().min_lr_ratio, 0.1) and TrainConfig().eval_mode == "sample"
    assert np.isclose(TrainConfig().teacher_t, 1.0)
