"""`neg bench report SPEC`: tables and figures for a spec's results, as Markdown + PNG.

The report gathers, for every run of the spec, the finished result with the same
config and seed: the current code version's when present, else the latest one
recorded (the report lists every code version it includes, so mixed versions
are visible). Tables are per env config (the varied env kwargs): final metrics
over seeds (mean with 95% Student-t CI, IQM), sample efficiency (trajectories to
the target accuracy, area under the learning curve), and the probability of
improvement between algorithms. Figures: learning curves per env config; the
final metric and the trajectories to the target vs each swept env kwarg, with the
theory's mode-condition boundary eta = 1/(1 + kappa) drawn on eta sweeps under a
corruption law (:func:`theory_lines`).
"""

from __future__ import annotations

import math
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from noisy_expert_gym.noise import CORRUPTION_LAWS, DEFAULT_KAPPA
from noisy_expert_gym.theory_corruption import mode_boundary
from noisy_expert_gym.utils import safe_name, write_atomic
from scoreboards.analysis.stats import (
    area_under_curve,
    count_failed,
    probability_of_improvement,
    steps_to_target,
    summarize,
    time_to_target,
)
from scoreboards.provenance import canonical_json, code_version, now
from scoreboards.store import ResultStore
from scoreboards.sweeps.spec_model import RunSpec, Spec, env_label, run_identity

LOWER_IS_BETTER = ("val_loss",)


@dataclass
class Report:
    """A written report."""

    spec: str
    path: Path
    markdown: str
    tables: str
    """The tables alone (what the CLI prints)."""
    figures: list[Path] = field(default_factory=list)
    found: int = 0
    expected: int = 0


def gather(spec: Spec, store: ResultStore) -> list[tuple[RunSpec, dict[str, Any] | None]]:
    """Each run of the spec with its finished row (or None): same identity and seed, any code version."""
    runs = spec.runs()
    rows = store.runs(status="done")
    by_key = {r["key"]: r for r in rows}
    by_identity: dict[str, dict[str, Any]] = {}
    for r in rows:  # ordered by creation: the latest wins
        by_identity[canonical_json(run_identity(r["config"]))] = r
    return [(run, by_key.get(run.key) or by_identity.get(canonical_json(run_identity(run.config))))
            for run in runs]


def _fmt(v: float, digits: int = 3) -> str:
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}g}"


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)


def _group_tables(spec: Spec, results: list[tuple[RunSpec, dict | None]],
                  curves: dict[str, list[dict]], seed: int) -> tuple[str, dict]:
    metric, target = spec.report["metric"], spec.report["target"]
    higher = metric not in LOWER_IS_BETTER
    groups: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run, row in results:
        if row is not None:
            groups[run.group][run.label].append(row)
    parts, finals = [], {}
    for _, varied in spec.env_configs():
        g = env_label(varied)
        by_label = groups.get(g, {})
        header = ["algorithm", "seeds", f"{metric} (95% CI)", "IQM", "final exact", "correct prefix",
                  "val loss", f"traj. to {target:g}", "AUC", "trajectories used"]
        # The noisy expert's mode chain (agents.evaluation.expert_mode_metrics), where runs report it.
        mode = any("greedy_expert_mode_full" in r["final_metrics"] for rs in by_label.values() for r in rs)
        if mode:
            header.insert(6, "noisy-mode chain")
        rows = []
        for label in spec.labels:
            rs = by_label.get(label, [])
            fm = [r["final_metrics"] for r in rs]
            s = summarize([f.get(metric, float("nan")) for f in fm], metric=metric)
            finals[(g, label)] = [f.get(metric, float("nan")) for f in fm]
            # Trajectories to target and AUC over the same seeds as the mean: a failed run (its metric NaN or
            # absent) is left out of both, not counted as never reaching the target (stats' missing-value policy).
            cs = [curves.get(r["key"], []) for r, f in zip(rs, fm, strict=True) if not count_failed([f.get(metric)])]
            hits = [steps_to_target(c, target) for c in cs]
            reached = [h for h in hits if not math.isnan(h)]
            ttt = f"{np.median(reached):,.0f} ({len(reached)}/{len(hits)})" if reached else (
                f"never (0/{len(hits)})" if hits else "-")
            auc = summarize([area_under_curve(c, x_max=spec.budget_trajectories) for c in cs], ci=False)
            ref = " (reference, clean expert)" if any(r["uses_clean_expert"] for r in rs) else ""
            row = [
                f"{label}{ref}", str(len(rs)), s.fmt(), _fmt(s.iqm),
                _fmt(summarize([f.get("greedy_final_exact", float("nan")) for f in fm], ci=False).mean),
                _fmt(summarize([f.get("greedy_correct_prefix_len", float("nan")) for f in fm], ci=False).mean),
                _fmt(summarize([f.get("val_loss", float("nan")) for f in fm], ci=False).mean),
                ttt, _fmt(auc.mean),
                f"{np.mean([r['trajectories'] or 0 for r in rs]):,.0f}" if rs else "-",
            ]
            if mode:
                row.insert(6, _fmt(summarize([f.get("greedy_expert_mode_full", float("nan")) for f in fm],
                                             ci=False).mean))
            rows.append(row)
        parts.append(f"### {spec.env_id} {g}\n\n" + _md_table(header, rows))
        present = [lab for lab in spec.labels if finals.get((g, lab))]
        if len(present) > 1:
            pi_rows = [[a] + [("" if a == b else f"{probability_of_improvement(finals[(g, a)], finals[(g, b)], higher):.2f}")
                              for b in present] for a in present]
            parts.append(f"Probability of improvement P({metric}: row > column) over seeds:\n\n"
                         + _md_table(["row \\ column", *present], pi_rows))
    return "\n\n".join(parts), finals


