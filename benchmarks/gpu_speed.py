"""Paper-model training throughput on a GPU, in one command (a few minutes).

    python benchmarks/gpu_speed.py                       # CUDA: paper model, NAIL-F, batch 64 / 256 / 1024
    python benchmarks/gpu_speed.py --device cpu --quick  # the same code on CPU with tiny settings (a rehearsal)

For each batch size it times NAIL-F-like updates (greedy KV-cached rollout,
expert query at every prefix, forward-KL loss on the teacher-forced logits,
AdamW) in alternating windows (:func:`benchmarks.train_speed.compare`) for three set-ups:

* ``eager``: bf16 autocast, eager rollout and training step;
* ``graphs``: the rollout replayed as one CUDA graph (:class:`benchmarks.train_speed.GraphedRollout`);
* ``graphs+compile``: and the training forward under ``torch.compile``;

then prints trajectories/s, generated tokens/s, per-phase ms, the compile time,
and the time to spend the ``modadd-m31-eta0.2`` board's 300k trajectories at
each, compile included. A graphed rollout is checked against the eager one
(same chains) before it is timed.

Depends on torch, numpy and this repo's ``agents.policy``, ``agents.losses``,
``agents.device``, ``benchmarks.train_speed``, ``noisy_expert_gym.tasks.modadd`` and
``noisy_expert_gym.oracle`` only: run as a file it does not execute the
packages' ``__init__`` (which import gymnasium and the trainer; :mod:`benchmarks.lean_imports`).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
import warnings
from pathlib import Path

if not __package__:  # run as a path: the repository root on sys.path, the packages without __init__
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from benchmarks.lean_imports import skip_package_inits
    skip_package_inits()

import torch

from agents.policy import make_config
from benchmarks.train_speed import PHASES, Result, Setting, StepBench, compare, flops_per_trajectory
from noisy_expert_gym.tasks.modadd import ModAddTask

BOARD_TRAJECTORIES = 300_000
"""The ``modadd-m31-eta0.2`` board's trajectory budget."""


def check_graphs(s: Setting) -> str:
    """Chains of a graphed rollout vs the eager one on the same prompts (same weights)."""
    bench = StepBench(dataclasses.replace(s, graphs="on"))
    prompts = bench.task.sample_prompts(bench.gen, s.batch, device=bench.device)
    with bench.autocast():
        eager = bench.model.generate(prompts, bench.task.horizon)
    graphed = bench.graphed(prompts)
    graphed = bench.graphed(prompts)  # the first call captured; this one replays
    diff = int((graphed != eager).any(1).sum())
    return "same chains" if diff == 0 else f"{diff}/{s.batch} chains differ (bf16 ties?)"


def _compile_s(r: Result) -> float:
    """Seconds of the first (compiling) update when the setting compiles, else 0."""
    return r.first_update_s if r.setting.compile == "on" else 0.0


def _board_s(r: Result) -> float:
    """Seconds to spend the board's trajectories at this rate, compile included."""
    return BOARD_TRAJECTORIES / r.rate + _compile_s(r)


