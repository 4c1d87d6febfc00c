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

from scoreboards.analysis.horizon_fit import HorizonGroup, Scaling, is_offline


def _fmt_t(t: float, censored: bool = False) -> str:
    if math.isnan(t):
        return "-"
    s = f"{t / 1000:.0f}k" if t >= 10_000 else (f"{t / 1000:.1f}k" if t >= 1000 else f"{t:.0f}")
    return f">{s}" if censored else s


def _fmt_growth(s: Scaling, model: str, variable: str = "m") -> str:
    f = s.fits.get(model)
    if f is None:
        return "- (all censored)" if any(s.by_m.values()) else "-"
    lo, hi = s.ci.get(model, (math.nan, math.nan))
    ci = f" [{lo:.2f}, {hi:.2f}]" if not math.isnan(lo) else ""
    unit = f"x per +1 {_short(variable)}" if model == "exp" else ""
    v = f"{f.growth:.2f}"
    if f.at_bound:
        v = (">= " if f.b > 0 else "<= ") + v + " (censoring)"
    return f"{v}{ci}{(' ' + unit) if unit else ''}".strip()


def _short(variable: str) -> str:
    return "P" if variable == "period" else variable


def _shape_text(g: HorizonGroup) -> tuple[str, str]:
    """How the offline and online theory shapes read for the group's swept variable."""
    v = _short(g.variable)
    if g.variable == "eta":
        return "q(eta)^-(L-1)", "L (flat in eta)"
    return f"q^-({v}-1)", v


def theory_line(g: HorizonGroup) -> str:
    """The group's theory, in one paragraph: q, the two predicted shapes, and how they are drawn."""
    if not g.shapes:
        return "Theory: no closed form for this task (no reference curves)."
    off, on = _shape_text(g)
    xs = sorted(g.shapes)
    if g.variable == "eta":
        qs = ", ".join(f"{g.shapes[x][0]:.3f}" for x in xs)
        head = (f"Theory (docs/design.md §3.4): q = 1 - eta + eta/n with n = {g.n} states (q = {qs} at eta = "
                f"{', '.join(f'{x:g}' for x in xs)}); with L positions that have their own rule, offline BC's "
                f"cost grows like {off}, NAIL-F's like {on}.")
    else:
        v = _short(g.variable)
        head = (f"Theory (docs/design.md §3.4): q = 1 - eta + eta/n = {g.shapes[xs[0]][0]:.3f} (n = {g.n} states): "
                f"offline BC's cost grows like {off} ({g.theory_growth:.2f}x per +1 {v}), NAIL-F's like {on} "
                "(polynomially)" + (" -- the no-sharing rate: a rule shared by every position need not pay it"
                                    if g.variable == "m" and not g.per_step else "") + ".")
    return (head + " Each algorithm's runs are compared with both shapes, each scaled to them by a censored fit "
            "of its level alone; the figure draws BC-type learners' offline shape and the others' online shape.")


