"""Hidden-rule boards: the harness draws each run's task instance from its secret, which never
reaches the worker; knowing the family's rule is worth nothing there, learning from the expert is."""

from __future__ import annotations

import pickle
import re
import stat
from pathlib import Path

import numpy as np
import pytest

from scoreboards.leaderboard import hidden
from scoreboards.leaderboard.boards import load_board
from scoreboards.leaderboard.entries import board_secret, submit
from scoreboards.leaderboard.render import render_board
from scoreboards.leaderboard.submission import run_submission, unsandboxed
from scoreboards.store import ResultStore
from tests.scoreboards.leaderboard.board_files import HIDDEN_M3, board_toml
from tests.scoreboards.leaderboard.conftest import TEST_SECRET

SUBS = "tests.scoreboards.subs"

HIDDEN = board_toml(description="test hidden board", env_id="NoisyAutomaton-v0", kwargs=HIDDEN_M3,
                    env=['hidden = ["relabel_seed"]'], trajectories=2048, queries=12288, eval=['curve_points = 2'],
                    timeout_s=120, tail='\n[[baselines]]\nalgo = "nail-f"\n')


def _board(tmp_path, text=HIDDEN, name="hidden-test"):
    p = tmp_path / f"{name}.toml"
    p.write_text(text)
    return load_board(p)


# ----- the secret and what derives from it ------------------------------------------------------
def test_secret_file_is_made_once_private_and_never_printed(tmp_path, monkeypatch):
    monkeypatch.delenv(hidden.SECRET_FILE_ENV, raising=False)
    monkeypatch.delenv(hidden.SECRET_ENV, raising=False)
    with pytest.raises(FileNotFoundError, match="no board secret"):
        hidden.load_secret(tmp_path, create=False)
    s = hidden.load_secret(tmp_path)
    path = tmp_path / hidden.SECRET_FILE
    assert len(s) == 32 and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert hidden.load_secret(tmp_path) == s  # created once
    assert hidden.secret_id(s) != s.hex()[:12] and s.hex() not in repr(hidden.instance(
        _board(tmp_path), 0, s))
    path.write_text("not hex")
    with pytest.raises(ValueError, match="at least 32 hex characters"):
        hidden.load_secret(tmp_path)


def test_a_secret_in_the_environment_is_refused(tmp_path):
    """Issue 23, finding 1: `$NEG_BOARD_SECRET` was popped from os.environ, but a process's
    /proc/PID/environ keeps the environment it started with, so the long-lived harness held the
    secret there for its whole life (readable through a link the harness followed). The secret is
    read from a private file only; a secret in the environment is refused, not used."""
    import subprocess
    import sys

    code = ("import sys; from scoreboards.leaderboard.hidden import load_secret\n"
            "try:\n    load_secret(sys.argv[1])\nexcept ValueError as e:\n    sys.exit(f'refused: {e}')\n"
            "print(open('/proc/self/environ', 'rb').read())")
    env = {"PATH": "/usr/bin:/bin", hidden.SECRET_ENV: TEST_SECRET}
    r = subprocess.run([sys.executable, "-c", code, str(tmp_path)], env=env, capture_output=True, text=True,
                       check=False)
    assert r.returncode == 1 and "refused:" in r.stderr and TEST_SECRET not in r.stdout + r.stderr, r
    assert "never in the environment" in r.stderr and hidden.SECRET_FILE_ENV in r.stderr, r.stderr
    assert not (tmp_path / hidden.SECRET_FILE).exists()


def test_a_secret_file_others_can_read_is_refused(tmp_path, monkeypatch):
    path = tmp_path / "secret"
    path.write_text(TEST_SECRET + "\n")
    path.chmod(0o644)
    monkeypatch.setenv(hidden.SECRET_FILE_ENV, str(path))
    with pytest.raises(ValueError, match="chmod 600"):
        hidden.load_secret(tmp_path)
    path.chmod(0o600)
    assert hidden.load_secret(tmp_path) == bytes.fromhex(TEST_SECRET)


