"""The sweep runner: every run of a spec on a local process pool or a Ray cluster.

Runs are keyed by identity + seed + code version (:func:`scoreboards.sweeps.spec_model.run_key`).
A sweep skips runs the store already has as ``done``; interrupted runs resume from
their checkpoints, kept under ``<db dir>/checkpoints/<run key>/``, so a killed
sweep loses at most the work since the last checkpoint of the runs in flight.
Workers train and return their result; only the driver writes to the store, one
transaction per finished run, as soon as it finishes.

Both backends survive a worker that dies mid-run (killed, out of memory, a lost Ray
node): its run is started again, up to ``retries`` times, and resumes from its
checkpoint; the other runs go on (the local pool is rebuilt, Ray retries the task).
"""

from __future__ import annotations

import os
import shutil
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from scoreboards.store import ResultStore
from scoreboards.sweeps.spec_model import RunSpec, Spec

BACKENDS = ("local", "ray")
TrainFn = Callable[..., Any]
#: Times a run is started again after its worker died (it resumes from its checkpoint).
RETRIES = 2


@dataclass
class SweepSummary:
    """What a sweep did."""

    spec: str
    total: int
    skipped: int = 0
    done: int = 0
    failed: int = 0
    wall_time: float = 0.0
    """Seconds from the start of the sweep to its end (driver side)."""
    train_time: float = 0.0
    """Sum over this sweep's runs of the seconds spent inside the training function."""
    workers: int = 1
    failures: list[str] = field(default_factory=list)

    @property
    def overhead(self) -> float:
        """Fraction of the workers' capacity not spent training: 1 - train / (wall x workers), in [0, 1]."""
        if self.train_time <= 0 or self.wall_time <= 0:
            return float("nan")
        return max(0.0, 1.0 - self.train_time / (self.wall_time * self.workers))

    def line(self) -> str:
        return (f"{self.spec}: {self.done} done, {self.failed} failed, {self.skipped} already done "
                f"(of {self.total}) in {self.wall_time:.1f} s")


# ----- the worker side -----------------------------------------------------------------
def _set_threads(threads: int | None) -> None:
    if not threads:
        return
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch
    except ImportError:  # pragma: no cover
        return
    torch.set_num_threads(threads)
    try:
        torch.set_num_interop_threads(threads)
    except RuntimeError:  # already set once in this process
        pass


def execute_run(config: dict[str, Any], checkpoint_dir: str | None, threads: int | None = None,
                train_fn: TrainFn | None = None, progress: bool = False) -> dict[str, Any]:
    """Train one run (in a worker); never raises: returns ``result`` or ``error``.

    Args:
        config: the run's TrainConfig fields (from :attr:`RunSpec.config`).
        checkpoint_dir: where the run checkpoints; it resumes when a checkpoint is there.
        threads: torch threads for this worker (1 when several workers share the CPU).
        train_fn: ``train_fn(TrainConfig) -> RunResult``; default ``agents.train``.
        progress: the trainer's own progress bar (in-process runs only).
    """
    t0 = time.perf_counter()
    try:
        _set_threads(threads)
        from agents.config import TrainConfig

        if train_fn is None:
            from agents import train as train_fn
        resume = bool(checkpoint_dir) and Path(checkpoint_dir).is_dir() and any(Path(checkpoint_dir).iterdir())
        cfg = TrainConfig(**config, checkpoint_dir=checkpoint_dir, resume=resume, progress=progress)
        t1 = time.perf_counter()
        result = train_fn(cfg)
        train_time = time.perf_counter() - t1
        d = result.to_dict() if hasattr(result, "to_dict") else dict(result)
        d["samples"] = greedy_samples(cfg, getattr(result, "policy", None))
        return {"result": d, "train_time": train_time, "worker_time": time.perf_counter() - t0,
                "resumed": resume}
    except BaseException:  # noqa: BLE001 - reported to the driver, which records the failure
        return {"error": traceback.format_exc(), "worker_time": time.perf_counter() - t0}


#: Evaluation episodes kept per run (the report animates the best and worst agents').
N_SAMPLES, SAMPLE_SEED = 4, 2024


def greedy_samples(cfg: Any, policy: Any) -> dict[str, list] | None:
    """A few greedy chains of the trained policy on fixed prompts, or None (no policy / task)."""
    if policy is None:
        return None
    try:
        import numpy as np
        import torch

        from noisy_expert_gym import make_problem

        task = make_problem(cfg.env_id, **cfg.env_kwargs).task  # the trainer's, built once per process
        prompts = task.sample_prompts(np.random.default_rng(SAMPLE_SEED), N_SAMPLES)
        dev = next(policy.parameters()).device
        with torch.no_grad():
            chain = policy.generate(torch.as_tensor(prompts, device=dev), task.horizon, temperature=0.0)
        return {"prompts": prompts.tolist(), "chains": chain.cpu().tolist()}
    except Exception:  # noqa: BLE001 - samples are an illustration, never a reason to fail a run
        return None


