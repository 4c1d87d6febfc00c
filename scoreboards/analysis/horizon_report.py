"""The horizon-scaling section of a report: verdict tables (Markdown) and the T-vs-m figure.

:func:`markdown` turns :func:`scoreboards.analysis.horizon_fit.analyse`'s groups into the
section ``neg bench report`` puts first for a spec that sweeps ``m`` with ``stop_at`` (and
``neg bench horizon`` prints): per algorithm, the median trajectories to target at each m
(censored ones shown as ``>``), both fits' growth with bootstrap CIs, the better fit, and
whether each algorithm's growth is separated from NAIL-F's (:func:`separation`).
:func:`plot_horizon` draws T vs m on a log axis: every run a marker (censored ones hollow,
drawn at their cap with an up arrow), the median per m, the better fit, the budget cap and
the theory's curve.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

from scoreboards.analysis.horizon_fit import HorizonGroup, Scaling


def _fmt_t(t: float, censored: bool = False) -> str:
    if math.isnan(t):
        return "-"
    s = f"{t / 1000:.0f}k" if t >= 10_000 else (f"{t / 1000:.1f}k" if t >= 1000 else f"{t:.0f}")
    return f">{s}" if censored else s


def _fmt_growth(s: Scaling, model: str) -> str:
    f = s.fits.get(model)
    if f is None:
        return "- (all censored)" if any(s.by_m.values()) else "-"
    lo, hi = s.ci.get(model, (math.nan, math.nan))
    ci = f" [{lo:.2f}, {hi:.2f}]" if not math.isnan(lo) else ""
    unit = "x per +1 m" if model == "exp" else ""
    v = f"{f.growth:.2f}"
    if f.at_bound:
        v = (">= " if f.b > 0 else "<= ") + v + " (censoring)"
    return f"{v}{ci}{(' ' + unit) if unit else ''}".strip()


def verdict_table(g: HorizonGroup, spec: Any) -> str:
    """Markdown table: per algorithm, T per m (median over seeds, censored shown as > cap), both fits."""
    ms = [float(m) for m in spec.env_grid["m"]]
    header = (["algorithm"] + [f"T at m={m:g}" for m in ms]
              + ["exp growth (95% CI)", "poly exponent (95% CI)", "better fit (dlogL; boot. P(exp))"])
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for s in g.rows:
        cells = [s.label]
        for m in ms:
            hs = s.by_m.get(m, [])
            if not hs:
                cells.append("-")
                continue
            med, cens = s.median(m)
            n_c = sum(h.censored for h in hs)
            cells.append(f"{_fmt_t(med, cens)} ({len(hs) - n_c}/{len(hs)})")
        cells += [_fmt_growth(s, "exp"), _fmt_growth(s, "poly")]
        b = s.better
        cells.append("-" if b is None else
                     f"{b} ({s.dloglik:+.1f}; {s.exp_wins:.2f})" if not math.isnan(s.exp_wins) else f"{b} ({s.dloglik:+.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def separation(g: HorizonGroup, reference: str | None = None) -> list[str]:
    """Lines comparing each algorithm's exponential growth with a reference algorithm's (the
    first label containing ``nail-f`` by default): is the CI of the ratio above 1?"""
    ref = next((s for s in g.rows if (reference or "nail-f") in s.label and s.fits.get("exp")), None)
    out = []
    for s in g.rows:
        if ref is None or s is ref or s.fits.get("exp") is None:
            continue
        lo, hi = s.ci.get("exp", (math.nan, math.nan))
        rlo, rhi = ref.ci.get("exp", (math.nan, math.nan))
        if math.isnan(lo) or math.isnan(rlo):
            continue
        if lo > rhi:
            word = "grows faster than"
        elif hi < rlo:
            word = "grows slower than"
        else:
            word = "is not separated from"
        out.append(f"- {s.label} ({s.fits['exp'].growth:.2f}x per +1 m) {word} {ref.label} "
                   f"({ref.fits['exp'].growth:.2f}x): CIs [{lo:.2f}, {hi:.2f}] vs [{rlo:.2f}, {rhi:.2f}]")
    return out


def markdown(groups: list[HorizonGroup], spec: Any) -> str:
    """The report's horizon section."""
    target = spec.eval.get("stop_at", spec.report["target"])
    parts = ["## Horizon scaling", "",
             (f"Expert trajectories T until greedy full-chain exact match on held-out prompts reaches "
              f"{target:g} (interpolated between evaluations; runs that never reach it are right-censored "
              f"at the budget, {spec.budget_trajectories:,}, shown as `>`). Cells: median over seeds "
              "(reached/runs). Fits: Tobit (censored) regression of log T on m (exponential: growth factor "
              "per +1 m) and on log m (polynomial: exponent), 95% percentile bootstrap CIs over seeds "
              "resampled within each m; the better fit has the larger likelihood (dlogL = exp - poly; "
              "both have 3 parameters), with the fraction of bootstrap resamples in which the exponential "
              "fits better.")]
    for g in groups:
        kw = ", ".join(f"{k}={v}" for k, v in g.env_kwargs.items())
        parts += ["", f"### {spec.env_id} {g.group} ({kw})", "",
                  (f"Theory: 1/P(clean prefix of length m) grows {g.theory_growth:.2f}x per +1 m "
                   "(what offline BC fights under the absorbing law)."), "", verdict_table(g, spec)]
        sep = separation(g)
        if sep:
            parts += ["", *sep]
    return "\n".join(parts)


