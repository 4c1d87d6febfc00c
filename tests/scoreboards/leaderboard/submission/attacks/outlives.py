"""Attack: start a daemon (double fork, new session) that outlives the worker; the run itself is
honest enough to be accepted. The daemon is `sleep MARKER`, so the test can look for it."""

import os
import time
from pathlib import Path

import numpy as np


class Outlives:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        marker = self.spec["marker"]
        if os.fork() == 0:
            os.setsid()
            if os.fork() == 0:
                os.execv("/usr/bin/sleep", ["sleep", marker])
            os._exit(0)
        os.wait()
        for _ in range(100):  # wait until the daemon runs, so the test checks a live one
            for pid in os.listdir("/proc"):
                try:
                    if pid.isdigit() and marker in Path(f"/proc/{pid}/cmdline").read_text():
                        return
                except OSError:
                    pass
            time.sleep(0.05)
        raise RuntimeError("the daemon did not start")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