def _figures(spec: Spec, results: list[tuple[RunSpec, dict | None]], curves: dict[str, list[dict]],
             out: Path) -> list[Path]:
    from scoreboards.analysis import plots

    figs: list[Path] = []
    metric, target = spec.report["metric"], spec.report["target"]
    by_group: dict[str, dict[str, list]] = defaultdict(lambda: {lab: [] for lab in spec.labels})
    for run, row in results:
        if row is not None:
            by_group[run.group][run.label].append(curves.get(row["key"], []))
    for g, by_label in by_group.items():
        name = "curves" if g == "default" else f"curves_{_slug(g)}"
        p = plots.learning_curves(by_label, out / f"{name}.png", title=f"{spec.name}: {spec.env_id} {g}")
        if p:
            figs.append(p)
    # Final metric vs each swept env kwarg (panels: the other kwargs) and algorithm parameter.
    for kw, vals in spec.env_grid.items():
        if len(vals) < 2 or not all(isinstance(v, (int, float)) for v in vals):
            continue
        acc: dict[tuple, list[float]] = defaultdict(list)
        for run, row in results:
            if row is None:
                continue
            panel = env_label({k: v for k, v in run.env_varied.items() if k != kw})
            acc[(panel, run.label, run.env_varied[kw])].append(row["final_metrics"].get(metric, float("nan")))
        lines = theory_lines(results, kw)
        p = plots.final_vs_x(_points(acc), out / f"final_vs_{_slug(kw)}.png", xlabel=kw, ylabel=f"final {metric}",
                             title=f"{spec.name}: final {metric} vs {kw}", logy=metric == "val_loss", vlines=lines)
        if p:
            figs.append(p)
        # Trajectories to the target (a run that never reached it is drawn at the budget).
        ttt: dict[tuple, list[float]] = defaultdict(list)
        for run, row in results:
            if row is None:
                continue
            panel = env_label({k: v for k, v in run.env_varied.items() if k != kw})
            hit = steps_to_target(curves.get(row["key"], []), target)
            ttt[(panel, run.label, run.env_varied[kw])].append(spec.budget_trajectories if math.isnan(hit) else hit)
        p = plots.final_vs_x(_points(ttt), out / f"ttt_vs_{_slug(kw)}.png", xlabel=kw,
                             ylabel=f"trajectories to greedy_full_exact >= {target:g}",
                             title=f"{spec.name}: trajectories to target vs {kw} (at the budget: not reached)",
                             vlines=lines, hline=(spec.budget_trajectories, "budget (not reached)"))
        if p:
            figs.append(p)
    params = sorted({k for a in spec.algorithms for k in a.varied})
    for param in params:
        acc = defaultdict(list)
        for run, row in results:
            alg = next(a for a in spec.algorithms if a.label == run.label)
            if row is None or param not in alg.varied or not isinstance(alg.varied[param], (int, float)):
                continue
            acc[(run.group, alg.name, alg.varied[param])].append(row["final_metrics"].get(metric, float("nan")))
        p = plots.final_vs_x(_points(acc), out / f"sweep_{_slug(param)}.png", xlabel=param, ylabel=f"final {metric}",
                             title=f"{spec.name}: final {metric} vs {param}", logy=metric == "val_loss")
        if p:
            figs.append(p)
    return figs


