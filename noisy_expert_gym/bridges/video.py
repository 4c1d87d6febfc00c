"""Videos of episodes: ``render_mode="rgb_array"`` frames to MP4 (Gymnasium's ``RecordVideo``) or GIF.

MP4 goes through ``gymnasium.wrappers.RecordVideo``, which needs ``moviepy``
(extra ``video``); GIF goes through the project's own helper
(:func:`noisy_expert_gym.rendering.write_gif`, imageio only) and always works.
``fmt="auto"`` picks MP4 when moviepy is installed, else GIF.

What acts is any ``obs -> action`` callable; a learner's policy becomes one through
``agents.record.GreedyActor`` (the env layer knows no learner).
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
import numpy as np

from noisy_expert_gym.rendering import record_episode_gif
from noisy_expert_gym.utils import did_you_mean, temporary_beside

FORMATS = ("auto", "gif", "mp4")


def has_moviepy() -> bool:
    try:
        import moviepy  # noqa: F401
    except ImportError:
        return False
    return True


def resolve_format(fmt: str) -> str:
    """``gif`` or ``mp4`` for a requested format; ``mp4`` without moviepy raises, naming the extra."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown video format `{fmt}`; valid: {', '.join(FORMATS)}.{did_you_mean(fmt, FORMATS)}")
    if fmt == "auto":
        return "mp4" if has_moviepy() else "gif"
    if fmt == "mp4" and not has_moviepy():
        raise ImportError("MP4 videos (Gymnasium's RecordVideo) need `moviepy`, which is not installed: "
                          "pip install 'noisy-expert-gym[video]' (or use the GIF format)")
    return fmt


def record_episodes(env_id: str, act: Callable[[np.ndarray], Any], out_dir: str | os.PathLike,
                    env_kwargs: dict[str, Any] | None = None, episodes: int = 3, seed: int = 0,
                    fmt: str = "auto", fps: float | None = None, name_prefix: str = "episode") -> list[str]:
    """Record `episodes` episodes of ``act`` in ``gym.make(env_id, render_mode="rgb_array")``.

    Episode i is reset with ``seed + i``. Returns the written files, in order.
    """
    import noisy_expert_gym  # noqa: F401  (registers the envs)

    if episodes < 1:
        raise ValueError(f"`episodes` must be >= 1, got {episodes}")
    if env_id not in gym.registry:
        raise ValueError(f"unknown env id `{env_id}`.{did_you_mean(env_id, gym.registry)}")
    kind = resolve_format(fmt)
    out_dir = os.fspath(out_dir)
    os.makedirs(out_dir, exist_ok=True)
    env = gym.make(env_id, render_mode="rgb_array", **(env_kwargs or {}))
    fps = fps or env.metadata.get("render_fps", 4)
    paths = []
    if kind == "gif":
        for i in range(episodes):
            paths.append(record_episode_gif(env, act, os.path.join(out_dir, f"{name_prefix}-{i}.gif"),
                                            seed=seed + i, fps=fps))
        env.close()
        return paths
    from gymnasium.wrappers import RecordVideo

    # RecordVideo writes into a temporary folder; each finished video is renamed into out_dir, so a
    # killed recording leaves no half-written MP4 there (and its folder goes at the next recording).
    paths = []
    with temporary_beside(os.path.join(out_dir, f"{name_prefix}-videos")) as tmp:
        env = RecordVideo(env, video_folder=str(tmp), name_prefix=name_prefix, episode_trigger=lambda e: True,
                          fps=round(fps))
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            done = False
            while not done:
                obs, _, term, trunc, _ = env.step(act(obs))
                done = term or trunc
        env.close()  # writes the last video
        for f in sorted(os.listdir(tmp)):
            if f.endswith(".mp4"):
                os.replace(tmp / f, os.path.join(out_dir, f))
                paths.append(os.path.join(out_dir, f))
    return paths


__all__ = ["FORMATS", "has_moviepy", "record_episodes", "resolve_format"]