def _mp_context() -> Any:
    """forkserver where available: a clean server process imports torch and the trainer once,
    and every worker forks from it ready to train (no forked torch/CUDA state from the driver,
    no per-worker import). Elsewhere spawn: a fresh interpreter per worker."""
    import multiprocessing as mp

    if "forkserver" in mp.get_all_start_methods():
        ctx = mp.get_context("forkserver")
        ctx.set_forkserver_preload(["agents", "scoreboards.sweeps.runner"])
        return ctx
    return get_context("spawn")


def _init_worker(threads: int | None) -> None:
    _set_threads(threads)


# ----- backends: each yields (run, outcome) as runs finish ---------------------------------
def _inline(jobs: list[tuple[RunSpec, str | None]], train_fn: TrainFn | None, progress: bool = False,
            threads: int | None = None, **_: Any) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    for run, ckpt in jobs:  # in this process: the trainer's own bar shows the run's progress
        yield run, execute_run(run.config, ckpt, threads, train_fn, progress)


def _local(jobs: list[tuple[RunSpec, str | None]], train_fn: TrainFn | None, workers: int,
           threads: int | None, retries: int = RETRIES, **_: Any) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """A process pool fed `workers` runs at a time. A worker that dies breaks the pool
    (``BrokenProcessPool`` for every run in it), so the pool is rebuilt and the runs that were in
    it start again, resuming from their checkpoints, each at most `retries` times."""
    from concurrent.futures.process import BrokenProcessPool

    def new_pool() -> ProcessPoolExecutor:
        return ProcessPoolExecutor(max_workers=workers, mp_context=_mp_context(),
                                   initializer=_init_worker, initargs=(threads,))

    queue = list(jobs)
    attempts = {run.key: 0 for run, _ in jobs}
    pending: dict[Any, tuple[RunSpec, str | None]] = {}
    pool = new_pool()
    try:
        while queue or pending:
            while queue and len(pending) < workers:  # only as many as run at once: a break hits only them
                run, ckpt = queue.pop(0)
                pending[pool.submit(execute_run, run.config, ckpt, threads, train_fn)] = (run, ckpt)
            finished, _ = wait(pending, timeout=2.0, return_when=FIRST_COMPLETED)
            if not finished:  # a heartbeat: lets the driver refresh its in-flight display
                yield None, {"running": [r for f, (r, _) in pending.items() if f.running()]}
                continue
            died: list[tuple[RunSpec, str | None]] = []
            for fut in finished:
                run, ckpt = pending.pop(fut)
                try:
                    out = fut.result()
                except BrokenProcessPool:  # a worker died (killed, out of memory): the pool is gone
                    died.append((run, ckpt))
                    continue
                except BaseException:  # noqa: BLE001 - anything else the pool raises
                    out = {"error": "the worker process died:\n" + traceback.format_exc()}
                yield run, out
            if died:  # every run in the pool went down with it: start them again in a new one
                died += list(pending.values())
                pending.clear()
                pool.shutdown(wait=True, cancel_futures=True)
                pool = new_pool()
                for run, ckpt in reversed(died):
                    attempts[run.key] += 1
                    if attempts[run.key] <= retries:
                        queue.insert(0, (run, ckpt))
                    else:
                        yield run, {"error": f"the worker process died {attempts[run.key]} times (killed or "
                                             "out of memory) while this run was in the pool"}
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _ray(jobs: list[tuple[RunSpec, str | None]], train_fn: TrainFn | None, address: str | None,
         threads: int | None, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
         ray_init: dict[str, Any] | None = None, retries: int = RETRIES,
         **_: Any) -> Iterator[tuple[RunSpec, dict[str, Any]]]:
    """One Ray task per run. A task whose worker process or node dies is retried by Ray (up to
    `retries` times; ``execute_run`` itself never raises, so only such system failures are);
    the retry resumes from the run's checkpoint, which must be on storage every node sees."""
    try:
        import ray
    except ImportError:
        raise ValueError("the Ray backend needs Ray: pip install 'noisy-expert-gym[ray]'") from None
    started = False
    if not ray.is_initialized():
        # No address: always a fresh local instance ("local"), never whatever cluster
        # RAY_ADDRESS or a stale /tmp/ray/ray_current_cluster points at (ray.init's None).
        kw = {"address": address or "local", "log_to_driver": False, "include_dashboard": False,
              **(ray_init or {})}
        if address is None and "runtime_env" not in kw:
            # A local instance: workers import this checkout like the driver does.
            kw["runtime_env"] = {"env_vars": {"PYTHONPATH": os.pathsep.join(
                p for p in [os.getcwd(), str(Path(__file__).resolve().parent.parent),
                            os.environ.get("PYTHONPATH", "")] if p)}}
        ray.init(**kw)
        started = True
    try:
        remote = ray.remote(num_cpus=cpus_per_run, num_gpus=gpus_per_run, max_retries=retries)(execute_run)
        pending = {remote.remote(run.config, ckpt, threads or max(1, int(cpus_per_run)), train_fn): run
                   for run, ckpt in jobs}
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=2.0)
            if not ready:
                yield None, {}
                continue
            for ref in ready:
                run = pending.pop(ref)
                try:
                    out = ray.get(ref)
                except Exception:  # noqa: BLE001 - a dead worker or node
                    out = {"error": "the Ray task failed:\n" + traceback.format_exc()}
                yield run, out
    finally:
        for ref in list(locals().get("pending", {})):
            ray.cancel(ref, force=True)
        if started:
            ray.shutdown()


