"""Training-speed and sample-efficiency benchmarks (a script, not a timed test).

    python -m agents.perf                 # throughput + KV-cache ratio (a few minutes on 2 CPU cores)
    python -m agents.perf --learning      # NAIL-F to 99% greedy full-chain accuracy at m=31, eta=0.2

Prints medians over repeats, and ratios measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from agents import train
from agents.device import autocast_context, resolve_device
from agents.policy import TransformerPolicy, make_config
from noisy_expert_gym.tasks import ModAddTask


def _median_time(fn, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def kv_cache_ratio(preset: str, batch: int, m: int, device: torch.device, precision: str,
                   repeats: int) -> tuple[float, float]:
    """Seconds per batched greedy rollout without and with the KV cache."""
    task = ModAddTask(p=7, m=m)
    torch.manual_seed(0)
    pol = TransformerPolicy(make_config(preset, task.vocab_size, task.num_actions, task.obs_len - 1)).to(device)
    pol.eval()
    prompts = task.sample_prompts(torch.Generator(device=device).manual_seed(0), batch, device=device)

    def run(cache: bool):
        with autocast_context(device, precision):
            pol.generate(prompts, m, temperature=0.0, use_cache=cache)
        if device.type == "cuda":
            torch.cuda.synchronize()

    return _median_time(lambda: run(False), repeats), _median_time(lambda: run(True), repeats)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--precision", default="auto")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--learning", action="store_true", help="run the m=31 learning benchmark instead")
    ap.add_argument("--budget", type=int, default=300_000)
    ap.add_argument("--algo", default="nail-f")
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--estimator", default=None, help="forward estimator for nail-f/opd-f (mc or exact)")
    args = ap.parse_args()
    device = resolve_device(args.device)
    print(f"device: {device}  torch {torch.__version__}  threads {torch.get_num_threads()}")

    if args.learning:
        params = {"estimator": args.estimator} if args.estimator else {}
        t = time.perf_counter()
        res = train(algo=args.algo, env_kwargs={"m": 31, "eta": 0.2, "law": "absorbing"}, preset=args.preset,
                    batch_size=args.batch, lr=args.lr, budget_trajectories=args.budget, algo_params=params,
                    eval_every=max(args.batch, args.budget // 40), eval_prompts=1024, stop_at=0.99,
                    device=args.device, precision=args.precision, progress=True)
        print(f"{'trajectories':>12} {'wall_s':>8} {'val_loss':>9} {'greedy_full':>11} {'prefix_len':>10}")
        for r in res.curve:
            print(f"{r['trajectories']:>12} {r['wall_time']:>8.1f} {r['val_loss']:>9.4f} "
                  f"{r['greedy_full_exact']:>11.4f} {r['greedy_correct_prefix_len']:>10.2f}")
        hit = next((r for r in res.curve if r["greedy_full_exact"] >= 0.99), None)
        if hit:
            print(f"\n{args.algo} reached >= 99% greedy full-chain exact match after {hit['trajectories']} "
                  f"trajectories, {hit['wall_time']:.0f} s (paper: 3M trajectories; "
                  f"{3_000_000 / hit['trajectories']:.1f}x fewer)")
        else:
            print(f"\n{args.algo} did not reach 99% within {res.trajectories} trajectories "
                  f"({time.perf_counter() - t:.0f} s); best {max(r['greedy_full_exact'] for r in res.curve):.3f}")
        return

    print("\nKV-cache rollout vs full recompute (greedy, p=7, m=31):")
    for preset, batch in (("cpu", 256), ("paper", 64)):
        full, cached = kv_cache_ratio(preset, batch, 31, device, args.precision, args.repeats)
        print(f"  {preset:6s} batch {batch:4d}: full {full * 1e3:8.1f} ms  cached {cached * 1e3:8.1f} ms"
              f"  ratio {full / cached:5.2f}x")

    print("\nTraining throughput (m=31, eta=0.2, absorbing; rollout + oracle + loss + step):")
    for preset, batch, updates in (("cpu", 256, 8), ("paper", 64, 4)):
        for algo in ("nail-f", "opd-f"):
            rates = []
            for _ in range(max(1, args.repeats // 2)):
                res = train(algo=algo, env_kwargs={"m": 31, "eta": 0.2}, preset=preset, batch_size=batch,
                            budget_trajectories=batch * updates, eval_every=10**12, eval_prompts=8,
                            device=args.device, precision=args.precision, progress=False)
                rates.append(res.trajectories / res.curve[-1]["wall_time"])
            r = statistics.median(rates)
            print(f"  {algo:7s} {preset:6s} batch {batch:4d}: {r:9.0f} trajectories/s  "
                  f"{r * 31:11.0f} tokens/s")


if __name__ == "__main__":
    main()