def test_instances_derive_from_secret_board_and_seed(tmp_path, secret):
    board = _board(tmp_path)
    a, a2, b = (hidden.instance(board, s, secret) for s in (0, 0, 1))
    other = hidden.instance(board, 0, bytes(32))
    assert a.hidden == a2.hidden and set(a.hidden) == {"relabel_seed"}
    assert a.hidden != b.hidden and a.hidden != other.hidden  # per seed, per secret
    assert a.env_kwargs == {**board.env_kwargs, **a.hidden}
    assert a.expert_seed != other.expert_seed and a.eval_seeds != other.eval_seeds
    assert str(a.hidden["relabel_seed"]) not in repr(a)
    # A changed protocol draws fresh instances.
    changed = _board(tmp_path, HIDDEN.replace("trajectories = 2048", "trajectories = 2000"), "changed")
    assert hidden.instance(changed, 0, secret).hidden != a.hidden
    # The commitment binds the values and the board; it does not reveal the secret.
    prov = hidden.entry_provenance(board, secret)
    assert prov["secret_id"] == hidden.secret_id(secret) and len(prov["seed_commitment"]) == 64
    assert hidden.entry_provenance(board, bytes(32))["seed_commitment"] != prov["seed_commitment"]
    with pytest.raises(ValueError, match="needs its secret"):
        hidden.instance(board, 0, None)
    # Open boards need no secret and keep their public streams.
    open_ = _board(tmp_path, HIDDEN.replace('hidden = ["relabel_seed"]', ""), "open")
    assert open_.rule == "open" and hidden.instance(open_, 0, None).hidden == {}


def test_board_file_checks_what_it_hides(tmp_path):
    bad = {
        'hidden = ["relabel_seed", "automaton_seed"]': "applies to automaton='random' only",
        'hidden = ["automaton_sed"]': "automaton_seed",
        'hidden = ["relabel_seed"]\naccess = "samples"': "[env] access",
    }
    for text, want in bad.items():
        with pytest.raises(ValueError) as e:
            _board(tmp_path, HIDDEN.replace('hidden = ["relabel_seed"]', text), "bad")
        assert want in str(e.value), str(e.value)
    both = HIDDEN.replace("law = \"absorbing\" }", "law = \"absorbing\", relabel_seed = 3 }")
    with pytest.raises(ValueError, match="both hidden and given in kwargs"):
        _board(tmp_path, both, "bad")
    modadd = (HIDDEN.replace('id = "NoisyAutomaton-v0"', 'id = "NoisyModAdd-v0"')
              .replace('automaton = "modadd", n = 7', "p = 7").replace('hidden = ["relabel_seed"]', ""))
    with pytest.raises(ValueError, match="declare the access mode as `\\[env\\] access`"):
        _board(tmp_path, modadd.replace('law = "absorbing" }', 'law = "absorbing", access = "sample" }'), "bad")
    with pytest.raises(ValueError, match="`corruption_seed` apply to the corruption laws"):
        _board(tmp_path, modadd.replace("[budget]", 'hidden = ["corruption_seed"]\n\n[budget]'), "bad")
    corrupted = modadd.replace('law = "absorbing" }', 'law = "corrupted" }')
    assert _board(tmp_path, corrupted.replace("[budget]", 'hidden = ["corruption_seed"]\n\n[budget]'),
                  "ok").hidden == ["corruption_seed"]


# ----- what a submission can and cannot do there --------------------------------------------------
#: The adding cheat's bounds on a hidden instance with n states, m steps and N evaluation prompts:
#: full chain <= max(0.005, 3 / n^m) (chance is 1/n^m on average over instances: 0.18 of 3,072 prompts
#: at n^m = 16,807, 0.0041 at the per-step board's 3^5; but a fixed cheat agrees with some instances' first steps by coincidence, as below: 7 of
#: 3,072 full chains on modadd-m5-eta0.2-hidden seed 0 under the test secret and the v3 protocol),
#: final answer <= 1.5 / n (chance 1/n, 11 standard errors below the bound at N = 3,072), correct
#: greedy prefix <= 4 / (n - 1). Chance for the prefix is sum_t n^-t < 1 / (n - 1) on average over
#: instances, but a fixed cheat against one instance agrees with its first transition on k of the
#: n symbols by coincidence, k ~ Poisson(1) (a random permutation's fixed points): the prefix is
#: about k / n + O(k / n^2), so the bound allows k <= 3 (P(k >= 4) < 2%) while the cheat's 5.0 on
#: the open board (the whole chain) stays far above it. (With the bound 2 / (n - 1) an instance with
#: k = 2 failed it: 0.353 on automaton-n7-m5-eta0.2-hidden, seed 1.)
#: Every shipped hidden board that runs on a CPU: each attack below is tried on each.
CPU_HIDDEN = ["modadd-m5-eta0.2-hidden", "automaton-n7-m5-eta0.2-hidden", "perstep-n3-k6-m5-eta0.5-hidden"]