def theory_lines(results: list[tuple[RunSpec, dict | None]], kw: str) -> dict[str, list[tuple[float, str]]]:
    """Reference lines of the theory on a sweep over `kw`, per panel (the other varied kwargs).

    On an ``eta`` sweep under a corruption law (`corrupted`, `corrupted-absorbing`): the
    mode-condition boundary eta = 1 / (1 + kappa)
    (:func:`~noisy_expert_gym.theory_corruption.mode_boundary`; our reconstruction of the
    paper's unknown-corruption extension): below it the clean action is the strict mode of
    pi~ at every error-free prefix. Empty for every other sweep.
    """
    out: dict[str, list[tuple[float, str]]] = {}
    if kw != "eta":
        return out
    for run, _ in results:
        if run.env_kwargs.get("law") in CORRUPTION_LAWS:
            kappa = float(run.env_kwargs.get("kappa", DEFAULT_KAPPA))
            panel = env_label({k: v for k, v in run.env_varied.items() if k != kw})
            b = mode_boundary(kappa)
            out[panel] = [(b, f"mode boundary 1/(1+kappa) = {b:.3g}")]
    return out


def _theory_head(results: list[tuple[RunSpec, dict | None]]) -> list[str]:
    """The report's header line for the theory's reference lines (dashed on the eta figures)."""
    lines = sorted({(panel, text) for panel, ls in theory_lines(results, "eta").items() for _, text in ls})
    if not lines:
        return []
    return ["- theory (dashed on the eta figures): the mode condition holds iff eta < 1/(1+kappa): "
            + "; ".join(f"{panel}: {text}" for panel, text in lines)]


def _points(acc: dict[tuple, list[float]]) -> dict[str, dict[str, list[tuple[float, float, float]]]]:
    """{(panel, line, x): final values} -> {panel: {line: [(x, mean, std), ...]}} (NaNs left out)."""
    pts: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    for (panel, line, x), ys in acc.items():
        ys = [y for y in ys if not math.isnan(y)]
        if ys:
            pts[panel][line].append((x, float(np.mean(ys)), float(np.std(ys, ddof=1)) if len(ys) > 1 else 0.0))
    return pts


def _episode_gifs(spec: Spec, store: ResultStore, results: list[tuple[RunSpec, dict | None]],
                  out: Path) -> list[tuple[str, Path]]:
    """Per env config, the best and the worst agent's greedy evaluation episodes as GIFs.

    Frames write the chain token by token: green where it matches the true running
    sums, red where it does not (the failure mode: where along the chain agents slip).
    """
    from noisy_expert_gym import make_problem
    from noisy_expert_gym.rendering import render_rgb, write_gif

    metric = spec.report["metric"]
    sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
    by_group: dict[str, dict[str, list[dict]]] = defaultdict(lambda: defaultdict(list))
    for run, row in results:
        if row is not None and not row["uses_clean_expert"]:
            by_group[run.group][run.label].append(row)
    gifs = []
    for kwargs, varied in spec.env_configs():
        g = env_label(varied)
        labels = by_group.get(g, {})
        if len(labels) < 2:
            continue
        score = {lab: sign * float(np.mean([r["final_metrics"].get(metric, np.nan) for r in rs]))
                 for lab, rs in labels.items()}
        ranked = sorted((lab for lab in score if not math.isnan(score[lab])), key=score.get)
        if len(ranked) < 2:
            continue
        try:
            task = make_problem(spec.env_id, **kwargs).task
            true_sums = task.true_sums
        except Exception:  # noqa: BLE001 - only tasks with a clean chain are animated
            return gifs
        for which, lab in (("best", ranked[-1]), ("worst", ranked[0])):
            eps = store.samples(labels[lab][0]["key"])
            if not eps:
                continue
            frames = []
            for prompt, chain in eps:
                p_arr = np.asarray(prompt)[None]
                correct = (np.asarray(chain) == true_sums(p_arr)[0]).tolist()
                x = prompt[: task.horizon]
                digits = len(str(task.vocab_size))
                for t in range(len(chain) + 1):
                    frames.append(render_rgb(x, chain[:t], correct[:t], num_digits=digits))
                frames += [frames[-1]] * 3  # hold the finished chain
            path = out / f"episodes_{_slug(g)}_{which}.gif"
            write_gif(frames, path, fps=4)
            gifs.append((f"{g}: {which} ({lab})", path))
    return gifs


