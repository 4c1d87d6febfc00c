"""The shared trainer and every registered algorithm, end to end on tiny budgets."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

from agents import ALGORITHMS, TrainConfig, train
from agents.algos import check_params
from agents.checkpoint import load_checkpoint, read_progress

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 32,
            "eval_prompts": 64, "device": "cpu", "progress": False, "precision": "fp32"}


@pytest.mark.parametrize("algo", sorted(a for a, alg in ALGORITHMS.items() if alg.run is None))
def test_every_algorithm_runs_and_accounts_its_budget(algo, tmp_path):
    res = train(algo=algo, budget_trajectories=200, seed=1, data_dir=str(tmp_path), **TINY)
    fm = res.final_metrics
    for k in ("greedy_full_exact", "greedy_final_exact", "val_loss", "sampled_full_exact",
              "greedy_correct_prefix_len"):
        assert k in fm and math.isfinite(fm[k])
    assert res.trajectories == 200  # 32 * 6 + 8: the last update is cut to the remaining budget
    # What the algorithm declares per trajectory: one query per visited prefix (DAgger's roll-in answers
    # are its labels), k per prefix for nail-mode's k samples.
    q = ALGORITHMS[algo].queries_per_trajectory(ALGORITHMS[algo].params(), 3)
    assert q == (3 * ALGORITHMS[algo].defaults["k"] if algo == "nail-mode" else 3)
    assert res.queries == 200 * q
    assert res.curve[-1]["trajectories"] == 200
    assert [r["trajectories"] for r in res.curve] == sorted(r["trajectories"] for r in res.curve)
    assert res.uses_clean_expert == (algo == "bc-clean")


def test_budget_queries_caps_training():
    res = train(algo="nail-f", budget_trajectories=10_000, budget_queries=32 * 3 * 4, **TINY)
    assert res.queries == 32 * 3 * 4 and res.trajectories == 128


@pytest.mark.parametrize("bad,msg", [
    ({"algo": "nail-ff"}, "Did you mean `nail-f`"),
    ({"budget_trajectories": 0}, "budget_trajectories"),
    ({"algo": "nail-mixed", "algo_params": {"beta": 1.5}}, "beta"),
    ({"algo": "nail-f", "algo_params": {"betta": 0.5}}, "no parameter `betta`"),
    ({"env_id": "NoisyModAd-v0"}, "Did you mean `NoisyModAdd-v0`"),
    ({"batch_sise": 3}, "Did you mean `batch_size`"),
    ({"resume": True}, "checkpoint_dir"),
])
def test_bad_input_is_a_clear_error(bad, msg):
    kw = {**TINY, "budget_trajectories": 64, **bad}
    with pytest.raises(ValueError, match=msg):
        train(**kw)


def test_env_without_an_oracle_is_rejected():
    with pytest.raises(ValueError, match="noisy-expert envs"):
        train(**{**TINY, "env_id": "CartPole-v1", "env_kwargs": {}}, budget_trajectories=64)


def test_check_params_lists_every_problem():
    probs = check_params("gkd", {"lam": 2, "beta": -1, "x": 1})
    assert len(probs) == 3


def test_corrupt_checkpoint_is_a_clear_error(tmp_path):
    (tmp_path / "last.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="corrupt"):
        train(algo="nail-f", budget_trajectories=64, checkpoint_dir=str(tmp_path), resume=True, **TINY)
    with pytest.raises(ValueError, match="corrupt"):
        load_checkpoint(str(tmp_path / "last.pt"))


_STRIP = ("wall_time",)


def _curve(res):
    return [{k: v for k, v in r.items() if k not in _STRIP} for r in res.curve]


@pytest.mark.parametrize("algo", ["nail-f", "bc", "dagger"])
def test_resume_after_kill_reproduces_the_curve(algo, tmp_path):
    kw = dict(TINY, algo=algo, budget_trajectories=32 * 12, eval_every=64, seed=3,
              data_dir=str(tmp_path / "data"))
    full = train(**kw)
    ck = str(tmp_path / "ck")
    # "Kill" a run after 7 updates: a subprocess that trains with a checkpoint every update and
    # exits hard (os._exit) in the middle, as a crash would.
    code = f"""