# ----- the driver ------------------------------------------------------------------------
def _in_flight(root: Path, runs: list[RunSpec]) -> str:
    """Per-run progress of the runs in flight, from the rows their trainers leave in their
    checkpoint directories: "nail-f [eta=0.2] seed=0 45% acc=0.62; ..."."""
    from agents.checkpoint import read_progress

    parts = []
    for run in runs:
        row = read_progress(str(root / run.key))
        if row and row.get("budget_trajectories"):
            pct = 100 * row["trajectories"] / row["budget_trajectories"]
            acc = row.get("greedy_full_exact")
            parts.append(f"{_describe(run)} {pct:.0f}%" + (f" acc={acc:.2f}" if acc is not None else ""))
    return "; ".join(parts)


def checkpoint_root(store: ResultStore) -> Path:
    return store.path.parent / "checkpoints"


def _main_importable() -> bool:
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    return main_file is None or os.path.exists(main_file)


def _default_workers(runs: list[RunSpec], cpus: int) -> int:
    """One worker per core for CPU runs; one in all when runs will use the GPU (they share it)."""
    if all(r.config.get("device") == "cpu" for r in runs):
        return cpus
    try:
        import torch
    except ImportError:  # pragma: no cover
        return cpus
    return 1 if torch.cuda.is_available() or torch.backends.mps.is_available() else cpus


def expected_cost(run: RunSpec) -> float:
    """A rough relative cost for scheduling only: budget x horizon, offline BC ~3x cheaper."""
    c = run.config
    horizon = run.env_kwargs.get("m", 31) if isinstance(run.env_kwargs.get("m", 31), int) else 31
    return c["budget_trajectories"] * horizon * (0.3 if run.algo.startswith("bc") else 1.0)


def _describe(run: RunSpec) -> str:
    return f"{run.label} [{run.group}] seed={run.seed}"