def _row(batch: int, setup: str, r: Result, flops: float) -> str:
    """One table row: rates, per-phase ms, compile time and the time to spend the board's budget."""
    ph = r.phase_ms()
    compile_s, total = _compile_s(r), _board_s(r)
    return (f"{batch:5d} {setup:15s} {r.rate:9.0f} {r.rate * r.setting.m:10.0f} {r.rate * flops / 1e12:8.2f} "
            + " ".join(f"{ph[p]:12.2f}" for p in PHASES) + f" {compile_s:9.1f} {total:8.1f}")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="paper")
    ap.add_argument("--batches", type=int, nargs="+", default=[64, 256, 1024])
    ap.add_argument("--precision", default="bf16", choices=("bf16", "fp32", "auto"))
    ap.add_argument("--window", type=float, default=3.0, help="seconds per window")
    ap.add_argument("--windows", type=int, default=2)
    ap.add_argument("--warmup", type=float, default=2.0, help="seconds per set-up after its first update")
    ap.add_argument("--setups", nargs="+", default=["eager", "graphs", "graphs+compile"],
                    choices=("eager", "graphs", "graphs+compile", "compile"))
    ap.add_argument("--quick", action="store_true",
                    help="tiny rehearsal: preset tiny, batches 8 16, short windows, no compile")
    args = ap.parse_args(argv)
    if args.quick:
        args.preset, args.batches, args.window, args.windows, args.warmup = "tiny", [8, 16], 0.5, 1, 0.2
        args.setups = [u for u in args.setups if "compile" not in u] or ["eager"]
        # a rehearsal of the bf16 code path; on a CPU without native bf16 it is slow, not wrong
        warnings.filterwarnings("ignore", message="bf16 requested on a CPU")
    device = torch.device(args.device)
    if device.type == "cuda":
        torch.set_float32_matmul_precision("high")  # TF32 where fp32 matmuls remain
        name = torch.cuda.get_device_name(device)
    else:
        n = torch.get_num_threads()
        name = f"cpu ({torch.backends.cpu.get_cpu_capability()}, {n} thread{'s' * (n != 1)}; no CUDA graph is captured)"
    print(f"device {name}; torch {torch.__version__}; preset {args.preset}; precision {args.precision}")
    setups = {"eager": {}, "graphs": {"graphs": "on"}, "compile": {"compile": "on"},
              "graphs+compile": {"graphs": "on", "compile": "on"}}
    task = ModAddTask(p=Setting.p, m=Setting.m)
    cfg = make_config(args.preset, task.vocab_size, task.num_actions, task.obs_len - 1)
    flops = flops_per_trajectory(cfg, task.prompt_len, task.horizon)["total"]
    header = (f"{'batch':>5s} {'setup':15s} {'traj/s':>9s} {'tokens/s':>10s} {'TFLOP/s':>8s} "
              + " ".join(f"{p + '_ms':>12s}" for p in PHASES) + f" {'compile_s':>9s} {'300k_s':>8s}")
    print("columns: matmul TFLOP/s; *_ms = median ms per update of each phase; compile_s = the first "
          f"(compiling) update; 300k_s = seconds to spend {BOARD_TRAJECTORIES:,} trajectories, compile included")
    rows: list[tuple[int, str, Result]] = []
    for batch in args.batches:
        base = Setting(preset=args.preset, batch=batch, precision=args.precision, device=str(device),
                       adam="fused" if device.type == "cuda" else "foreach")
        if any("graphs" in u for u in args.setups):
            where = "" if device.type == "cuda" else " (CPU: no capture, the static-buffer path runs eagerly)"
            print(f"batch {batch}: graphed rollout vs eager{where}: {check_graphs(base)}")
        settings = [dataclasses.replace(base, **setups[u]) for u in args.setups]
        t = time.perf_counter()
        results = compare(settings, args.window, args.windows, args.warmup, progress=lambda _: None)
        print(f"batch {batch}: measured in {time.perf_counter() - t:.0f} s")
        new = [(batch, u, r) for u, r in zip(args.setups, results)]
        rows += new
        print(header)  # each batch's rows as soon as they exist: a run cut short keeps them
        for row in new:
            print(_row(*row, flops), flush=True)

    print(f"\n{header}")
    for row in rows:
        print(_row(*row, flops))
    b, u, r = min(rows, key=lambda x: _board_s(x[2]))
    comp = _compile_s(r)
    print(f"\nfastest to spend the board's budget (compile included): batch {b} {u}: {BOARD_TRAJECTORIES:,} trajectories in "
          f"{_board_s(r):.0f} s ({BOARD_TRAJECTORIES / r.rate:.0f} s of updates"
          f"{f' + {comp:.0f} s compile' if comp else ''}; evaluation not included)")
    print(f"(matmul FLOPs per trajectory, rollout + forward + backward: {flops / 1e6:.0f} MFLOP)")


if __name__ == "__main__":
    main()
