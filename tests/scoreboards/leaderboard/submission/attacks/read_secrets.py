"""Attack: read the board file (its evaluation seeds), a secret file of the harness, the shipped
boards, any board-like TOML in view, and the harness's environment."""

import os
import sys
from pathlib import Path

import numpy as np


class ReadSecrets:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        read = []
        for path in (self.spec["board_file"], self.spec["secret_file"], "/proc/1/environ"):
            try:
                text = Path(path).read_text(errors="replace")
            except OSError:
                continue
            if "seeds" in text or "secret" in text.lower() or "NEG_" in text:
                read.append(path)
        import scoreboards

        shipped = Path(scoreboards.__file__).parent
        read += [str(p) for p in shipped.glob("leaderboard/shipped_boards/*.toml")]
        read += [str(p) for p in shipped.glob("sweeps/shipped_specs/*.toml")]
        for root, dirs, files in os.walk("/" if self.spec.get("walk", True) else "/nonexistent"):
            if root in ("/usr", "/proc", "/sys", "/dev") or root.startswith((sys.prefix, sys.base_prefix)):
                dirs[:] = []  # the system and the Python installation: public, read-only
                continue
            for f in files:
                if f.endswith(".toml"):
                    try:
                        if "[eval]" in Path(root, f).read_text(errors="replace"):
                            read.append(os.path.join(root, f))
                    except OSError:
                        pass
        read += [f"env {k}" for k, v in os.environ.items() if "secret" in (k + v).lower()]
        raise RuntimeError(f"read {read}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
