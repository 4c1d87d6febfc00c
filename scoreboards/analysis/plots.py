"""Figures in the paper's forms (matplotlib, Agg backend), written atomically as PNG.

- :func:`learning_curves`: clean validation loss and greedy accuracy vs expert
  trajectories, mean over seeds with a +-1 std band (paper Fig. 2 / 5);
- :func:`final_vs_x`: a final metric vs an env kwarg or algorithm parameter, one
  panel per other setting (final accuracy vs horizon per eta, Fig. 4; the beta sweep,
  Fig. 5; rollout temperature, Fig. 3), optionally with reference lines (a theory's
  threshold per panel, e.g. the mode-condition boundary; the budget).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

from noisy_expert_gym.utils import atomic_path
from scoreboards.analysis.stats import curve_band, metric_bounds

METRIC_NAMES = {
    "val_loss": "clean validation loss",
    "greedy_full_exact": "greedy full-chain exact match",
    "greedy_final_exact": "greedy final-answer exact match",
    "greedy_correct_prefix_len": "correct greedy prefix length",
    "sampled_full_exact": "sampled full-chain exact match",
    "greedy_expert_mode_full": "greedy chain = the noisy expert's mode chain",
}


def save_atomic(fig: Any, path: str | Path, dpi: int = 100, fmt: str = "png") -> Path:
    """Save a figure (``png`` or ``svg``) through a temporary file and an atomic rename; closes it."""
    try:
        with atomic_path(path, suffix=f".{fmt}") as tmp:
            fig.savefig(tmp, dpi=dpi, format=fmt)
    finally:
        plt.close(fig)
    return Path(path)


def _color_map(labels: Sequence[str]) -> dict[str, Any]:
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    return {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}


def learning_curves(curves_by_label: dict[str, list[list[dict]]], path: str | Path, title: str = "",
                    metrics: Sequence[str] = ("val_loss", "greedy_full_exact"), x: str = "trajectories",
                    fmt: str = "png", ylim: tuple[float, float] | None = None,
                    figsize: tuple[float, float] | None = None, legend_fontsize: float = 7,
                    colors: dict[str, Any] | None = None, note: str = "") -> Path | None:
    """One panel per metric; a line per algorithm label (mean over seeds, +-1 std band).

    Args:
        curves_by_label: label -> one curve (list of evaluation dicts) per seed; the legend keeps
            this order.
        fmt: ``png`` or ``svg``.
        ylim: the y-axis range of every panel (e.g. one scale shared by several figures); with it
            the x-axis starts at 0 too. None: matplotlib's.
        figsize: inches (width, height); default 5.2 x 3.8 per panel.
        legend_fontsize: points.
        colors: label -> colour (default: tab10 in label order).
        note: a line of text under the panels (e.g. where no point was measured).
    """
    if not any(any(c) for cs in curves_by_label.values() for c in cs):
        return None
    colors = {**_color_map(list(curves_by_label)), **(colors or {})}
    fig, axes = plt.subplots(1, len(metrics), figsize=figsize or (5.2 * len(metrics), 3.8), squeeze=False)
    for ax, metric in zip(axes[0], metrics):
        drawn = False
        for label, curves in curves_by_label.items():
            xs, mean, std = curve_band(curves, metric, x)
            if not xs.size:
                continue
            drawn = True
            n = sum(1 for c in curves if c)
            ax.plot(xs, mean, color=colors[label], label=f"{label} (n={n})", lw=1.6,
                    marker="o" if xs.size <= 20 else None, ms=4)  # few points: show where each was measured
            lo, hi = mean - std, mean + std
            if metric == "val_loss":
                lo = np.maximum(lo, np.minimum(mean, 1e-6) * 0.5)
            elif metric_bounds(metric) == (0.0, 1.0):  # proportions: keep the band inside [0, 1]
                lo, hi = np.clip(lo, 0.0, 1.0), np.clip(hi, 0.0, 1.0)
            ax.fill_between(xs, lo, hi, color=colors[label], alpha=0.18, lw=0)
        if metric == "val_loss" and drawn and ylim is None:
            ax.set_yscale("log")
        if ylim is not None:
            ax.set_ylim(*ylim)
            ax.set_xlim(left=0)
        ax.set_xlabel("expert trajectories" if x == "trajectories" else x, fontsize=legend_fontsize + 1)
        ax.set_ylabel(METRIC_NAMES.get(metric, metric), fontsize=legend_fontsize + 1)
        ax.tick_params(labelsize=legend_fontsize)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=legend_fontsize, loc="best")
    if title:
        fig.suptitle(title, fontsize=legend_fontsize + 3)
    if note:
        fig.text(0.01, 0.01, note, fontsize=legend_fontsize - 1, color="0.3", ha="left", va="bottom")
    fig.tight_layout(rect=(0, 0.05 if note else 0, 1, 1))
    return save_atomic(fig, path, fmt=fmt)


def final_vs_x(points: dict[str, dict[str, list[tuple[float, float, float]]]], path: str | Path, xlabel: str,
               ylabel: str, title: str = "", logy: bool = False,
               vlines: dict[str, list[tuple[float, str]]] | None = None,
               hline: tuple[float, str] | None = None) -> Path | None:
    """Final metric vs a swept value.

    Args:
        points: panel title -> line label -> [(x, mean, std), ...].
        vlines: panel title -> [(x, label), ...]: vertical reference lines (dashed, labelled along the line).
        hline: (y, label): a horizontal reference line on every panel (dotted, grey).
    """
    panels = {k: v for k, v in points.items() if any(v.values())}
    if not panels:
        return None
    labels = sorted({lab for v in panels.values() for lab in v})
    colors = _color_map(labels)
    fig, axes = plt.subplots(1, len(panels), figsize=(4.3 * len(panels), 3.6), squeeze=False, sharey=True)
    for ax, (panel, lines) in zip(axes[0], panels.items()):
        for label, pts in lines.items():
            if not pts:
                continue
            pts = sorted(pts)
            xs, ms, ss = (np.asarray(c, dtype=float) for c in zip(*pts))
            ax.errorbar(xs, ms, yerr=ss, marker="o", ms=4, capsize=3, color=colors[label], label=label, lw=1.4)
        for x, text in (vlines or {}).get(panel, []):  # written along the line: panels differ
            ax.axvline(x, color="k", ls="--", lw=1.0)
            ax.text(x, 0.5, text, transform=ax.get_xaxis_transform(), rotation=90, ha="right", va="center",
                    fontsize=7)
        if hline is not None:
            ax.axhline(hline[0], color="0.5", ls=":", lw=1.0, label=hline[1])
        ax.set_title(panel, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.grid(alpha=0.3)
        if logy:
            ax.set_yscale("log")
    axes[0][0].set_ylabel(ylabel)
    axes[0][-1].legend(fontsize=7, loc="best")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_atomic(fig, path)
