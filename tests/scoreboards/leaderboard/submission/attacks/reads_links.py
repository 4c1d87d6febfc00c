"""Attack (a directory submission): its folder also holds `secret -> the harness's secret file`,
`env -> /proc/self/environ` and `cwd_secret -> /proc/self/cwd/results/board-secret`, links the
test makes. A harness that copies the folder by following links hands the worker the secret
and the harness's environment; this class reads whatever its folder holds and says so."""

from pathlib import Path

import numpy as np


class ReadsLinks:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        here = Path(__file__).parent
        got = {}
        for name in ("secret", "env", "cwd_secret"):
            try:
                got[name] = (here / name).read_bytes().decode(errors="replace")
            except OSError as e:
                got[name] = f"unreadable ({e.strerror})"
        raise RuntimeError(f"read {got!r}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