import os, agents.trainer as T
orig = T.save_checkpoint
n = [0]
def save(path, payload):
    orig(path, payload); n[0] += 1
    if n[0] == 7: os._exit(17)
T.save_checkpoint = save
T.train(**{dict(kw, checkpoint_dir=ck, checkpoint_every=1)!r})
"""
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 17, proc.stderr[-2000:]
    assert load_checkpoint(os.path.join(ck, "last.pt"))["update"] == 6
    resumed = train(**kw, checkpoint_dir=ck, resume=True)
    assert _curve(resumed) == _curve(full)
    assert resumed.trajectories == full.trajectories and resumed.queries == full.queries


def test_resume_refuses_a_different_config(tmp_path):
    kw = dict(TINY, algo="nail-f", budget_trajectories=64, checkpoint_dir=str(tmp_path))
    train(**kw)
    with pytest.raises(ValueError, match="different configuration"):
        train(**{**kw, "lr": 1e-4}, resume=True)


def test_seeded_runs_are_reproducible():
    a = train(algo="opd-r", budget_trajectories=128, seed=5, **TINY)
    b = train(algo="opd-r", budget_trajectories=128, seed=5, **TINY)
    assert _curve(a) == _curve(b)


def test_config_object_and_overrides():
    cfg = TrainConfig(algo="nail-r", budget_trajectories=64, **TINY)
    res = train(cfg, seed=2)
    assert res.config["seed"] == 2 and res.algo == "nail-r"


def test_tensorboard_logging(tmp_path):
    pytest.importorskip("tensorboard")
    train(algo="nail-f", budget_trajectories=64, tensorboard_dir=str(tmp_path), **TINY)
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("algo", ["nail-f", "bc"])
def test_learns_short_chains_to_high_accuracy(algo, tmp_path):
    """NAIL-F and LogLossBC learn p=7, m=3, eta=0.1 within a CPU-minute budget."""
    res = train(algo=algo, env_id="NoisyModAdd-v0", env_kwargs={"m": 3, "eta": 0.1}, preset="cpu",
                batch_size=128, lr=3e-3, budget_trajectories=40_000, eval_prompts=1024, seed=0,
                device="cpu", progress=False, stop_at=0.99, eval_every=2048, data_dir=str(tmp_path))
    assert res.final_metrics["greedy_full_exact"] >= 0.95, res.final_metrics


@pytest.mark.slow
def test_ddp_two_processes_gloo(tmp_path):
    """torchrun with 2 CPU processes (gloo): the run completes, spends a budget that does not divide
    the 2 x 32 batch exactly (the last batch split 29 + 29), and both ranks end identical."""
    out = tmp_path / "res"
    script = tmp_path / "ddp.py"
    script.write_text(f"""