def _states(board) -> int:
    """n, the number of states (the answers a position can take) of a chain board's task."""
    return board.env_kwargs["n"]


def test_cpu_hidden_lists_every_shipped_cpu_hidden_board():
    from scoreboards.leaderboard.boards import BOARD_DIR

    shipped = {p.stem for p in BOARD_DIR.glob("*.toml")}
    cpu_hidden = {name for name in shipped if load_board(name).hidden and load_board(name).device == "cpu"}
    assert cpu_hidden == set(CPU_HIDDEN)


def _chance_bounds(n: int, m: int) -> dict[str, float]:
    return {"greedy_full_exact": max(0.005, 3 / n**m), "greedy_final_exact": 1.5 / n,
            "greedy_correct_prefix_len": 4 / (n - 1)}


@pytest.mark.parametrize("cheat", ["AddingCheat", "CleanExpertCheat"])
@pytest.mark.parametrize("name", CPU_HIDDEN)
def test_rule_cheats_score_chance_on_hidden_boards_and_1_on_the_open_one(name, cheat, secret):
    """The 12-line cheat of issue 13, and one that builds the clean expert from the env package the
    sandbox shows: perfect where the rule is public, chance where it is hidden."""
    open_score = run_submission(load_board("modadd-m5-eta0.2"), f"{SUBS}:{cheat}", seed=0)
    assert open_score.metrics["greedy_full_exact"] == 1.0 and open_score.trajectories == 0
    board = load_board(name)
    n, m = _states(board), board.env_kwargs["m"]
    for seed in board.train_seeds:
        out = run_submission(board, f"{SUBS}:{cheat}", seed=seed, secret=secret)
        for metric, bound in _chance_bounds(n, m).items():
            assert out.metrics[metric] <= bound, (seed, metric, out.metrics)


def test_hidden_board_entry_records_its_instances(tmp_path, secret, db_path):
    board = _board(tmp_path)
    with ResultStore(db_path) as st:
        assert board_secret(board, st) == secret
        e = submit(board, f"{SUBS}:TableLearner", st, log=lambda m: None)
        assert e["rule"] == "hidden" and e["secret_id"] == hidden.secret_id(secret)
        assert e["seed_commitment"] == hidden.entry_provenance(board, secret)["seed_commitment"]
        # TableLearner learns from the expert: m = 3, its table covers the held-out prompts.
        assert e["score"] > 0.9
        (curve,) = e["curves"]
        assert [p["trajectories"] for p in curve["points"]][-1] == e["per_seed"][0]["trajectories"]
        assert len(curve["points"]) == 2 and curve["points"][-1]["greedy_full_exact"] == e["score"]
        md = render_board(board, st)
    assert "hidden: relabel_seed drawn by the harness" in md and "Open practice board" not in md
    assert "Open practice board" in render_board(load_board("modadd-m5-eta0.2"), ResultStore(db_path))


