from __future__ import annotations

import tomllib

import pytest

from scoreboards.sweeps.specs import SpecError, load_spec, parse_spec, shipped_specs
from tests.scoreboards.conftest import TINY_SPEC

CPU_GSM8K = ("gsm8k-small", "gsm8k-warm")  # validated on the fixture's few problems
CPU_SPECS = ("quick", "quick-tune", "horizon", "horizon-modadd", "horizon-modadd-eta05", "period", "eta", "controls",
             "corruption", "stress")


@pytest.mark.parametrize("name", shipped_specs())
def test_shipped_specs_validate_and_state_their_cost(name, monkeypatch, tmp_path):
    # GSM-8K specs build their envs from the project's own small fixture; the paper one
    # needs model weights (a download), so only its structure is validated here.
    from noisy_expert_gym.tasks.gsm8k.data import write_example_data

    monkeypatch.setenv("NEG_GSM8K_DIR", str(write_example_data(tmp_path)))
    spec = load_spec(name, check_envs=name != "gsm8k-paper",
                     overrides=["env.kwargs.subset=3"] if name in CPU_GSM8K else ())
    assert spec.runs(), name
    assert spec.cost and spec.description
    if name in (*CPU_SPECS, *CPU_GSM8K) or name.endswith("-cpu"):  # CPU-sized
        assert spec.gpu_hours == 0 and spec.runs()[0].config["device"] == "cpu"
    else:
        assert spec.gpu_hours > 0
    keys = [r.key for r in spec.runs()]
    assert len(set(keys)) == len(keys)


def test_expected_shipped_specs():
    assert {"quick", "fig2", "fig3", "fig4", "fig5", "fig2-cpu", "fig3-cpu", "fig4-cpu", "fig5-cpu"} <= set(
        shipped_specs())
    fig4 = load_spec("fig4")
    assert fig4.env_grid == {"m": [3, 9, 15, 23, 31], "eta": [0.0, 0.05, 0.1, 0.15, 0.2]}
    fig5 = load_spec("fig5")
    assert [a.params["beta"] for a in fig5.algorithms] == [0.0, 0.25, 0.5, 0.75, 1.0]


def test_expansion_and_keys(tiny_spec_path):
    spec = load_spec(tiny_spec_path)
    runs = spec.runs()
    assert len(runs) == 4 * 2 * 2  # (bc, nail-f, 2 betas) x 2 etas x 2 seeds
    assert spec.labels == ["bc", "nail-f", "nail-mixed(beta=0)", "nail-mixed(beta=1)"]
    r = runs[0]
    assert r.config["preset"] == "tiny" and r.config["eval_every"] == 500 and r.config["budget_trajectories"] == 1000
    assert "checkpoint_dir" not in r.config and "progress" not in r.config
    # The key covers config, seed and code version.
    again = load_spec(tiny_spec_path).runs()
    assert [x.key for x in again] == [x.key for x in runs]
    assert spec.runs(version="other")[0].key != r.key
    edited = load_spec(tiny_spec_path, overrides=["train.lr=0.01"]).runs()
    assert edited[0].key != r.key


def test_overrides(tiny_spec_path):
    spec = load_spec(tiny_spec_path, overrides=["budget.trajectories=2000", "seeds=[3]", "env.grid.eta=[0.1]"])
    assert spec.budget_trajectories == 2000 and spec.seeds == [3] and spec.env_grid == {"eta": [0.1]}


def test_one_error_lists_every_problem(tmp_path):
    raw = tomllib.loads(TINY_SPEC)
    raw["colour"] = "blue"                                   # unknown top-level key
    raw["seeds"] = [0, 0]                                    # repeated
    raw["env"]["id"] = "NoisyModAd-v0"                      # typo
    raw["budget"]["trajectories"] = -5                       # impossible
    raw["eval"]["prompts"] = 0
    raw["train"]["lrr"] = 0.1                                # unknown field
    raw["train"]["seed"] = 3                                 # harness-owned
    raw["train"]["batch_size"] = "big"                       # wrong type
    raw["algorithms"].append({"name": "nail-ff"})            # unknown algorithm
    raw["algorithms"].append({"name": "nail-mixed", "grid": {"beta": [0.5, 2.0]}, "label": "x"})  # beta > 1
    raw["algorithms"].append({"name": "opd-f", "params": {"gamma": 1}})  # unknown parameter
    with pytest.raises(SpecError) as e:
        parse_spec(raw, source="bad.toml")
    text = str(e.value)
    expected = ["`colour`", "repeated", "NoisyModAd-v0", "Did you mean `NoisyModAdd-v0`", "trajectories",
                "[eval] prompts", "`lrr`", "Did you mean `lr`", "`seed` is set by the harness",
                "batch_size", "nail-ff", "beta: must be in [0, 1]", "gamma"]
    for s in expected:
        assert s in text, (s, text)
    assert len(e.value.problems) >= len(expected) - 2  # one line per problem (some share a line)
    assert text.startswith("spec bad.toml has")


