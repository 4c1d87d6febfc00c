"""Rendering (ansi, rgb_array, GIF) and the `neg demo` command."""

from __future__ import annotations

import re

import gymnasium as gym
import imageio.v3 as iio
import numpy as np
import pytest

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.rendering import GREEN, RED, record_episode_gif, render_ansi, write_gif
from scoreboards import cli
from tests.noisy_expert_gym import ref_sums, split_obs

ANSI_ESCAPE = re.compile(r"\x1b\[[0-9;]*m")


def _play(render_mode, m=6, p=7, seed=0):
    """A fresh episode: the env, its operands and their true running sums."""
    env = gym.make("NoisyModAdd-v0", p=p, m=m, render_mode=render_mode)
    obs, _ = env.reset(seed=seed)
    xs, _ = split_obs(obs, p, m)
    s = ref_sums(xs, p)
    return env, xs, s


def test_ansi_marks_errors():
    env, xs, s = _play("ansi")
    written = [s[0], (s[1] + 1) % 7, s[2]]  # the 2nd token is wrong
    for y in written:
        env.step(y)
    text = env.render()
    assert isinstance(text, str)
    head, chain = ANSI_ESCAPE.sub("", text).rstrip("\n").split("\n")
    assert head.split() == [str(x) for x in xs] + ["="]
    cells = chain.split()
    assert cells == [str(written[0]), f"{written[1]}!", str(written[2]), "_", "_", "_"]
    assert "\x1b[31m" in text  # red for the error
    plain = render_ansi(xs, written, [True, False, True], color=False)
    assert "\x1b" not in plain and plain.split("\n")[1].split() == cells


def _colour_pixels(img, colour):
    return int((img == np.array(colour, np.uint8)).all(-1).sum())


def test_rgb_array_colours_correct_and_wrong_tokens():
    env, _xs, s = _play("rgb_array")
    img0 = env.render()
    assert img0.dtype == np.uint8 and img0.ndim == 3 and img0.shape[2] == 3
    assert _colour_pixels(img0, GREEN) == _colour_pixels(img0, RED) == 0
    env.step(s[0])
    img1 = env.render()
    assert img1.shape == img0.shape
    green1 = _colour_pixels(img1, GREEN)
    assert green1 > 0 and _colour_pixels(img1, RED) == 0
    env.step((s[1] + 1) % 7)  # wrong
    img2 = env.render()
    assert _colour_pixels(img2, RED) > 0 and _colour_pixels(img2, GREEN) > 0
    assert GREEN != RED


def test_gif_helper_writes_readable_gif(tmp_path):
    m = 5
    env = gym.make("NoisyModAdd-v0", m=m, render_mode="rgb_array")
    path = record_episode_gif(env, env.unwrapped.expert.sample, tmp_path / "sub" / "episode.gif",
                              seed=0)
    frames = iio.imread(path, index=None)
    assert frames.shape[0] == m + 1  # the reset frame and one per step
    assert frames.shape[1:3] == env.render().shape[:2]
    assert [x.name for x in (tmp_path / "sub").iterdir()] == ["episode.gif"]  # no temp file left


def test_gif_helper_bad_input(tmp_path):
    with pytest.raises(ValueError, match="at least one frame"):
        write_gif([], tmp_path / "x.gif")
    env = gym.make("NoisyModAdd-v0", m=3, render_mode="ansi")
    with pytest.raises(ValueError, match="rgb_array"):
        record_episode_gif(env, lambda o: 0, tmp_path / "x.gif")


def test_neg_demo_runs(capsys):
    assert cli.main(["demo", "--episodes", "500", "--m", "5"]) == 0
    out = capsys.readouterr().out
    for key in ("fully_clean", "final_correct", "correct_prefix", "expert queries"):
        assert key in out
    queries = int(re.search(r"expert queries\s+(\d+)", out).group(1))
    assert queries == 500 * 5


def test_neg_demo_runs_on_a_state_tracking_task(capsys):
    argv = ["demo", "--env", "NoisyS5-v0", "--env-kw", "alphabet=generators", "--env-kw", "relabel_seed=3",
            "--episodes", "400", "--m", "4", "--law", "mixture"]
    assert cli.main(argv) == 0
    out = capsys.readouterr().out
    assert "NoisyS5-v0" in out and "relabelled" in out
    assert int(re.search(r"expert queries\s+(\d+)", out).group(1)) == 400 * 4
    assert cli.main(["demo", "--env", "NoisyS5-v0", "--env-kw", "alphabet=gens", "--episodes", "10"]) == 2
    assert "Did you mean `generators`" in capsys.readouterr().err
