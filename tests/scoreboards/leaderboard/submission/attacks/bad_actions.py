"""Attack: return actions of the wrong shape, dtype or range (or not an array at all) from act."""

import numpy as np


class BadActions:
    def __init__(self, spec):
        self.mode = spec["mode"]

    def train(self, expert):
        pass

    def act(self, observations):
        n = len(observations)
        return {
            "float": lambda: np.zeros(n, dtype=np.float32),
            "negative": lambda: np.full(n, -1, dtype=np.int64),
            "too_large": lambda: np.full(n, 2**40, dtype=np.int64),
            "matrix": lambda: np.zeros((n, 2), dtype=np.int64),
            "too_many": lambda: np.zeros(n + 1, dtype=np.int64),
            "strings": lambda: np.array(["0"] * n),
            "objects": lambda: np.array([object()] * n),
            "huge": lambda: np.zeros(50_000_000, dtype=np.int64),
        }[self.mode]()
