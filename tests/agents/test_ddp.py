"""Data-parallel runs: every collective is reached by every rank (Lightning#19045, speechbrain#2401).

The kind of fault: a collective (``all_gather_object``, ``broadcast``, ``all_reduce``, DDP's gradient
all-reduce) called on some ranks only -- under ``if rank == 0``, or a number of times that differs
between ranks -- which deadlocks the run. One launch of 2 CPU processes (gloo), as torchrun makes it,
goes through every path that holds a collective: evaluation, checkpointing, early stop, resume, a
refused resume, and gradient accumulation with uneven last shares. It runs under a hard timeout, so a
regression fails here instead of hanging the suite.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
import torch

TINY = {"env_id": "NoisyModAdd-v0", "env_kwargs": {"m": 3, "eta": 0.1}, "preset": "tiny", "batch_size": 8,
        "eval_prompts": 16, "eval_sampled": False, "device": "cpu", "progress": False, "precision": "fp32",
        "seed": 2}
TIMEOUT_S = 180  # the launch takes about 15 s of CPU (most of it imports); wall time on a loaded 2-core machine 20-40 s

SCRIPT = r"""
import json, os, sys, torch, torch.distributed as dist
from agents import train

out, tiny = sys.argv[1], json.loads(sys.argv[2])
rank = None
def dump(name, res):
    flat = torch.cat([p.detach().flatten() for p in res.policy.parameters()])
    curve = [{k: v for k, v in r.items() if k != "wall_time"} for r in res.curve]
    torch.save({"curve": curve, "traj": res.trajectories, "params": flat}, os.path.join(out, f"{name}{rank}"))

# 1. an uninterrupted run that checkpoints at every evaluation
res = train(algo="nail-f", budget_trajectories=80, eval_every=32, checkpoint_dir=os.path.join(out, "full"), **tiny)
rank = dist.get_rank()
dump("full", res)
# 2. the same run stopped early at its first evaluation (stop_at=0), then 3. resumed to the end
dump("stopped", train(algo="nail-f", budget_trajectories=80, eval_every=32, stop_at=0.0,
                      checkpoint_dir=os.path.join(out, "ck"), **tiny))
dump("resumed", train(algo="nail-f", budget_trajectories=80, eval_every=32, resume=True,
                      checkpoint_dir=os.path.join(out, "ck"), **tiny))
# 4. gradient accumulation (4 micro-batches) whose last update is cut to 5 = 3 + 2 trajectories: as many
#    micro-batches on both ranks, and the same gradient
dump("accum", train(algo="nail-f", budget_trajectories=21, grad_accum=4, **{**tiny, "batch_size": 4}))
# 5. a checkpoint of a 1-process run: every rank refuses it, none is left waiting
try:
    train(algo="nail-f", budget_trajectories=80, eval_every=32, resume=True, checkpoint_dir=os.path.join(out, "one"),
          **tiny)
except ValueError as e:
    open(os.path.join(out, f"refused{rank}"), "w").write(str(e))
dist.destroy_process_group()
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def ddp_run(tmp_path_factory):
    """The 2-rank launch, as torchrun makes it (RANK, WORLD_SIZE, MASTER_* in each worker's environment;
    torchrun's workers leave its process group, so it cannot be killed as one): both ranks are killed,
    by their ids, past the timeout."""
    import json
    import time

    from agents import train

    out = tmp_path_factory.mktemp("ddp")
    train(algo="nail-f", budget_trajectories=80, eval_every=32, checkpoint_dir=str(out / "one"), **TINY)
    script = out / "ddp.py"
    script.write_text(SCRIPT)
    port = _free_port()
    procs, logs = [], []
    for rank in range(2):
        env = dict(os.environ, OMP_NUM_THREADS="1", RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE="2",
                   LOCAL_WORLD_SIZE="2", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
        logs.append(open(out / f"log{rank}", "w+"))  # noqa: SIM115  closed below
        procs.append(subprocess.Popen([sys.executable, str(script), str(out), json.dumps(TINY)], env=env,
                                      stdout=logs[-1], stderr=subprocess.STDOUT))
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline and any(p.poll() is None for p in procs):
        time.sleep(0.2)
    hung = [p for p in procs if p.poll() is None]
    for p in hung:
        p.kill()
        p.wait()
    text = []
    for rank, fh in enumerate(logs):
        fh.seek(0)
        text.append(f"--- rank {rank}\n" + fh.read()[-2000:])
        fh.close()
    if hung:
        pytest.fail(f"the 2-rank run deadlocked (killed at {TIMEOUT_S} s): a collective reached by one rank "
                    "only\n" + "\n".join(text))
    assert all(p.returncode == 0 for p in procs), "\n".join(text)
    return {name: [torch.load(out / f"{name}{r}") for r in range(2)]
            for name in ("full", "stopped", "resumed", "accum")} | {"dir": out}


def test_checkpointing_does_not_deadlock_and_ranks_agree(ddp_run):
    """Checkpoints every evaluation: both ranks finish, with the same parameters and the same curve
    (the evaluation's metrics reach every rank, not rank 0 alone)."""
    r0, r1 = ddp_run["full"]
    assert r0["traj"] == r1["traj"] == 80
    assert torch.equal(r0["params"], r1["params"])
    assert r0["curve"] == r1["curve"] and "greedy_full_exact" in r1["curve"][-1]
    from agents.checkpoint import load_checkpoint

    ck = load_checkpoint(str(ddp_run["dir"] / "full" / "last.pt"))
    assert len(ck["rng"]) == 2 and ck["trajectories"] == 80  # every rank's random streams


def test_early_stop_and_resume_reproduce_the_uninterrupted_run(ddp_run):
    """Stopped at the first evaluation on every rank, then resumed: the resumed run's curve and
    parameters are the uninterrupted run's, on both ranks."""
    full, stopped, resumed = ddp_run["full"], ddp_run["stopped"], ddp_run["resumed"]
    for r in range(2):
        assert len(stopped[r]["curve"]) == 1
        assert resumed[r]["curve"] == full[r]["curve"]
        assert torch.equal(resumed[r]["params"], full[r]["params"])


def test_grad_accum_with_uneven_last_shares(ddp_run):
    """Rank 0's last share (3) has more non-empty micro-batches than rank 1's (2): both still take
    part in every collective, and the whole budget is spent."""
    r0, r1 = ddp_run["accum"]
    assert r0["traj"] == r1["traj"] == 21
    assert torch.equal(r0["params"], r1["params"])


def test_a_checkpoint_of_another_world_size_is_refused_on_every_rank(ddp_run):
    """A 1-process checkpoint holds one rank's random streams: both ranks raise the same clear error
    (before, rank 1 failed on an index and rank 0 waited for it)."""
    for r in range(2):
        msg = (ddp_run["dir"] / f"refused{r}").read_text()
        assert "written by a run of 1 process(es) and this run has 2" in msg and "--nproc_per_node 1" in msg


def test_ppo_refuses_a_data_parallel_launch(monkeypatch):
    """PPO has no data-parallel mode: under torchrun every process would run the whole run and write the
    same files; it is refused, not run once per process."""
    from agents import train

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="no data-parallel mode"):
        train(algo="ppo", budget_trajectories=16, **{k: v for k, v in TINY.items() if k not in ("preset", "batch_size",
                                                                                                "precision")})