def _horizon(spec: Spec, results: list[tuple[RunSpec, dict | None]], curves: dict[str, list[dict]], out: Path,
             seed: int, figures: bool) -> tuple[str, Path | None]:
    """The horizon-scaling section (:mod:`scoreboards.analysis.horizon_fit`, written by
    :mod:`scoreboards.analysis.horizon_report`) of a spec that sweeps ``m`` with early stopping:
    verdict tables and the T-vs-m figure; ("", None) for other specs."""
    from scoreboards.analysis import horizon_fit, horizon_report

    var = horizon_fit.scaling_variable(spec)
    if var is None or not any(row for _, row in results):
        return "", None
    groups = horizon_fit.analyse(spec, results, curves,
                                 n_boot=spec.report.get("horizon_boot", horizon_fit.N_BOOT), seed=seed)
    what = {"m": "horizon", "period": "period", "eta": "noise"}[var]
    fig = (horizon_report.plot_horizon(groups, out / "horizon.png",
                                       title=f"{spec.name}: trajectories to target vs {what}")
           if figures else None)
    return horizon_report.markdown(groups, spec), fig


def _fmt_k(t: float) -> str:
    return f"{t / 1000:.1f}k"


def lr_record(spec: Spec, results: list[tuple[RunSpec, dict | None]], curves: dict[str, list[dict]]) -> str:
    """The learning-rate record of a spec that runs one learner at several learning rates (a tuning spec).

    Per learner (algorithm and parameters; entries that differ only in ``lr``) and env config: for each
    lr, the trajectories to the target per seed (interpolated; ``>`` censored at the budget, with the
    best accuracy the run reached), and the best lr of the grid: most seeds reaching the target, then
    the smallest median trajectories, then the highest mean best accuracy. A best lr at either end of
    the grid is marked: the grid may be too narrow there. Empty for other specs.
    """
    target = spec.eval.get("stop_at", spec.report["target"])
    groups: dict[str, dict[float, str]] = defaultdict(dict)
    for a in spec.algorithms:
        if "lr" in a.train:
            rest = {k: v for k, v in a.train.items() if k != "lr"}
            groups[f"{a.name}({', '.join(f'{k}={v}' for k, v in {**a.params, **rest}.items())})"
                   .replace("()", "")][float(a.train["lr"])] = a.label
    groups = {g: lrs for g, lrs in groups.items() if len(lrs) >= 2}
    if not groups:
        return ""
    by: dict[tuple[str, str], list[tuple[int, Any, float]]] = defaultdict(list)
    for run, row in results:
        if row is not None:
            c = curves.get(row["key"], [])
            best = max((r.get("greedy_full_exact", 0.0) for r in c), default=float("nan"))
            by[(run.label, run.group)].append((run.seed, time_to_target(c, target, spent=row.get("trajectories")),
                                               best))
    configs = [env_label(v) for _, v in spec.env_configs()]
    header = ["learner", "env"] + [f"lr {lr:g}" for lr in sorted({lr for g in groups.values() for lr in g})] + [
        "best lr"]
    all_lrs = sorted({lr for g in groups.values() for lr in g})
    rows = []
    for g, lrs in groups.items():
        for cfg in configs:
            cells, scores = [], {}
            for lr in all_lrs:
                runs = sorted(by.get((lrs[lr], cfg), []), key=lambda r: r[0]) if lr in lrs else []
                if not runs:
                    cells.append("-")
                    continue
                parts = [(_fmt_k(h.t) if not h.censored else f">{_fmt_k(h.t)} ({b:.2f})") for _, h, b in runs]
                reached = [h.t for _, h, _ in runs if not h.censored]
                med = float(np.median([h.t if not h.censored else math.inf for _, h, _ in runs]))
                scores[lr] = (-len(reached) / len(runs), med, -float(np.mean([b for *_, b in runs])))
                cells.append(", ".join(parts))
            best = min(scores, key=scores.get) if scores else None
            edge = best is not None and best in (min(lrs), max(lrs))
            rows.append([g, cfg, *cells, "-" if best is None else f"{best:g}" + (" (edge of the grid)" if edge else "")])
    return ("## Learning rates\n\n"
            f"Trajectories to {target:g} per seed ({', '.join(str(s) for s in spec.seeds)}); `>` censored at the "
            "budget, with the best accuracy the run reached. Best lr: most seeds reaching the target, then the "
            "smallest median, then the highest mean best accuracy.\n\n" + _md_table(header, rows))


