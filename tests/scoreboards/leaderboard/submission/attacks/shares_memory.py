"""Attack: allocate memory that a per-process data limit (RLIMIT_DATA) does not count -- a shared
anonymous mapping, a memory file (memfd) written and one mapped, /dev/shm -- each 1.5x the board's
memory limit and touched; then (``spec["procs"]``) the same from several processes at once, each
under the limit, together over it. Reports what it got."""

import mmap
import os
import time

import numpy as np


def _touch(m, size):
    for i in range(0, size, 4096):
        m[i] = 1


def _try(name, fn, got):
    try:
        fn()
        got.append(f"{name}: ALLOCATED")
    except (OSError, MemoryError, ValueError) as e:
        got.append(f"{name}: refused ({type(e).__name__})")


class SharesMemory:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        size = int(1.5 * (self.spec["memory_mb"] << 20))
        got = []
        if self.spec.get("procs"):
            each = size // self.spec["procs"]  # every process under the limit, together over it
            kids = []
            for _ in range(self.spec["procs"]):
                pid = os.fork()
                if pid == 0:
                    try:
                        m = mmap.mmap(-1, each, flags=mmap.MAP_SHARED)
                        _touch(m, each)
                        time.sleep(5)
                    finally:
                        os._exit(0)
                kids.append(pid)
            for pid in kids:
                os.waitpid(pid, 0)
            raise RuntimeError(f"{self.spec['procs']} processes held {size >> 20} MiB of shared memory together")

        def shared():
            m = mmap.mmap(-1, size, flags=mmap.MAP_SHARED)
            _touch(m, size)
            m.close()

        def memfd_written():
            fd = os.memfd_create("hog")
            try:
                chunk = b"\1" * (1 << 20)
                for _ in range(size >> 20):
                    os.write(fd, chunk)
            finally:
                os.close(fd)

        def memfd_mapped():
            fd = os.memfd_create("hog2")
            try:
                os.ftruncate(fd, size)
                m = mmap.mmap(fd, size)
                _touch(m, size)
                m.close()
            finally:
                os.close(fd)

        _try("shared mapping", shared, got)
        _try("memfd written", memfd_written, got)
        _try("memfd mapped", memfd_mapped, got)
        raise RuntimeError(f"memory {got}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