import os, torch, torch.distributed as dist
from agents import train
res = train(algo="nail-f", budget_trajectories=250, **{TINY!r})
rank = dist.get_rank()
flat = torch.cat([p.detach().flatten() for p in res.policy.parameters()])
torch.save({{"traj": res.trajectories, "params": flat}}, "{out}" + str(rank))
dist.destroy_process_group()
""")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                           "--master_port=29533", str(script)], capture_output=True, text=True, env=env,
                          timeout=240, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    r0, r1 = torch.load(f"{out}0"), torch.load(f"{out}1")
    assert r0["traj"] == r1["traj"] == 250  # 3 updates of 2 ranks x 32 prompts, then 2 x 29
    assert torch.equal(r0["params"], r1["params"])  # gradients were all-reduced
    single = train(algo="nail-f", budget_trajectories=250, **TINY)
    assert not torch.equal(torch.cat([p.flatten() for p in single.policy.parameters()]), r0["params"])


def test_eval_env_kwargs_evaluate_on_another_split(tmp_path):
    """GSM-8K: train on the train split, evaluate on the test split (same shapes)."""
    from noisy_expert_gym.tasks.gsm8k.data import write_example_data

    d = str(write_example_data(tmp_path / "gsm8k"))
    kw = dict(TINY, env_id="NoisyGSM8K-v1", batch_size=4, eval_prompts=4, budget_trajectories=8,
              env_kwargs={"data_dir": d, "max_new_tokens": 160, "max_prompt_tokens": 200})
    res = train(algo="nail-f", eval_env_kwargs={"split": "test"}, **kw)
    # The reported clean validation loss is the student's cross-entropy on the *test* split's held-out
    # prompts (drawn from eval_seed) and their clean chains, recomputed here.
    from noisy_expert_gym import make_problem

    def val_loss(split):
        task = make_problem("NoisyGSM8K-v0", **{**kw["env_kwargs"], "split": split}).task
        prompts = task.sample_prompts(torch.Generator().manual_seed(res.config["eval_seed"]), 4)
        clean = task.clean_chains(prompts)
        with torch.no_grad():
            logits = res.policy.chain_logits(prompts, clean)
        ce = torch.nn.functional.cross_entropy(logits.flatten(0, 1), clean.flatten(), reduction="none")
        valid = task.valid_along(prompts, clean).float().flatten()
        return float(((ce * valid).view(4, -1).sum(1) / valid.view(4, -1).sum(1)).mean())

    assert res.final_metrics["val_loss"] == pytest.approx(val_loss("test"), rel=1e-4)
    assert res.final_metrics["val_loss"] != pytest.approx(val_loss("train"), rel=1e-4)
    with pytest.raises(ValueError, match="observation shape"):
        train(algo="nail-f", eval_env_kwargs={"max_new_tokens": 170}, **kw)


@pytest.mark.slow
def test_nail_f_learns_a_longer_chain_under_noise(tmp_path):
    """NAIL-F (rotary student) solves m = 9 under absorbing noise eta = 0.2 (make test-slow)."""
    res = train(algo="nail-f", env_id="NoisyModAdd-m9-v0", env_kwargs={"eta": 0.2}, preset="cpu-rope",
                batch_size=64, lr=3e-3, budget_trajectories=150_000, eval_prompts=1024, seed=0,
                device="cpu", progress=False, stop_at=0.99, eval_every=5000)
    assert res.final_metrics["greedy_full_exact"] >= 0.95, res.curve[-1]


def test_progress_row_for_sweep_drivers(tmp_path):
    res = train(algo="nail-f", budget_trajectories=128, checkpoint_dir=str(tmp_path), **TINY)
    row = read_progress(str(tmp_path))
    assert row["trajectories"] == res.trajectories == row["budget_trajectories"] == 128
    assert row["greedy_full_exact"] == res.final_metrics["greedy_full_exact"]
    assert read_progress(str(tmp_path / "nowhere")) is None


def test_a_run_stopped_by_stop_at_resumes_without_it(tmp_path):
    """stop_at and device are not the run's identity: the stopped run continues to the uninterrupted curve."""
    kw = dict(TINY, algo="nail-f", budget_trajectories=32 * 6, eval_every=64, seed=4)
    full = train(**kw)
    ck = str(tmp_path / "ck")
    stopped = train(**kw, checkpoint_dir=ck, stop_at=0.0)  # stops at its first evaluation
    assert len(stopped.curve) == 1 and stopped.trajectories < full.trajectories
    resumed = train(**{**kw, "device": "cpu:0"}, checkpoint_dir=ck, resume=True)  # another device string
    assert _curve(resumed) == _curve(full)


def test_train_uses_the_given_problem_and_builds_no_env(monkeypatch):
    """`train(problem=p)` queries p's experts (the harness passes its counting client so) and no env is made."""
    import gymnasium as gym

    from noisy_expert_gym import make_problem
    from noisy_expert_gym.problems import Problem

    class Counting:
        """Wraps an oracle and counts the calls made to it."""

        def __init__(self, inner):
            self.inner, self.calls = inner, 0

        def __getattr__(self, name):
            attr = getattr(self.inner, name)
            if callable(attr):
                self.calls += 1
            return attr

    def no_env(*a, **k):
        raise AssertionError("the trainer built a Gymnasium env")

    monkeypatch.setattr(gym, "make", no_env)
    monkeypatch.setattr(Problem, "make_env", no_env)
    base = make_problem("NoisyModAdd-v0", m=3, eta=0.1)
    expert, clean = Counting(base.expert), Counting(base.clean_expert)
    res = train(algo="nail-f", budget_trajectories=64, problem=base.with_experts(expert, clean), **TINY)
    assert expert.calls > 0 and clean.calls == 0  # nail-f never reads the clean expert
    assert res.queries == 64 * 3 == expert.inner.num_queries
