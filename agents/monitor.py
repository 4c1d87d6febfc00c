"""Where a run reports, written once: progress bar, TensorBoard scalars, the progress row.

:class:`Monitor` is what the student-prefix trainer and PPO log through (rank 0
only under DDP). TensorBoard tags are grouped ``train/``, ``eval/``, ``budget/``
and ``perf/``; the step is the number of expert trajectories spent, so curves of
different algorithms line up.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from agents.checkpoint import write_progress

if TYPE_CHECKING:
    from agents.config import TrainConfig

#: Tag of each logged key (``eval/<key>`` for keys not listed).
TAGS = {"train_loss": "train/train_loss", "train_return": "train/return", "val_loss": "eval/val_loss",
        "queries": "budget/queries", "update": "budget/update", "wall_time": "perf/wall_time"}

#: Progress-bar fields: label -> (key, format).
BAR = {"traj": ("trajectories", "d"), "loss": ("train_loss", ".3f"), "ret": ("train_return", ".3f"),
       "val": ("val_loss", ".3f"), "acc": ("greedy_full_exact", ".3f")}


def tensorboard(logdir: str | None) -> Any:
    """A TensorBoard ``SummaryWriter`` (None without `logdir`); names the extra when missing."""
    if not logdir:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ImportError("TensorBoard logging needs the `tensorboard` extra: "
                          "pip install 'noisy-expert-gym[tensorboard]'") from None
    return SummaryWriter(logdir)


def log_scalars(writer: Any, m: dict[str, Any]) -> None:
    """One evaluation row as scalars at step ``m["trajectories"]``, plus trajectories per second."""
    step = int(m["trajectories"])
    for k, v in m.items():
        if k == "trajectories" or not isinstance(v, (int, float)):
            continue
        writer.add_scalar(TAGS.get(k, f"eval/{k}"), v, step)
    if m.get("wall_time"):
        writer.add_scalar("perf/trajectories_per_s", m["trajectories"] / m["wall_time"], step)


class Monitor:
    """A run's reporting: call :meth:`log` at each evaluation, :meth:`advance` as work is done.

    Args:
        cfg: the run's config (``progress``, ``tensorboard_dir``, ``checkpoint_dir``
            for the progress row, ``budget_trajectories``).
        total: length of the progress bar, in ``unit``.
        initial: where the bar starts (a resumed run).
        unit: the bar's unit (``upd`` for updates, ``ep`` for PPO's episodes).
        active: False on ranks other than 0: nothing is reported.
    """

    def __init__(self, cfg: TrainConfig, total: int, initial: int = 0, unit: str = "upd",
                 active: bool = True) -> None:
        self.writer = tensorboard(cfg.tensorboard_dir) if active else None
        self.progress_dir = cfg.checkpoint_dir if active else None
        self.budget_trajectories = cfg.budget_trajectories
        self.bar = None
        if cfg.progress and active:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=total, initial=initial, desc=cfg.algo, unit=unit, dynamic_ncols=True)

    def log(self, metrics: dict[str, Any]) -> None:
        """An evaluation row: TensorBoard, ``progress.json`` (for sweep drivers), the bar's fields."""
        if self.writer is not None:
            log_scalars(self.writer, metrics)
        if self.progress_dir:
            write_progress(self.progress_dir, {**metrics, "budget_trajectories": self.budget_trajectories})
        if self.bar is not None:
            self.bar.set_postfix({label: format(metrics[k], fmt) for label, (k, fmt) in BAR.items()
                                  if isinstance(metrics.get(k), (int, float))})

    def advance(self, n: int = 1) -> None:
        if self.bar is not None:
            self.bar.update(n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        if self.writer is not None:
            self.writer.close()


__all__ = ["Monitor", "log_scalars", "tensorboard"]
