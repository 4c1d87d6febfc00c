"""Attack: fork until something stops it (capped at 500 here, so a broken limit cannot take the
test machine down); every child sleeps, holding its process slot."""

import os
import time

import numpy as np


class ForkBomb:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        n = 0
        try:
            while n < 500:
                if os.fork() == 0:
                    time.sleep(60)
                    os._exit(0)
                n += 1
        except OSError as e:
            raise RuntimeError(f"fork failed after {n} processes: {e}") from None
        raise RuntimeError(f"forked {n} processes: no process limit")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