def test_invalid_env_kwargs_are_reported(tiny_spec_path):
    with pytest.raises(SpecError, match=r"eta=1.5.*`eta` must be in \[0, 1\]"):
        load_spec(tiny_spec_path, overrides=["env.grid.eta=[0.0, 1.5]"])


def test_unknown_spec_name_suggests():
    with pytest.raises(ValueError, match="Did you mean `quick`"):
        load_spec("quik")
    with pytest.raises(FileNotFoundError):
        load_spec("missing/file.toml")


def test_duplicate_labels_and_empty_algorithms():
    raw = tomllib.loads(TINY_SPEC)
    raw["algorithms"] = [{"name": "bc"}, {"name": "bc"}]
    with pytest.raises(SpecError, match="both labelled `bc`"):
        parse_spec(raw)
    raw["algorithms"] = []
    with pytest.raises(SpecError, match="at least one algorithm"):
        parse_spec(raw)


def test_run_identity_is_the_trainers(tiny_spec_path):
    """One list of the fields that do not change what is learned: the key ignores them;
    stop_at (where a sweep's run stops) and everything else change it."""
    from scoreboards.sweeps.spec_model import NOT_IDENTITY, run_identity

    assert {"device", "checkpoint_every", "tensorboard_dir", "data_dir"} <= NOT_IDENTITY
    keys = [r.key for r in load_spec(tiny_spec_path).runs()]
    same = load_spec(tiny_spec_path, overrides=['train.device="cuda"', "train.checkpoint_every=3",
                                                'train.tensorboard_dir="tb"']).runs()
    assert [r.key for r in same] == keys
    assert same[0].config["device"] == "cuda" and same[0].config["checkpoint_every"] == 3  # still passed on
    assert "stop_at" in run_identity(same[0].config)
    assert load_spec(tiny_spec_path, overrides=["eval.stop_at=0.9"]).runs()[0].key != keys[0]


def test_numbers_keep_the_type_they_were_written_with(tiny_spec_path):
    run = load_spec(tiny_spec_path, overrides=["train.weight_decay=0", "train.lr=1"]).runs()[0]
    assert run.config["weight_decay"] == 0 and isinstance(run.config["weight_decay"], int)
    with pytest.raises(SpecError, match=r"\[train\] lr: input should be greater than 0"):
        load_spec(tiny_spec_path, overrides=["train.lr=0"])
    with pytest.raises(SpecError, match=r"\[train\] batch_size: input should be a valid integer"):
        load_spec(tiny_spec_path, overrides=['train.batch_size="128"'])  # TOML types are kept


