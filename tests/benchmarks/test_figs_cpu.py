"""The CPU-scale figure specs (fig2-cpu .. fig5-cpu) at toy size through the real harness (real
trainer, in this process, one torch thread), and benchmarks/figs_cpu.py's tables and figures on them:
every run of each spec finishes, and each table row's per-seed values are the stored final
metrics, read here independently from the results database."""

from __future__ import annotations

import pytest

from benchmarks import figs_cpu as figs

COMMON = ["seeds=[0]", "budget.trajectories=192", "eval.every=64", "eval.prompts=32"]
TOY = {
    "fig2-cpu": ['env.kwargs={p=3, m=2}', "env.grid.eta=[0.2]"],  # 5 algorithms x 2 laws
    "fig3-cpu": ['env.kwargs={p=3, m=2, eta=0.2}'],  # 5 temperatures x 2 laws
    "fig4-cpu": ["env.grid.m=[2]", "env.grid.eta=[0.0, 0.4]"],  # 3 algorithms x 2 etas x 2 laws
    "fig5-cpu": ['env.kwargs={p=3, m=2, eta=0.2}'],  # 5 betas x 2 laws
}


@pytest.mark.parametrize("name", sorted(TOY))
def test_cpu_figure_spec_at_toy_size(name, db_path, tmp_path, monkeypatch, capsys):
    from scoreboards.analysis.report import gather
    from scoreboards.cli import main
    from scoreboards.store import ResultStore
    from scoreboards.sweeps.specs import load_spec

    overrides = COMMON + TOY[name]
    sets = [a for o in overrides for a in ("--set", o)]
    assert main(["bench", "run", name, "--db", str(db_path), *sets, "--workers", "0", "--threads", "1",
                 "--no-progress", "--no-report"]) == 0
    capsys.readouterr()
    spec = load_spec(name, overrides=overrides)
    monkeypatch.setattr(figs, "load_spec", lambda n, check_envs=False: spec)
    with ResultStore(db_path) as st:
        results = gather(spec, st)
        assert all(row is not None for _, row in results), "every run of the toy spec finished"
        md = figs.table(name, st, tmp_path)
    rows = [ln.split(" | ") for ln in md.splitlines() if ln.startswith("| ") and not ln.startswith("| env config")]
    assert len(rows) == len(results) == len(spec.env_configs()) * len(spec.labels)
    by_cell = {(figs._group_name(run.env_kwargs and {k: run.env_kwargs[k] for k in spec.env_grid}), run.label):
               row for run, row in results}
    for cells in rows:
        row = by_cell[(cells[0].lstrip("| "), cells[1])]
        assert cells[3] == f"{row['final_metrics']['greedy_full_exact']:.3f}", cells
    png = tmp_path / f"{name.replace('-', '_')}.png"
    assert png.stat().st_size > 5000
