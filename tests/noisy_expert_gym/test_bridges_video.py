"""Videos: episodes of any ``obs -> action`` callable to GIF (always) or MP4 (moviepy).

(A learner's greedy episodes and `neg record` are tested with the learners: tests/agents/test_record.py.)
"""

from __future__ import annotations

import imageio.v3 as iio
import pytest

import noisy_expert_gym  # noqa: F401
from noisy_expert_gym.bridges import video


def test_record_gif_episodes(tmp_path):
    paths = video.record_episodes("NoisyModAdd-m3-v0", lambda obs: 1, tmp_path, episodes=2, seed=0, fmt="gif")
    assert [p.rsplit("/", 1)[1] for p in paths] == ["episode-0.gif", "episode-1.gif"]
    frames = iio.imread(paths[0])
    assert frames.shape[0] == 4 and frames.shape[-1] in (3, 4)  # reset + 3 steps


def test_formats_and_missing_moviepy(monkeypatch):
    monkeypatch.setattr(video, "has_moviepy", lambda: False)
    assert video.resolve_format("auto") == "gif"
    with pytest.raises(ImportError, match=r"noisy-expert-gym\[video\]"):
        video.resolve_format("mp4")
    with pytest.raises(ValueError, match="Did you mean `gif`"):
        video.resolve_format("giff")


def test_record_mp4_with_record_video(tmp_path):
    pytest.importorskip("moviepy")
    paths = video.record_episodes("NoisyModAdd-m3-v0", lambda obs: 0, tmp_path, episodes=2, fmt="mp4")
    assert len(paths) == 2 and all(p.endswith(".mp4") for p in paths)