def plot_horizon(groups: list[HorizonGroup], path: str | Path, title: str = "") -> Path | None:
    """T vs m on a log axis, one panel per group: markers per run (hollow with an arrow when
    censored, at the cap), the median per m where it was reached (not where half the runs or more
    are censored), the better Tobit fit (dashed), the budget cap and the theory's 1/q^m anchored at
    the first algorithm's reached median at the smallest m. A panel where no run reached the
    target says so instead of drawing every algorithm's line flat at the cap."""
    import matplotlib.pyplot as plt

    from scoreboards.analysis.plots import _color_map, save_atomic

    groups = [g for g in groups if any(any(s.by_m.values()) for s in g.rows)]
    if not groups:
        return None
    labels = list(dict.fromkeys(s.label for g in groups for s in g.rows))
    colors = _color_map(labels)
    fig, axes = plt.subplots(1, len(groups), figsize=(5.4 * len(groups), 4.2), squeeze=False, sharey=True)
    for ax, g in zip(axes[0], groups):
        all_m = sorted({m for s in g.rows for m in s.by_m})
        offsets = np.linspace(-0.12, 0.12, max(1, len(g.rows))) * (all_m[-1] - all_m[0]) / max(1, len(all_m))
        for off, s in zip(offsets, g.rows):
            col = colors[s.label]
            for m, hs in s.by_m.items():
                for h in hs:
                    if h.censored:
                        ax.plot(m + off, h.t, marker="^", mfc="none", mec=col, ms=6, ls="none")
                    else:
                        ax.plot(m + off, h.t, marker="o", color=col, ms=4, alpha=0.6, ls="none")
            # The median line only where the median was reached: a median that is a lower bound (half
            # the runs or more censored) sits at the cap, and lines of them drew identical flat lines.
            med = [(m, t) for m in sorted(s.by_m) for t, bound in [s.median(m)] if not bound]
            label = f"{s.label}" + (f" ({s.better}: {_fmt_growth(s, s.better).split(' [')[0]}"
                                    f"{'x/m' if s.better == 'exp' else ''})" if s.better else "")
            if med:
                ax.plot([x for x, _ in med], [t for _, t in med], color=col, lw=1.5, marker="o" if len(med) == 1
                        else None, label=label)
            else:  # in the legend, by its hollow censored marker
                ax.plot([], [], marker="^", mfc="none", mec=col, ls="none", label=f"{s.label} (never reached the target)")
            f = s.fits.get(s.better) if s.better else None
            if f is not None:
                grid = np.linspace(all_m[0], all_m[-1], 50)
                ax.plot(grid, f.predict(grid), color=col, lw=1.0, ls="--", alpha=0.8)
        if not any(not h.censored for s in g.rows for hs in s.by_m.values() for h in hs):
            ax.text(0.5, 0.5, "no entry reached the target:\nevery run is censored at the budget cap",
                    transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.2",
                    bbox={"facecolor": "white", "edgecolor": "0.6", "boxstyle": "round"})
        ax.axhline(g.cap, color="0.4", lw=0.8, ls=":")
        ax.text(all_m[0], g.cap * 1.08, "budget cap (hollow: censored)", fontsize=7, color="0.3")
        if not math.isnan(g.theory_growth) and g.rows:
            anchor = next((s.median(all_m[0])[0] for s in g.rows
                           if not math.isnan(s.median(all_m[0])[0]) and not s.median(all_m[0])[1]), None)
            if anchor:
                grid = np.linspace(all_m[0], all_m[-1], 50)
                ax.plot(grid, anchor * g.theory_growth ** (grid - all_m[0]), color="0.2", lw=1.0, ls="-.",
                        label=f"theory 1/P(clean prefix), x{g.theory_growth:.2f}/m")
        if not any(not h.censored for s in g.rows for hs in s.by_m.values() for h in hs):
            ax.set_ylim(g.cap / 10, g.cap * 3)  # every point at the cap: a decade below it
        ax.set_yscale("log")
        ax.set_xlabel("horizon m")
        ax.set_xticks(all_m)
        ax.set_title(", ".join(f"{k}={v}" for k, v in g.env_kwargs.items()), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5, loc="lower right")
    axes[0][0].set_ylabel("expert trajectories to target")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_atomic(fig, path, dpi=110)


__all__ = ["markdown", "plot_horizon", "separation", "verdict_table"]
