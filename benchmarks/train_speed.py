"""Training-speed and sample-efficiency benchmarks (a script, not a timed test).

    python benchmarks/train_speed.py                            # today's eager path vs the current one (cpu-rope, batch 256)
    python benchmarks/train_speed.py --set preset=paper,batch=64
    python benchmarks/train_speed.py --compare "preset=cpu-rope,batch=256" "preset=cpu-rope,batch=256,compile=on"
    python benchmarks/train_speed.py --flops                    # analytic FLOPs per trajectory, before / after
    python benchmarks/train_speed.py --profile --set batch=256  # torch.profiler: the top ops of a few updates
    python -m benchmarks.train_speed --learning                 # NAIL-F to 99% greedy full-chain accuracy at m=31

Throughput mode times one NAIL-F-like update as the trainer does it, phase by
phase (rollout, oracle, forward, backward, optimiser), built here from
``agents.policy``, ``agents.losses``, the task core and the oracle so it does
not depend on the trainer. Settings are ``key=value`` lists (see
:class:`Setting`). Settings are timed together in windows of fixed length
(``--window`` seconds, after ``--warmup`` seconds of unrecorded updates each)
that alternate single updates of each setting, so load from other processes
hits them alike; a rate is trajectories over the setting's own update time,
and the ratio printed is the median of the per-window ratios. ``impl=old`` is
today's eager path before the speed work (:mod:`benchmarks.old_policy`, read
from git history; the same weights), the default baseline.

Runs as a file or as a module. As a file it imports only the modules it needs
(not the ``agents`` / ``noisy_expert_gym`` package ``__init__``s, which pull
in the trainer and gymnasium: :mod:`benchmarks.lean_imports`), so
``python benchmarks/train_speed.py`` and ``python benchmarks/gpu_speed.py``
work in an image with just torch and numpy.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import difflib
import os
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

if not __package__:  # run as a path: the repository root on sys.path, the packages without __init__
    sys.path[0] = str(Path(__file__).resolve().parents[1])
    from benchmarks.lean_imports import skip_package_inits
    skip_package_inits()

import torch

from agents import losses
from agents.device import autocast_context, resolve_device, resolve_precision
from agents.policy import PolicyConfig, TransformerPolicy, make_config
from benchmarks import old_policy
from noisy_expert_gym.oracle import Expert
from noisy_expert_gym.tasks.modadd import ModAddTask

PHASES = ("rollout", "oracle", "forward", "backward", "optimiser")
ALGOS = {"nail-f": 0.0, "opd-f": 1.0}  # name -> rollout temperature; both take the forward-KL loss


@dataclass
class Setting:
    """One benchmarked configuration, written ``key=value,key=value`` on the command line."""

    preset: str = "cpu-rope"
    """Model preset (``agents.policy.PRESETS``)."""
    batch: int = 256
    """Trajectories per update."""
    algo: str = "nail-f"
    """``nail-f`` (greedy rollouts) or ``opd-f`` (sampled rollouts); forward-KL loss."""
    estimator: str = "mc"
    """Forward-KL estimator: ``mc`` (one sampled expert token) or ``exact`` (the full row)."""
    impl: str = "new"
    """``new`` (``agents.policy``) or ``old`` (today's eager path, :mod:`benchmarks.old_policy`)."""
    precision: str = "fp32"
    """``fp32``, ``bf16`` (autocast) or ``auto`` (bf16 only where the hardware has it)."""
    compile: str = "off"
    """``on``: ``torch.compile`` the training forward (the rollout stays eager)."""
    cache: str = "on"
    """KV-cached rollout (``off``: recompute the prefix every step)."""
    graphs: str = "off"
    """``on``: replay the greedy rollout as one captured CUDA graph (:class:`GraphedRollout`)."""
    adam: str = "foreach"
    """AdamW implementation: ``foreach`` (torch's default) or ``fused``."""
    threads: int = 0
    """``torch.set_num_threads`` for this setting's windows; 0 keeps the process default."""
    m: int = 31
    """Operands per prompt (horizon H = m, prompt length P = m + 1)."""
    p: int = 7
    """Modulus."""
    eta: float = 0.2
    """Noise level of the absorbing-law expert."""
    device: str = "auto"
    """``auto``, ``cpu``, ``cuda``, ..."""

    CHOICES: ClassVar[dict[str, tuple[str, ...]]] = {
        "algo": tuple(ALGOS), "estimator": ("mc", "exact"), "impl": ("new", "old"),
        "precision": ("fp32", "bf16", "auto"), "compile": ("on", "off"), "cache": ("on", "off"),
        "graphs": ("on", "off"), "adam": ("foreach", "fused"),
    }

    @classmethod
    def parse(cls, text: str, base: Setting | None = None) -> Setting:
        """``"preset=paper,batch=64"`` -> a Setting (fields not named keep ``base``'s values)."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = dataclasses.asdict(base) if base else {}
        for item in filter(None, (s.strip() for s in text.split(","))):
            key, sep, value = item.partition("=")
            if not sep:
                raise ValueError(f"setting items are key=value, got {item!r} in {text!r}")
            if key not in fields:
                close = difflib.get_close_matches(key, fields, n=1)
                hint = f" Did you mean {close[0]!r}?" if close else ""
                raise ValueError(f"unknown setting {key!r}; choose from {sorted(fields)}.{hint}")
            kind = {"int": int, "float": float}.get(str(fields[key].type), str)
            kwargs[key] = kind(value)
        out = cls(**kwargs)
        for key, allowed in cls.CHOICES.items():
            if getattr(out, key) not in allowed:
                raise ValueError(f"`{key}` must be one of {allowed}, got {getattr(out, key)!r}")
        return out

    def label(self, base: Setting | None = None) -> str:
        """The fields that differ from ``base``; without one, preset, batch, impl and non-defaults."""
        ref = base or Setting()
        keys = [k for k, v in dataclasses.asdict(self).items() if v != getattr(ref, k)]
        if base is None:
            keys = ["preset", "batch", "impl"] + [k for k in keys if k not in ("preset", "batch", "impl")]
        return ",".join(f"{k}={getattr(self, k)}" for k in keys) or "same"


# --------------------------------------------------------------------------- one update
class StepBench:
    """One training update at a :class:`Setting`, timed phase by phase.

    The update is the trainer's (docs/design.md §4): sample prompts, roll the
    student out (greedy for NAIL-F), query the expert at every prefix, take the
    forward-KL loss on the teacher-forced logits, one AdamW step.
    """

    def __init__(self, s: Setting, seed: int = 0) -> None:
        self.s = s
        self.device = resolve_device(s.device)
        self.precision = resolve_precision(self.device, s.precision)
        self.task = ModAddTask(p=s.p, m=s.m)
        self.expert = Expert(self.task, law="absorbing", eta=s.eta)
        self.cfg = make_config(s.preset, self.task.vocab_size, self.task.num_actions, self.task.obs_len - 1)
        torch.manual_seed(seed)
        model: torch.nn.Module = TransformerPolicy(self.cfg)
        if s.impl == "old":  # the same initial weights in the old code
            old = old_policy.BaselinePolicy(self.cfg)  # read from git history on first use
            old.load_state_dict(model.state_dict())
            model = old
        self.model = model.to(self.device)
        self.fwd = torch.compile(self.model) if s.compile == "on" else self.model
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-3, betas=(0.9, 0.95), weight_decay=0.0,
                                     **({"fused": True} if s.adam == "fused" else {"foreach": True}))
        self.gen = torch.Generator(device=self.device).manual_seed(seed)
        self.tau = ALGOS[s.algo]
        self._sync: Callable[[], None] = (torch.cuda.synchronize if self.device.type == "cuda"
                                          else lambda: None)
        self.graphed = GraphedRollout(self) if s.graphs == "on" else None

    def autocast(self) -> Any:
        return autocast_context(self.device, self.precision)

    def logits(self, prompts: torch.Tensor, chain: torch.Tensor) -> torch.Tensor:
        """Teacher-forced logits (B, H, A) as the trainer takes them."""
        P = prompts.shape[1]
        tokens = torch.cat([prompts, chain[:, :-1]], dim=1)  # (B, P + H - 1)
        if self.s.impl == "old":
            return self.fwd(tokens)[:, P - 1 :]  # today's trainer line
        return self.fwd(tokens, first=P - 1)

    def update(self) -> dict[str, float]:
        """One update: wall seconds of each phase (``rollout``, ...) and the process's CPU
        seconds, all threads, of each (``cpu:rollout``, ...)."""
        s, task = self.s, self.task
        marks = [(time.perf_counter(), time.process_time())]

        def mark() -> None:  # the end of a phase
            self._sync()
            marks.append((time.perf_counter(), time.process_time()))

        prompts = task.sample_prompts(self.gen, s.batch, device=self.device)
        if self.graphed is not None:
            chain = self.graphed(prompts)
        else:
            with self.autocast():
                chain = self.model.generate(prompts, task.horizon, temperature=self.tau, generator=self.gen,
                                            use_cache=s.cache == "on")
        mark()
        probs = self.expert.probs_along(prompts, chain)  # (B, H, A)
        u = torch.rand(probs.shape[:-1] + (1,), generator=self.gen, device=probs.device, dtype=probs.dtype)
        actions = (u > probs.cumsum(-1)).sum(-1).clamp_(max=probs.shape[-1] - 1)  # one expert token each
        valid = task.valid_along(prompts, chain).float()
        mark()
        with self.autocast():
            logits = self.logits(prompts, chain)
        per_pos = (losses.mc_forward(logits.float(), actions) if s.estimator == "mc"
                   else losses.forward_kl(logits.float(), probs))  # (B, H)
        loss = (per_pos * valid).sum() / valid.sum().clamp_min(1.0)
        mark()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        mark()
        self.opt.step()
        mark()
        out = {}
        for phase, (w0, c0), (w1, c1) in zip(PHASES, marks, marks[1:]):
            out[phase], out[f"cpu:{phase}"] = w1 - w0, c1 - c0
        return out


class GraphedRollout:
    """The greedy KV-cached rollout of a :class:`StepBench` as one CUDA graph.

    A cached rollout is ~20 small kernels per generated token; at GPU speeds their
    launches, not the maths, set its time. The whole ``generate`` call (prefill, H
    steps, argmax, the chain writes) has a fixed kernel sequence for a fixed batch
    and horizon, so it is captured once and replayed: new prompts are copied into a
    static buffer, the chain is read from a static output. The captured kernels read
    the parameters in place, so optimiser steps are seen. Greedy only (sampling would
    need the generator registered with the graph). On a CPU device nothing is
    captured: the same static-buffer path runs eagerly, so a CPU rehearsal runs the
    code unchanged.
    """

    def __init__(self, bench: StepBench) -> None:
        if bench.tau != 0.0:
            raise ValueError("graphs=on needs greedy rollouts (algo=nail-f); sampling is not captured")
        if bench.s.impl != "new":
            raise ValueError("graphs=on needs impl=new")
        self.bench = bench
        task = bench.task
        self.prompts = torch.zeros((bench.s.batch, task.prompt_len), dtype=torch.long, device=bench.device)
        self.prompts[:, -1] = task.sep_token
        self.graph: Any = None
        self.chain: torch.Tensor | None = None

    def _run(self) -> torch.Tensor:
        b = self.bench
        # cache_enabled=False: autocast must recast the weights inside the graph on every
        # replay, not reuse a cast cached (and later stale) outside it.
        ctx = (torch.autocast(b.device.type, dtype=torch.bfloat16, cache_enabled=False)
               if b.precision == "bf16" else contextlib.nullcontext())
        with ctx:
            return b.model.generate(self.prompts, b.task.horizon, temperature=0.0)

    def capture(self) -> None:
        """Warm up on a side stream, then capture (the recipe of ``torch.cuda.graphs``)."""
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(2):
                self._run()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.chain = self._run()

    def __call__(self, prompts: torch.Tensor) -> torch.Tensor:
        self.prompts.copy_(prompts)
        if self.bench.device.type != "cuda":
            return self._run()
        if self.graph is None:
            self.capture()
        self.graph.replay()
        return self.chain.clone()


@dataclass
class Window:
    """One setting's updates in one steady-state window: per-phase seconds of each."""

    batch: int
    updates: list[dict[str, float]]

    @property
    def rate(self) -> float:
        """Trajectories per (wall) second of this setting's own updates."""
        return len(self.updates) * self.batch / sum(u[p] for u in self.updates for p in PHASES)

    @property
    def cpu_rate(self) -> float:
        """Trajectories per CPU second of this process (all its threads) over those updates.

        On a shared machine wall time includes waiting for the cores; CPU time does not
        (with threads=1 it is the machine-independent cost of an update; with more
        threads it also counts their spin-waiting)."""
        return len(self.updates) * self.batch / sum(u[f"cpu:{p}"] for u in self.updates for p in PHASES)


def _threads(bench: StepBench) -> None:
    if bench.s.threads:
        torch.set_num_threads(bench.s.threads)


def run_window(benches: list[StepBench], seconds: float) -> list[Window]:
    """Updates of every setting in turn (A, B, A, B, ...) until ``seconds`` have passed.

    Alternating single updates, rather than one setting's window after the other's,
    puts both under the same background load (this machine is shared): the ratio of
    their rates is then stable even when the absolute rates are not.
    """
    windows = [Window(b.s.batch, []) for b in benches]
    t0 = time.perf_counter()
    while not windows[0].updates or time.perf_counter() - t0 < seconds:
        for bench, w in zip(benches, windows):
            _threads(bench)
            w.updates.append(bench.update())
    return windows


def warm_up(bench: StepBench, seconds: float) -> float:
    """Unrecorded updates for ``seconds`` (at least two); returns the first update's seconds
    (with ``compile=on`` that is the compile time)."""
    _threads(bench)
    t0 = time.perf_counter()
    bench.update()
    first = time.perf_counter() - t0
    bench.update()
    while time.perf_counter() - t0 < first + seconds:
        bench.update()
    return first


@dataclass
class Result:
    """A setting's windows, summarised."""

    setting: Setting
    windows: list[Window]
    first_update_s: float

    @property
    def rate(self) -> float:
        return statistics.median(w.rate for w in self.windows)

    @property
    def cpu_rate(self) -> float:
        return statistics.median(w.cpu_rate for w in self.windows)

    def update_s(self) -> float:
        """Median wall seconds of one update over all windows (robust to load spikes)."""
        return statistics.median(sum(u[p] for p in PHASES) for w in self.windows for u in w.updates)

    def phase_ms(self, clock: str = "") -> dict[str, float]:
        """Median ms per update of each phase; ``clock="cpu:"`` for CPU time instead of wall time."""
        rows = [u for w in self.windows for u in w.updates]
        return {k: 1e3 * statistics.median(r[clock + k] for r in rows) for k in PHASES}


def compare(settings: list[Setting], window: float, windows: int, warmup: float,
            progress: Callable[[str], None] = print) -> list[Result]:
    """Build every setting, warm each up, then ``windows`` windows of alternating updates."""
    benches = [StepBench(s) for s in settings]
    firsts = []
    for b in benches:
        firsts.append(warm_up(b, warmup))
        progress(f"  warmed up {b.s.label()} (first update {firsts[-1]:.1f} s)")
    done: list[list[Window]] = [[] for _ in benches]
    for r in range(windows):
        for i, w in enumerate(run_window(benches, window)):
            done[i].append(w)
        rates = "  ".join(f"{w[-1].rate:.0f}" for w in done)
        progress(f"  window {r + 1}: {rates} traj/s ({len(done[0][-1].updates)} updates each)")
    return [Result(s, w, f) for s, w, f in zip(settings, done, firsts)]


def print_results(results: list[Result]) -> None:
    """Per-setting table (medians) and each setting's ratio to the first, median of per-window ratios."""
    H = results[0].setting.m
    base = results[0].setting
    print(f"\n{'setting':44s} {'traj/s':>8s} {'tokens/s':>9s} {'traj/cpu-s':>10s}  "
          + " ".join(f"{p:>9s}" for p in PHASES) + "   (ms per update, medians)")
    for res in results:
        ph, cpu = res.phase_ms(), res.phase_ms("cpu:")
        print(f"{res.setting.label(base if res is not results[0] else None)[:44]:44s} {res.rate:8.0f} "
              f"{res.rate * H:9.0f} {res.cpu_rate:10.0f}  " + " ".join(f"{ph[p]:9.1f}" for p in PHASES))
        print(f"{'  (CPU ms, all threads)':44s} {'':8s} {'':9s} {'':10s}  "
              + " ".join(f"{cpu[p]:9.1f}" for p in PHASES))
    for res in results[1:]:
        per_window = [b.rate / a.rate for a, b in zip(results[0].windows, res.windows)]
        per_cpu = [b.cpu_rate / a.cpu_rate for a, b in zip(results[0].windows, res.windows)]
        print(f"ratio {res.setting.label(base)} / {base.label()}: {statistics.median(per_window):.2f}x "
              f"(per window: {' '.join(f'{x:.2f}' for x in per_window)}); "
              f"per CPU second {statistics.median(per_cpu):.2f}x; "
              f"of median update times {results[0].update_s() / res.update_s():.2f}x")
    for res in results:
        if res.setting.compile == "on":
            print(f"compile: first update of {res.setting.label(base)} took {res.first_update_s:.1f} s "
                  f"(= {res.first_update_s * res.rate:.0f} trajectories at the compiled rate)")


# --------------------------------------------------------------------------- FLOPs
def flops_per_trajectory(cfg: PolicyConfig, P: int, H: int, impl: str = "new") -> dict[str, float]:
    """Matmul FLOPs (2 per multiply-add) per trajectory of one update, analytically.

    Attention counts causal work only (query at position i sees i + 1 keys). Layer
    norms, activations and the loss are left out (O(C) per token, not O(C^2)).
    ``impl="old"``: the last block and the head at every position; ``"new"``: only
    where logits are wanted. Backward is counted as twice the forward.
    """
    C, A, nl = cfg.n_embd, cfg.num_actions, cfg.n_layer

    def layer(T: int, first: int, start: int = 0) -> float:
        # T new positions start..start+T-1, outputs wanted at start+first..start+T-1
        Tq = T - first
        keys = sum(start + i + 1 for i in range(first, T))  # causal keys summed over queries
        return 2 * (T * C * 2 * C + Tq * C * C + Tq * C * C + Tq * C * 8 * C) + 4 * C * keys

    def model(T: int, first_last: int, start: int = 0) -> float:
        return (nl - 1) * layer(T, 0, start) + layer(T, first_last, start) + 2 * (T - first_last) * C * A

    T = P + H - 1
    if impl == "old":
        fwd = model(T, 0)
        prefill = model(P, 0) - 2 * (P - 1) * C * A  # the old prefill put the head on the last row only
    else:
        fwd = model(T, P - 1)
        prefill = model(P, P - 1)
    rollout = prefill + sum(model(1, 0, start=P + t - 1) for t in range(1, H))
    return {"rollout": rollout, "forward": fwd, "backward": 2 * fwd, "total": rollout + 3 * fwd}


def print_flops(m: int = 31, p: int = 7) -> None:
    task = ModAddTask(p=p, m=m)
    P, H = task.prompt_len, task.horizon
    print(f"Matmul FLOPs per trajectory (p={p}, m={m}: P={P}, H={H}; backward = 2 x forward), MFLOP:")
    print(f"{'preset':10s} {'impl':4s} {'rollout':>9s} {'forward':>9s} {'backward':>9s} {'total':>9s}")
    for preset in ("cpu-rope", "paper"):
        cfg = make_config(preset, task.vocab_size, task.num_actions, task.obs_len - 1)
        rows = {impl: flops_per_trajectory(cfg, P, H, impl) for impl in ("old", "new")}
        for impl, f in rows.items():
            print(f"{preset:10s} {impl:4s} " + " ".join(f"{f[k] / 1e6:9.2f}" for k in
                                                       ("rollout", "forward", "backward", "total")))
        print(f"{'':10s} new/old   " + " ".join(f"{rows['new'][k] / rows['old'][k]:9.2f}" for k in
                                                 ("rollout", "forward", "backward", "total")))


# --------------------------------------------------------------------------- profile
def profile(s: Setting, updates: int = 3, rows: int = 30) -> None:
    """torch.profiler over a few updates (after warm-up): the top ops by self time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    bench = StepBench(s)
    warm_up(bench, 0.0)
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if bench.device.type == "cuda" else [])
    with torch_profile(activities=acts, record_shapes=True) as prof:
        phases = [bench.update() for _ in range(updates)]
    print({k: round(1e3 * statistics.median(ph[k] for ph in phases), 1) for k in PHASES}, "ms (profiled)")
    sort = "self_cuda_time_total" if bench.device.type == "cuda" else "self_cpu_time_total"
    print(prof.key_averages(group_by_input_shape=True).table(sort_by=sort, row_limit=rows,
                                                             max_name_column_width=50))


# --------------------------------------------------------------------------- learning
def learning(args: argparse.Namespace) -> None:
    """NAIL-F (or --algo) on m=31 through the real trainer, to 99% greedy full-chain accuracy."""
    try:
        from agents import train  # the trainer (and gymnasium) only for this mode
    except ImportError:  # run as a file: the package __init__ was skipped
        raise SystemExit("--learning needs the trainer: run "
                         "`python -m benchmarks.train_speed --learning`") from None

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


def _load() -> str:
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:  # not on every platform
        return "n/a"


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--set", default="", metavar="K=V,...",
                    help="the setting to measure (default: preset=cpu-rope,batch=256,algo=nail-f,precision=fp32)")
    ap.add_argument("--compare", nargs="+", metavar="K=V,...",
                    help="settings to run interleaved (each on top of --set); ratios are to the first")
    ap.add_argument("--no-baseline", action="store_true",
                    help="without --compare: measure --set alone, not against impl=old")
    ap.add_argument("--window", type=float, default=10.0, help="seconds per steady-state window")
    ap.add_argument("--windows", type=int, default=3, help="number of windows")
    ap.add_argument("--warmup", type=float, default=3.0, help="unrecorded seconds per setting first")
    ap.add_argument("--flops", action="store_true", help="print FLOPs per trajectory and exit")
    ap.add_argument("--profile", action="store_true", help="profile a few updates of --set and exit")
    ap.add_argument("--learning", action="store_true", help="run the m=31 learning benchmark instead")
    learn = ap.add_argument_group("--learning options")
    learn.add_argument("--budget", type=int, default=300_000)
    learn.add_argument("--algo", default="nail-f")
    learn.add_argument("--lr", type=float, default=3e-3)
    learn.add_argument("--batch", type=int, default=512)
    learn.add_argument("--preset", default="cpu-rope")
    learn.add_argument("--estimator", default=None, help="forward estimator for nail-f/opd-f (mc or exact)")
    learn.add_argument("--device", default="auto")
    learn.add_argument("--precision", default="auto")
    args = ap.parse_args(argv)
    if torch.cuda.is_available():
        print(f"cuda device: {torch.cuda.get_device_name()}")
    print(f"torch {torch.__version__}  threads {torch.get_num_threads()}  "
          f"cpu {torch.backends.cpu.get_cpu_capability()}")
    if args.flops:
        print_flops()
        return
    if args.learning:
        learning(args)
        return
    base = Setting.parse(args.set)
    if args.profile:
        profile(base)
        return
    if args.compare:
        settings = [Setting.parse(c, base) for c in args.compare]
    elif args.no_baseline:
        settings = [base]
    else:
        settings = [dataclasses.replace(base, impl="old", compile="off"), base]
    print(f"device {resolve_device(base.device)}; {len(settings)} setting(s), {args.windows} windows of "
          f"{args.window:g} s after {args.warmup:g} s warm-up each; load average {_load()}")
    try:
        results = compare(settings, args.window, args.windows, args.warmup)
    except old_policy.OldPolicyUnavailable as e:  # impl=old without the git history it is read from
        raise SystemExit(str(e)) from None
    print(f"load average after: {_load()}")
    print_results(results)
    print()
    print_flops(settings[0].m, settings[0].p)


if __name__ == "__main__":
    main()