def run_sweep(spec: Spec, store: ResultStore | str | Path | None = None, backend: str = "local",
              workers: int | None = None, address: str | None = None, train_fn: TrainFn | None = None,
              progress: bool = True, keep_checkpoints: bool = False, checkpoints: str | Path | None = None,
              cpus_per_run: float = 1.0, gpus_per_run: float = 0.0, ray_init: dict[str, Any] | None = None,
              log: Callable[[str], None] | None = None, retries: int = RETRIES,
              threads: int | None = None, force: bool = False) -> SweepSummary:
    """Run every unfinished run of `spec` and record each result as it finishes.

    Args:
        spec: a validated :class:`~scoreboards.sweeps.spec_model.Spec`.
        store: a :class:`ResultStore` or a database path (default ``results/neg.sqlite``).
        backend: ``local`` (process pool; ``workers=0`` trains in this process) or ``ray``.
        workers: local pool size (default: one per CPU core for CPU runs, 1 when the runs use
            a GPU; at most the number of runs). Several GPUs: the Ray backend.
        address: Ray cluster address (default: start a local Ray instance).
        train_fn: ``train_fn(TrainConfig) -> RunResult`` (default ``agents.train``); must be
            picklable (a module-level function) for the process backends.
        progress: show a tqdm bar for the sweep (runs done / total, ETA).
        keep_checkpoints: keep each finished run's checkpoint directory.
        checkpoints: checkpoint root (default ``<db dir>/checkpoints``; on a Ray cluster
            point it at a shared filesystem for resume to work across nodes).
        cpus_per_run, gpus_per_run: Ray resources of one run.
        ray_init: extra ``ray.init`` keyword arguments.
        log: where per-run lines go (default: the progress bar's ``write``, or print).
        retries: times a run whose worker died (killed, out of memory, a lost Ray node) is started
            again; it resumes from its checkpoint.
        threads: torch threads per local worker (default: CPU cores / workers). On a CPU that
            other jobs share, 1: two threads contending for two busy cores ran a quick-spec run
            ~10x slower than one (107 s vs 11 s).
        force: run finished runs again too, from scratch (their kept checkpoints deleted first);
            each new result replaces the old one in one transaction, and a run that fails keeps
            the old result.
    """
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend `{backend}`; valid values: {', '.join(BACKENDS)}")
    own_store = not isinstance(store, ResultStore)
    st = store if isinstance(store, ResultStore) else ResultStore(store)
    t0 = time.perf_counter()
    try:
        runs = spec.runs()
        statuses = st.statuses(r.key for r in runs)
        todo = [r for r in runs if force or statuses.get(r.key) != "done"]
        summary = SweepSummary(spec=spec.name, total=len(runs), skipped=len(runs) - len(todo))
        if not todo:
            summary.wall_time = time.perf_counter() - t0
            return summary
        root = Path(checkpoints) if checkpoints else checkpoint_root(st)
        if force:  # a finished run's kept checkpoint would "resume" at its end: start from scratch
            for r in todo:
                if statuses.get(r.key) == "done":
                    shutil.rmtree(root / r.key, ignore_errors=True)
        # Longest runs first: the pool's tail (workers idle at the end) stays short.
        todo.sort(key=expected_cost, reverse=True)
        jobs = [(r, str(root / r.key)) for r in todo]
        if backend == "local":
            cpus = os.cpu_count() or 1
            n = min(len(todo), workers if workers is not None else _default_workers(todo, cpus))
            summary.workers = max(n, 1)
            if n and not _main_importable():
                # Worker processes re-import the driver's __main__ (`python - <script` has none).
                print("scoreboards: __main__ is not an importable file; training in this process",
                      file=sys.stderr)
                n = 0
            if threads is not None and threads < 1:
                raise ValueError(f"`threads` must be >= 1, got {threads}")
            threads = threads or (max(1, cpus // n) if n else None)
            it = (_local(jobs, train_fn, n, threads, retries=retries) if n
                  else _inline(jobs, train_fn, progress, threads))
        else:
            summary.workers = max(1, workers or 1)
            it = _ray(jobs, train_fn, address, None, cpus_per_run=cpus_per_run,
                      gpus_per_run=gpus_per_run, ray_init=ray_init, retries=retries)
        st.mark_running(todo)
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(runs), initial=summary.skipped, desc=f"sweep {spec.name}", unit="run",
                       dynamic_ncols=True)
        say = log or (bar.write if bar is not None else print)
        try:
            for run, out in it:
                if run is None:  # heartbeat
                    if bar is not None:
                        running = min(summary.workers, len(todo) - summary.done - summary.failed)
                        live = _in_flight(root, out.get("running", []))
                        bar.set_postfix_str(f"done={summary.done} failed={summary.failed} running={running}"
                                            + (f" | {live}" if live else ""))
                    continue
                if "result" in out:
                    st.record_result(run, out["result"])
                    summary.done += 1
                    summary.train_time += out["train_time"]
                    fm = out["result"].get("final_metrics", {})
                    shown = ", ".join(f"{k}={fm[k]:.3g}" for k in ("greedy_full_exact", "val_loss") if k in fm)
                    say(f"done   {_describe(run)}: {shown} ({out['train_time']:.1f} s"
                        f"{', resumed' if out.get('resumed') else ''})")
                    if not keep_checkpoints:
                        shutil.rmtree(root / run.key, ignore_errors=True)
                else:
                    st.record_failure(run, out["error"], out.get("worker_time"))
                    summary.failed += 1
                    last = out["error"].strip().splitlines()[-1]
                    summary.failures.append(f"{_describe(run)}: {last}")
                    say(f"FAILED {_describe(run)}: {last}")
                if bar is not None:
                    bar.update(1)
                    bar.set_postfix(done=summary.done, failed=summary.failed)
        finally:
            if bar is not None:
                bar.close()
            if hasattr(it, "close"):
                it.close()
        summary.wall_time = time.perf_counter() - t0
        return summary
    finally:
        if own_store:
            st.close()
