"""Finished runs as files (``neg bench export``): CSV, JSON or Parquet.

:func:`write_export` writes runs as :meth:`scoreboards.store.ResultStore.runs` returns them
(final metrics included) with their curves (:meth:`~scoreboards.store.ResultStore.curves`);
``ResultStore.export`` reads both and calls it. csv/parquet: ``runs.<ext>`` (one row per
run, final metrics as ``final.<metric>`` columns) and ``curves.<ext>`` (long format: one
row per run, evaluation and metric). json: one ``results.json`` holding every run with its
nested curve and final metrics.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from noisy_expert_gym.utils import atomic_path, write_atomic
from scoreboards.provenance import canonical_json, now

FORMATS = ("csv", "json", "parquet")
#: A stored curve point's coordinates; its other keys are metrics.
AXES = ("trajectories", "queries", "wall_time")


def write_export(out_dir: str | Path, fmt: str, runs: Sequence[dict[str, Any]],
                 curves: dict[str, list[dict[str, Any]]], database: str | Path, force: bool = False
                 ) -> list[Path]:
    """Write `runs` and their `curves` to `out_dir` as `fmt`; returns the files written.

    Args:
        runs: run rows with their ``final_metrics`` (``ResultStore.runs``).
        curves: learning curves per run key (``ResultStore.curves``).
        database: the database they come from (recorded in the JSON export).
        force: write into an `out_dir` that already holds files (its files of the same names are
            replaced). Without it a non-empty `out_dir` raises FileExistsError: an earlier export
            is never overwritten silently.
    """
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format `{fmt}`; valid values: {', '.join(FORMATS)}")
    out = Path(out_dir)
    if not force and out.is_dir() and any(out.iterdir()):
        raise FileExistsError(f"`{out}` already holds files (an earlier export?): pass --force to overwrite "
                              "them, or --out a new folder")
    out.mkdir(parents=True, exist_ok=True)
    if fmt == "json":
        payload = {"exported_at": now(), "database": str(database),
                   "runs": [{**r, "curve": curves.get(r["key"], [])} for r in runs]}
        path = out / "results.json"
        write_atomic(path, json.dumps(payload, indent=1, default=str))
        return [path]
    flat = []
    metrics = sorted({m for r in runs for m in r["final_metrics"]})
    for r in runs:
        row = {k: (canonical_json(v) if isinstance(v, dict) else v)
               for k, v in r.items() if k != "final_metrics"}
        row.update({f"final.{m}": r["final_metrics"].get(m) for m in metrics})
        flat.append(row)
    long = [{"key": k, "step": i, **{a: p.get(a) for a in AXES}, "metric": m, "value": v}
            for k, pts in curves.items() for i, p in enumerate(pts)
            for m, v in p.items() if m not in AXES]
    paths = [out / f"runs.{fmt}", out / f"curves.{fmt}"]
    for path, rows in zip(paths, (flat, long)):
        if fmt == "csv":
            _write_csv(path, rows)
        else:
            _write_parquet(path, rows)
    return paths


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    fields: list[str] = []
    for r in rows:
        fields += [k for k in r if k not in fields]
    with atomic_path(path) as tmp, tmp.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=fields)
        w.writeheader()
        w.writerows(rows)


def _write_parquet(path: Path, rows: list[dict[str, Any]]) -> None:
    try:
        import pyarrow as pa
        import pyarrow.parquet as pq
    except ImportError:
        raise ValueError("Parquet export needs pyarrow: pip install 'noisy-expert-gym[parquet]'") from None
    with atomic_path(path, suffix=".parquet") as tmp:
        pq.write_table(pa.Table.from_pylist(rows), tmp)
