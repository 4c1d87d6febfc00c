"""Attack: fill the scratch directory past its size, then allocate far more memory than the limit."""

import numpy as np


class EatsMemory:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        scratch = "scratch ok"
        try:
            with open("/tmp/fill", "wb") as f:
                f.writelines(b"\0" * (1 << 20) for _ in range(4 * self.spec["scratch_mb"]))
        except OSError as e:
            scratch = f"scratch: {e}"
        try:
            hog = np.ones((4 * self.spec["memory_mb"]) << 17)  # 4x the limit, in float64
        except MemoryError as e:
            raise MemoryError(f"{scratch}; memory: {e}") from None
        raise RuntimeError(f"{scratch}; allocated {hog.nbytes >> 20} MiB")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