def verdict_table(g: HorizonGroup, spec: Any) -> str:
    """Markdown table: per algorithm, T per swept value (median over seeds, censored shown as > cap),
    both growth fits (not on an eta sweep) and which theory shape fits better."""
    var = g.variable
    ms = [float(m) for m in spec.env_grid[var]]
    fits = var != "eta"
    header = (["algorithm"] + [f"T at {_short(var)}={m:g}" for m in ms]
              + (["exp growth (95% CI)", "poly exponent (95% CI)", "better fit (dlogL; boot. P(exp))"] if fits else [])
              + (["theory shape (dlogL offline - online)"] if g.theory else []))
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
        if fits:
            cells += [_fmt_growth(s, "exp", var), _fmt_growth(s, "poly", var)]
            b = s.better
            cells.append("-" if b is None else
                         f"{b} ({s.dloglik:+.1f}; {s.exp_wins:.2f})" if not math.isnan(s.exp_wins)
                         else f"{b} ({s.dloglik:+.1f})")
        if g.theory:
            th = g.theory.get(s.label, {})
            off, on = th.get("offline"), th.get("online")
            cells.append("-" if off is None or on is None else
                         f"{'offline' if off.loglik >= on.loglik else 'online'} ({off.loglik - on.loglik:+.1f})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_seed_table(g: HorizonGroup, spec: Any) -> str:
    """Markdown table: each algorithm's trajectories to target per seed at each swept value (``>`` censored)."""
    xs = [float(x) for x in spec.env_grid[g.variable]]
    seeds = sorted({h.seed for s in g.rows for hs in s.by_m.values() for h in hs})
    head = ["algorithm"] + [f"{_short(g.variable)} = {x:g}" for x in xs]
    lines = [f"Per seed ({', '.join(str(x) for x in seeds)}), in trajectories:", "",
             "| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
    for s in g.rows:
        cells = [s.label]
        for x in xs:
            hs = sorted(s.by_m.get(x, []), key=lambda h: h.seed)
            cells.append(", ".join((">" if h.censored else "") + f"{h.t / 1000:.1f}k" for h in hs)
                         or "-")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ratio_line(g: HorizonGroup, reference: str | None = None) -> list[str]:
    """At the largest swept value: each algorithm's T over the reference's (NAIL-F's) T of the same seed
    (a censored run gives a lower bound, ``>``; a censored reference an upper one, ``<``)."""
    ref = next((s for s in g.rows if (reference or "nail-f") in s.label), None)
    xs = sorted({x for s in g.rows for x in s.by_m})
    if ref is None or not xs:
        return []
    x = xs[-1]
    ref_hits = {h.seed: h for h in ref.by_m.get(x, [])}
    out = []
    for s in g.rows:
        if s is ref:
            continue
        parts = []
        for h in sorted(s.by_m.get(x, []), key=lambda h: h.seed):
            r = ref_hits.get(h.seed)
            if r is None:
                continue
            if h.censored and r.censored:
                parts.append("both censored")
            else:
                sign = ">" if h.censored else ("<" if r.censored else "")
                parts.append(f"{sign}{h.t / r.t:.1f}x")
        if parts:
            out.append(f"- at {_short(g.variable)} = {x:g}, {s.label} / {ref.label} per seed "
                       f"({', '.join(str(h.seed) for h in sorted(s.by_m.get(x, []), key=lambda h: h.seed))}): "
                       f"{', '.join(parts)}")
    return out


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
        v = _short(g.variable)
        out.append(f"- {s.label} ({s.fits['exp'].growth:.2f}x per +1 {v}) {word} {ref.label} "
                   f"({ref.fits['exp'].growth:.2f}x): CIs [{lo:.2f}, {hi:.2f}] vs [{rlo:.2f}, {rhi:.2f}]")
    return out


TITLES = {"m": "Horizon scaling", "period": "Period scaling", "eta": "Noise scaling"}


def markdown(groups: list[HorizonGroup], spec: Any) -> str:
    """The report's scaling section (horizon, period or noise)."""
    target = spec.eval.get("stop_at", spec.report["target"])
    var = groups[0].variable if groups else "m"
    v = _short(var)
    fits = (f" Fits: Tobit (censored) regression of log T on {v} (exponential: growth factor per +1 {v}) and "
            f"on log {v} (polynomial: exponent), 95% percentile bootstrap CIs over seeds resampled within "
            f"each {v}; the better fit has the larger likelihood (dlogL = exp - poly; both have 3 parameters), "
            "with the fraction of bootstrap resamples in which the exponential fits better.") if var != "eta" else ""
    parts = [f"## {TITLES.get(var, 'Scaling')}", "",
             (f"Expert trajectories T until greedy full-chain exact match on held-out prompts reaches "
              f"{target:g} (interpolated between evaluations; runs that never reach it are right-censored "
              f"at the budget, {spec.budget_trajectories:,}, shown as `>`). Cells: median over seeds "
              f"(reached/runs).{fits} Theory shape: which of the two predicted shapes, each scaled to the "
              "algorithm's runs, fits them better (dlogL = offline - online).")]
    for g in groups:
        kw = ", ".join(f"{k}={v}" for k, v in g.env_kwargs.items())
        parts += ["", f"### {spec.env_id} {g.group} ({kw})", "", theory_line(g), "", verdict_table(g, spec), "",
                  per_seed_table(g, spec)]
        extra = separation(g) + ratio_line(g)
        if extra:
            parts += ["", *extra]
    return "\n".join(parts)


def plot_horizon(groups: list[HorizonGroup], path: str | Path, title: str = "") -> Path | None:
    """T vs m on a log axis, one panel per group: markers per run (hollow with an arrow when
    censored, at the cap), the median per m where it was reached (not where half the runs or more
    are censored), the better Tobit fit (dashed), the theory's shape scaled to each algorithm's
    runs, and the budget cap. A panel where no run reached the target says so instead of drawing
    every algorithm's line flat at the cap."""
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
            if med:
                ax.plot([x for x, _ in med], [t for _, t in med], color=col, lw=1.5, marker="o" if len(med) == 1
                        else None, label=f"{s.label} (median T)")
            else:  # in the legend, by its hollow censored marker
                ax.plot([], [], marker="^", mfc="none", mec=col, ls="none", label=f"{s.label} (never reached the target)")
            f = s.fits.get(s.better) if s.better else None
            if f is not None:
                grid = np.linspace(all_m[0], all_m[-1], 50)
                fit = (f"{s.label} {s.better} fit: {_fmt_growth(s, s.better, g.variable).split(' [')[0]}"
                       f"{'x/' + _short(g.variable) if s.better == 'exp' else ''}")
                ax.plot(grid, f.predict(grid), color=col, lw=1.0, ls="--", alpha=0.8, label=fit)
            lf = g.scaled(s.label)
            if lf is not None:  # the theory's shape for this kind of learner, scaled to its runs
                xs = sorted(g.shapes)
                off, on = _shape_text(g)
                ax.plot(xs, lf.predict([g.shape(s.label, x) for x in xs]), color=col, lw=2.2, ls=":", alpha=0.9,
                        label=f"theory {off if is_offline(s.label) else on} (scaled to {s.label})")
        if not any(not h.censored for s in g.rows for hs in s.by_m.values() for h in hs):
            ax.text(0.5, 0.5, "no entry reached the target:\nevery run is censored at the budget cap",
                    transform=ax.transAxes, ha="center", va="center", fontsize=10, color="0.2",
                    bbox={"facecolor": "white", "edgecolor": "0.6", "boxstyle": "round"})
            ax.set_ylim(g.cap / 10, g.cap * 3)  # every point at the cap: a decade below it
        ax.axhline(g.cap, color="0.4", lw=0.8, ls=":")
        ax.text(all_m[0], g.cap * 1.08, "budget cap (hollow: censored)", fontsize=7, color="0.3")
        ax.set_yscale("log")
        ax.set_xlabel({"m": "horizon m", "period": "period P (rules)", "eta": "noise eta"}.get(g.variable, g.variable))
        ax.set_xticks(all_m)
        ax.set_title(", ".join(f"{k}={v}" for k, v in g.env_kwargs.items()), fontsize=9)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=6.5, loc="lower right")
    axes[0][0].set_ylabel("expert trajectories to target")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return save_atomic(fig, path, dpi=110)


__all__ = ["markdown", "per_seed_table", "plot_horizon", "ratio_line", "separation", "theory_line", "verdict_table"]
