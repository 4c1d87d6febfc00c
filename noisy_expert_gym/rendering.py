"""Rendering helpers shared by the envs: ANSI text, RGB frames and GIFs.

Frames use a built-in 3x5 bitmap font so no font files are needed. Colours:
operands grey, correct chain tokens green, errors red, not-yet-written cells pale.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np

from noisy_expert_gym.utils import atomic_path

_FONT = {  # 3x5 glyphs, rows top to bottom, '#' = ink
    "0": ["###", "#.#", "#.#", "#.#", "###"],
    "1": [".#.", "##.", ".#.", ".#.", "###"],
    "2": ["###", "..#", "###", "#..", "###"],
    "3": ["###", "..#", "###", "..#", "###"],
    "4": ["#.#", "#.#", "###", "..#", "..#"],
    "5": ["###", "#..", "###", "..#", "###"],
    "6": ["###", "#..", "###", "#.#", "###"],
    "7": ["###", "..#", "..#", "..#", "..#"],
    "8": ["###", "#.#", "###", "#.#", "###"],
    "9": ["###", "#.#", "###", "..#", "###"],
    "=": ["...", "###", "...", "###", "..."],
    " ": ["...", "...", "...", "...", "..."],
}
_GLYPHS = {k: np.array([[c == "#" for c in row] for row in v]) for k, v in _FONT.items()}

GREY = (200, 200, 200)
GREEN = (120, 210, 120)
RED = (235, 110, 110)
PALE = (245, 245, 245)
INK = (20, 20, 20)
BACKGROUND = (255, 255, 255)

_RED_ANSI, _GREEN_ANSI, _RESET_ANSI = "\x1b[31m", "\x1b[32m", "\x1b[0m"


def render_ansi(prompt: Sequence[int], chain: Sequence[int], correct: Sequence[bool],
                color: bool = True) -> str:
    """Two lines: the prompt, then the chain with errors marked (red and `!`)."""
    head = " ".join(str(int(x)) for x in prompt) + " ="
    cells = []
    for y, ok in zip(chain, correct):
        if ok:
            cells.append(f"{_GREEN_ANSI}{int(y)}{_RESET_ANSI}" if color else str(int(y)))
        else:
            cells.append(f"{_RED_ANSI}{int(y)}!{_RESET_ANSI}" if color else f"{int(y)}!")
    cells += ["_"] * (len(prompt) - len(chain))
    return f"{head}\n{' '.join(cells)}\n"


def _draw_text(img: np.ndarray, text: str, y0: int, x0: int, scale: int) -> None:
    for k, ch in enumerate(text):
        glyph = np.kron(_GLYPHS.get(ch, _GLYPHS[" "]), np.ones((scale, scale), dtype=bool))
        ys, xs = y0, x0 + k * 4 * scale
        img[ys : ys + glyph.shape[0], xs : xs + glyph.shape[1]][glyph] = INK


def render_rgb(prompt: Sequence[int], chain: Sequence[int], correct: Sequence[bool],
               num_digits: int = 1, scale: int = 3) -> np.ndarray:
    """A uint8 image (H, W, 3): operands on the top row, the chain below, coloured cells.

    ``num_digits`` is the widest token id (in digits) a cell must hold; ids are
    right-aligned. Multi-digit cells get one more unit of colour on either side, so
    neighbouring ids (state ids of S5 run to 119) never read as one number.
    """
    m = len(prompt)
    gutter = 0 if num_digits == 1 else 1
    cell_w = (4 * num_digits + 1 + 2 * gutter) * scale
    cell_h = 7 * scale
    cols = m + 1
    img = np.empty((2 * cell_h + 3 * scale, cols * cell_w + 2 * scale, 3), dtype=np.uint8)
    img[:] = BACKGROUND

    def cell(row: int, col: int, colour: tuple[int, int, int], text: str) -> None:
        y0 = scale + row * (cell_h + scale)
        x0 = scale + col * cell_w
        img[y0 : y0 + cell_h, x0 : x0 + cell_w - scale] = colour
        _draw_text(img, text.rjust(num_digits), y0 + scale, x0 + (1 + gutter) * scale, scale)

    for i, x in enumerate(prompt):
        cell(0, i, GREY, str(int(x)))
    cell(0, m, GREY, "=")
    for i in range(m):
        if i < len(chain):
            cell(1, i + 1, GREEN if correct[i] else RED, str(int(chain[i])))
        else:
            cell(1, i + 1, PALE, "")
    return img


def write_gif(frames: Sequence[np.ndarray], path: str | os.PathLike, fps: float = 4.0) -> str:
    """Write frames to a GIF atomically (a temp file renamed into place); returns the path."""
    import imageio.v3 as iio

    if len(frames) == 0:
        raise ValueError("write_gif needs at least one frame")
    with atomic_path(path, suffix=".gif") as tmp:
        iio.imwrite(tmp, np.stack(list(frames)), extension=".gif", duration=1000.0 / fps, loop=0)
        os.chmod(tmp, 0o644)  # a GIF is meant to be shared
    return path


def record_episode_gif(env, policy, path: str | os.PathLike, seed: int | None = None,
                       fps: float = 4.0) -> str:
    """Roll out `policy(obs) -> action` in an `rgb_array` env and write the episode as a GIF."""
    if getattr(env, "render_mode", None) != "rgb_array":
        raise ValueError("record_episode_gif needs an env made with render_mode='rgb_array'")
    obs, _ = env.reset(seed=seed)
    frames = [env.render()]
    done = False
    while not done:
        obs, _, term, trunc, _ = env.step(policy(obs))
        frames.append(env.render())
        done = term or trunc
    return write_gif(frames, path, fps=fps)
