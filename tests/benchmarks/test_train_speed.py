"""Tests of the benchmark scripts benchmarks.train_speed / benchmarks.gpu_speed (tiny settings,
correctness only)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from agents.policy import TransformerPolicy, make_config
from benchmarks.old_policy import BaselinePolicy
from benchmarks.train_speed import (
    PHASES,
    Setting,
    StepBench,
    compare,
    flops_per_trajectory,
    print_results,
)
from tests.benchmarks import needs_pinned_history

ROOT = Path(__file__).resolve().parents[2]


def test_setting_parse_types_defaults_and_errors() -> None:
    s = Setting.parse("preset=paper,batch=64,eta=0.1,compile=on")
    assert (s.preset, s.batch, s.eta, s.compile, s.algo) == ("paper", 64, 0.1, "on", "nail-f")
    t = Setting.parse("batch=8", base=s)
    assert (t.preset, t.batch) == ("paper", 8)
    assert t.label(s) == "batch=8"
    with pytest.raises(ValueError, match="Did you mean 'batch'"):
        Setting.parse("bach=3")
    with pytest.raises(ValueError, match="`impl` must be one of"):
        Setting.parse("impl=fast")
    with pytest.raises(ValueError, match="key=value"):
        Setting.parse("paper")


def test_flops_per_trajectory() -> None:
    P, H, A, V = 32, 31, 7, 9
    paper = make_config("paper", V, A, P + H - 1)
    old, new = flops_per_trajectory(paper, P, H, "old"), flops_per_trajectory(paper, P, H, "new")
    # old forward = 2 FLOPs x (12 C^2 block weights) per token, causal attention, head everywhere
    C, T = 512, P + H - 1
    expected = 2 * 12 * C * C * T + 4 * C * T * (T + 1) // 2 + 2 * T * C * A
    assert old["forward"] == expected
    assert old["total"] == old["rollout"] + 3 * old["forward"]
    assert 0.55 < new["total"] / old["total"] < 0.6  # one layer: most of it is the last layer
    rope = make_config("cpu-rope", V, A, P + H - 1)
    ratio = flops_per_trajectory(rope, P, H, "new")["total"] / flops_per_trajectory(rope, P, H, "old")["total"]
    assert 0.75 < ratio < 0.85


@needs_pinned_history
@pytest.mark.parametrize("preset", ["tiny", "cpu-rope"])
def test_baseline_is_the_same_function(preset: str) -> None:
    # The ratio against impl=old compares two codes for one function, not two models.
    cfg = make_config(preset, 9, 7, 20)
    torch.manual_seed(0)
    new = TransformerPolicy(cfg)
    old = BaselinePolicy(cfg)
    old.load_state_dict(new.state_dict())
    tokens = torch.randint(0, 9, (4, 20), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        torch.testing.assert_close(new(tokens, first=7), old(tokens)[:, 7:], rtol=1e-5, atol=1e-6)
    prompts = tokens[:, :8]
    assert torch.equal(new.generate(prompts, 10), old.generate(prompts, 10))


@pytest.mark.parametrize("extra", ["impl=new", "impl=old", "graphs=on", "algo=opd-f,estimator=exact",
                                   "cache=off,adam=fused,threads=1"])
def test_step_bench_update_reports_every_phase(extra: str) -> None:
    bench = StepBench(Setting.parse(f"preset=tiny,batch=4,m=5,device=cpu,{extra}"))
    before = [p.detach().clone() for p in bench.model.parameters()]
    phases = bench.update()
    assert set(phases) == set(PHASES) | {f"cpu:{p}" for p in PHASES}
    assert all(v >= 0 for v in phases.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, bench.model.parameters()))  # it trained


@needs_pinned_history
def test_compare_prints_ratio(capsys: pytest.CaptureFixture[str]) -> None:
    settings = [Setting.parse(f"preset=tiny,batch=4,m=5,device=cpu,impl={i}") for i in ("old", "new")]
    results = compare(settings, window=0.05, windows=2, warmup=0.0, progress=lambda _: None)
    assert [len(r.windows) for r in results] == [2, 2]
    assert all(r.rate > 0 for r in results)
    print_results(results)
    out = capsys.readouterr().out
    assert "ratio impl=new / preset=tiny" in out and "rollout" in out


@pytest.mark.slow  # a subprocess importing torch afresh: ~10 s, more on a busy machine
def test_perf_gpu_runs_on_cpu_without_gymnasium() -> None:
    # The GPU image may lack gymnasium: run the script as a file with gymnasium unimportable.
    argv = ["gpu_speed.py", "--device", "cpu", "--preset", "tiny", "--batches", "4", "--window", "0.05",
            "--windows", "1", "--warmup", "0", "--precision", "fp32", "--setups", "eager", "graphs"]
    block = (
        "import sys, runpy\n"
        "class Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name.split('.')[0] in ('gymnasium', 'gym'):\n"
        "            raise ImportError('gymnasium blocked for this test')\n"
        "sys.meta_path.insert(0, Block())\n"
        f"sys.argv = {argv!r}\n"
        f"runpy.run_path({str(ROOT / 'benchmarks' / 'gpu_speed.py')!r}, run_name='__main__')\n"
    )
    out = subprocess.run([sys.executable, "-c", block], check=False, capture_output=True, text=True,
                         timeout=300, cwd=ROOT)
    assert out.returncode == 0, out.stderr[-3000:]
    # On CPU the line names the eager fallback: "graphed rollout vs eager (CPU: ...): same chains".
    assert re.search(r"graphed rollout vs eager( \(CPU: [^)]*\))?: same chains", out.stdout), out.stdout[-2000:]
    assert "300,000 trajectories in" in out.stdout