def test_secret_and_instance_never_reach_the_worker(tmp_path, secret, monkeypatch, db_path):
    """Everything the worker sees -- its spec, its environment, every message over the pipe (answers,
    prompts, the harness's act requests) -- holds neither the secret nor anything drawn from it:
    the hidden seeds, the harness's stream seeds, the transition table, the relabelling."""
    from noisy_expert_gym.tasks.automata import make_automaton, relabelling

    text = (HIDDEN.replace('automaton = "modadd", n = 7, m = 3', "n = 11, k = 11, m = 3")
            .replace('hidden = ["relabel_seed"]', 'hidden = ["automaton_seed", "relabel_seed"]'))
    board = _board(tmp_path, text, "spied")
    out = tmp_path / "spy.pkl"
    monkeypatch.setenv("NEG_TEST_SPY_OUT", str(out))
    # Unsandboxed (the spy writes what it saw to the host): the harness alone must keep the secret
    # from it, environment included; the sandbox only adds to that.
    with ResultStore(db_path) as st, unsandboxed():
        e = submit(board, f"{SUBS}:Spy", st, log=lambda m: None)
    seen = pickle.loads(out.read_bytes())
    run = hidden.instance(board, 0, secret)
    auto = make_automaton(**{k: v for k, v in run.env_kwargs.items() if k in ("n", "k", "automaton_seed",
                                                                            "relabel_seed")})
    sigma, tau = relabelling(11, 11, run.hidden["relabel_seed"])
    acts = [msg for msg in seen["messages"] if msg["op"] == "act"]
    assert acts, "the harness measured the learning curve during training"
    assert e["score"] > 0.5  # the spy learned too: a real run, not an empty one

    numbers = [*run.hidden.values(), run.expert_seed, *run.prompt_seed, *(s[1] for s in run.eval_seeds)]
    blobs = [pickle.dumps(msg) for msg in seen["messages"]] + [pickle.dumps(seen["spec"])]
    text_seen = repr(seen["spec"]) + repr(seen["environ"]) + "".join(repr(m) for m in seen["messages"])
    for blob in blobs:
        assert secret not in blob and secret.hex().encode() not in blob
        for x in numbers:
            assert x.to_bytes(8, "little") not in blob and x.to_bytes(8, "big") not in blob
        for arr in (auto.table, auto.table.T.copy(), sigma, tau, np.argsort(sigma), np.argsort(tau)):
            assert np.ascontiguousarray(arr, dtype=np.int64).tobytes() not in blob
    assert TEST_SECRET not in text_seen and secret.hex() not in text_seen
    assert not any(re.search(rf"\b{x}\b", text_seen) for x in numbers)
    assert hidden.SECRET_ENV not in seen["environ"]
    spec = seen["spec"]
    assert spec["env_kwargs"] == board.env_kwargs and spec["rule"] == "hidden"
    assert not {"automaton_seed", "relabel_seed"} & set(spec["env_kwargs"])
    assert set(spec) == {"board", "env_id", "env_kwargs", "seed", "rule", "hidden", "access", "vocab_size",
                         "num_actions", "horizon", "prompt_len", "obs_len", "pad_token", "budget_trajectories",
                         "budget_queries"}


def test_nail_f_learns_from_the_expert_on_a_hidden_board(tmp_path, secret):
    """Cheap: 2,048 trajectories on m = 3 already put the greedy chain's correct prefix far above
    chance (sum_t 7^-t < 0.17 positions)."""
    board = _board(tmp_path)
    train = {"preset": "cpu-rope", "batch_size": 64, "lr": 3e-3, "device": "cpu"}
    out = run_submission(board, "scoreboards.leaderboard.builtin:BuiltinSubmission", 0, secret=secret,
                         extra_spec={"algo": "nail-f", "algo_params": {}, "train": train})
    assert out.trajectories == 2048
    assert out.metrics["greedy_correct_prefix_len"] > 1.0, out.metrics


@pytest.mark.slow
def test_nail_f_beats_chance_on_the_shipped_cpu_board(secret):
    board = load_board("modadd-m5-eta0.2-hidden")
    base = next(b for b in board.baselines if b["algo"] == "nail-f")
    out = run_submission(board, "scoreboards.leaderboard.builtin:BuiltinSubmission", 0, secret=secret,
                         extra_spec={"algo": "nail-f", "algo_params": {}, "train": base["train"]})
    n, m = 7, board.env_kwargs["m"]
    assert out.metrics["greedy_full_exact"] > 100 / n**m, out.metrics
    assert out.metrics["greedy_final_exact"] > 2 / n, out.metrics


@pytest.mark.parametrize("name", CPU_HIDDEN)
def test_the_test_set_cannot_be_memorised(name, secret, tmp_path):
    """Issue 23, finding 2: the learning-curve evaluations showed `act` the scored prompts mid-training,
    and on these boards (7^5 = 16,807 prompts) a submission could then draw them as training prompts
    and label them: 0.997 / 0.996 with no rule learned. The scored prompts are never shown before
    `train` returns and never issued for training: the memoriser scores at chance (toy budget)."""
    from scoreboards.leaderboard.boards import BOARD_DIR

    text = (BOARD_DIR / f"{name}.toml").read_text()
    for key, toy in [("trajectories", 4000), ("queries", 40000), ("prompts", 256), ("curve_points", 2)]:
        text, count = re.subn(rf"(?m)^{key} = \d+", f"{key} = {toy}", text)
        assert count == 1, key
    text = text.replace("train_seeds = [0, 1, 2]", "train_seeds = [0]")
    board = _board(tmp_path, text, name)
    attack = Path(__file__).parent / "submission" / "attacks" / "memorises.py"
    out = run_submission(board, f"{attack}:Memorises", seed=0, secret=secret,
                         extra_spec={"curve_points": board.curve_points})
    n, m = _states(board), board.env_kwargs["m"]
    assert out.metrics["greedy_full_exact"] <= 10 / n**m, out.metrics
    assert out.metrics["greedy_final_exact"] <= 1.5 / n, out.metrics