def _slug(s: str) -> str:
    """A file-name part for a group (``eta=0.2,m=4``, kept as it is) or a parameter name: one per name,
    other characters rewritten with a hash suffix (:func:`~noisy_expert_gym.utils.safe_name`)."""
    return safe_name(s, "A-Za-z0-9_.,=-")


def build_report(spec: Spec, store: ResultStore, out_dir: str | Path | None = None, seed: int = 0,
                 figures: bool = True) -> Report:
    """Write ``report.md`` and its PNGs to `out_dir` (default ``<db dir>/<spec name>/``).

    Args:
        seed: seed of the horizon fits' bootstrap resampling (a report is reproducible).
        figures: draw the figures (tables only when False).
    """
    out = Path(out_dir) if out_dir else store.path.parent / spec.name
    results = gather(spec, store)
    found = [row for _, row in results if row is not None]
    curves = store.curves([r["key"] for r in found])
    tables, _ = _group_tables(spec, results, curves, seed)
    figs = _figures(spec, results, curves, out) if figures and found else []
    from scoreboards.analysis import horizon_fit

    lr_md = lr_record(spec, results, curves)  # a tuning spec: its record replaces the scaling section
    horizon_md, horizon_fig = ("", None) if lr_md else _horizon(spec, results, curves, out, seed,
                                                                 figures and bool(found))
    if lr_md:
        tables = lr_md + "\n\n## Per env config\n\n" + tables
    elif horizon_md:
        per = "horizon" if horizon_fit.scaling_variable(spec) == "m" else "env config"
        tables = horizon_md + f"\n\n## Per {per}\n\n" + tables
    figs = ([horizon_fig] if horizon_fig else []) + figs
    gifs = _episode_gifs(spec, store, results, out) if figures and found else []
    versions = sorted({r["code_version"] for r in found})
    devices = sorted({str(r["device"]) for r in found})
    wall = sum(r["wall_time"] or 0.0 for r in found)
    fixed = ", ".join(f"{k}={v}" for k, v in spec.env_kwargs.items()) or "defaults"
    head = [
        f"# {spec.name}",
        "",
        spec.description,
        "",
        f"- env: `{spec.env_id}` ({fixed}); grid: "
        + (", ".join(f"{k} in {v}" for k, v in spec.env_grid.items()) or "none"),
        f"- budget: {spec.budget_trajectories:,} expert trajectories per run"
        + (f", at most {spec.budget_queries:,} queries" if spec.budget_queries else "")
        + f"; seeds {spec.seeds}",
        f"- runs: {len(found)} of {len(results)} finished"
        + ("" if len(found) == len(results) else " (run `neg bench run` to complete it)"),
        (f"- training time: {wall / 3600:.2f} h on {', '.join(devices) or '-'}; expected cost: "
         f"{spec.cost or '-'} ({spec.gpu_hours:g} GPU-hours)"),
        f"- code versions: {', '.join(versions) or '-'}"
        + (f" (current: {code_version()})" if versions and versions != [code_version()] else ""),
        (f"- report written {now()}; CI: 95% Student-t interval of the mean over seeds; "
         "bands: mean +- 1 std over seeds"),
        *_theory_head(results),
        "",
        "## Results",
        "",
    ]
    figs_md = ["", "## Figures", ""] + [f"![{p.stem}]({p.name})" for p in figs] if figs else []
    if gifs:
        figs_md += ["", "## Greedy evaluation episodes", "",
                    ("Best and worst agent per env config (seed of the first run): green tokens match "
                     "the true running sums, red ones do not."), ""]
        figs_md += [f"- {title}: ![{p.stem}]({p.name})" for title, p in gifs]
    md = "\n".join(head) + tables + "\n" + "\n".join(figs_md) + "\n"
    path = out / "report.md"
    write_atomic(path, md)
    return Report(spec=spec.name, path=path, markdown=md, tables=tables, figures=figs + [p for _, p in gifs],
                  found=len(found), expected=len(results))