def test_gsm8k_paper_is_the_authors_recipe():
    # The values issue 16 asks for, read back through the loader (no env built: it names weights).
    from agents.hf_policy import PAPER_LORA
    from scoreboards.sweeps.specs import needs_download

    spec = load_spec("gsm8k-paper", check_envs=False)
    runs = spec.runs()
    assert spec.seeds == [42, 43, 44] and spec.gpu_hours >= 100 and "GPU-hours" in spec.cost
    assert len(runs) == 4 * 2 * 3 and needs_download(spec)
    c = runs[0].config
    kw = c["env_kwargs"]
    assert runs[0].env_id == "NoisyGSM8K-v1"
    assert kw["stop_on"] == "turn" and kw["answer_format"] == "boxed" and kw["max_new_tokens"] == 1024
    assert kw["dataset"] == "tinygsm" and kw["law"] == "temperature" and kw["expert"] == "hf:google/gemma-3-1b-it"
    assert sorted({r.env_kwargs["t"] for r in runs}) == [1.0, 4.0]
    assert sorted({r.params["beta"] for r in runs}) == [0.0, 0.25, 0.5, 1.0]
    assert c["model"]["lora"] == PAPER_LORA and c["preset"] == "hf:google/gemma-3-270m-it"
    assert c["batch_size"] == 64 and c["batch_size"] % c["grad_accum"] == 0
    assert (c["lr"], c["weight_decay"], c["schedule"], c["min_lr_ratio"], c["grad_clip"]) == (
        1e-4, 0.01, "cosine", 0.01, 1.0)
    # 10% warm-up of one epoch over the 400k prompts, 64 per update.
    assert c["budget_trajectories"] == kw["limit"] == 400_000 and c["prompt_order"] == "epoch"
    assert c["warmup_updates"] == round(0.1 * c["budget_trajectories"] / c["batch_size"])
    assert c["eval_mode"] == "all" and c["eval_sampled"] is False
    assert c["eval_env_kwargs"] == {"dataset": "gsm8k", "split": "test"}
    assert c["val_env_kwargs"] == {"answer_format": "####", "strip_annotations": False}


def test_dry_run_never_builds_a_spec_that_names_weights(monkeypatch, capsys):
    # Building gsm8k-paper's envs would load the teacher from the hub; a dry run must not try.
    import noisy_expert_gym
    from scoreboards.cli import main

    def refuse(*a, **k):
        raise AssertionError("a dry run built an env")

    monkeypatch.setattr(noisy_expert_gym, "make_problem", refuse)
    assert main(["bench", "run", "gsm8k-paper", "--dry-run"]) == 0
    assert "24 runs" in capsys.readouterr().out
    # A CPU spec is still built (and refused here).
    assert main(["bench", "run", "quick", "--dry-run"]) != 0
    assert "a dry run built an env" in capsys.readouterr().err


def test_every_name_in_a_spec_is_checked_before_anything_runs(tmp_path, capsys):
    """Issue 27, case 4: a typo in a spec's preset (`cpu-rop`) passed validation and `--dry-run`, then
    every run failed with the same message. Every name a spec holds (preset, algorithm, env id,
    metric; the preset also per algorithm) is checked up front, each with the valid values."""
    raw = tomllib.loads(TINY_SPEC)
    raw["train"]["preset"] = "cpu-rop"
    raw["algorithms"][0]["train"] = {"preset": "tinny"}
    raw["algorithms"][1]["name"] = "nail-ff"
    raw["env"]["id"] = "NoisyModAd-v0"
    raw["report"] = {"metric": "greedy_ful_exact"}
    with pytest.raises(SpecError) as e:
        parse_spec(raw, source="bad.toml")
    text = str(e.value)
    for s in ("unknown preset `cpu-rop`", "Did you mean `cpu-rope`", "unknown preset `tinny`", "hf:<",
              "unknown algorithm `nail-ff`", "Did you mean `nail-f`", "NoisyModAd-v0", "greedy_ful_exact",
              "'greedy_full_exact'"):
        assert s in text, (s, text)
    # The command line: the dry run refuses it too (exit 2, one line), before listing any run.
    from scoreboards.cli import main

    path = tmp_path / "tiny.toml"
    path.write_text(TINY_SPEC)
    assert main(["bench", "run", str(path), "--set", 'train.preset="cpu-rop"', "--dry-run",
                 "--db", str(tmp_path / "r.sqlite")]) == 2
    err = capsys.readouterr().err
    assert "unknown preset `cpu-rop`" in err and err.count("\n") == 1, err


def test_a_train_config_refuses_an_unknown_preset():
    from agents.config import TrainConfig
    from noisy_expert_gym.declarations import ConfigError

    with pytest.raises(ConfigError, match="unknown preset `cpu-rop`.*Did you mean `cpu-rope`"):
        TrainConfig.build(preset="cpu-rop")
    with pytest.raises(ConfigError, match="unknown policy kind `hx`"):
        TrainConfig.build(preset="hx:gpt2")
    assert TrainConfig.build(preset="hf:some/model").preset == "hf:some/model"  # resolved when built
