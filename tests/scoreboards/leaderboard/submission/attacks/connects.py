"""Attack: open a TCP connection to the harness's machine (127.0.0.1) and to the internet."""

import socket

import numpy as np


class Connects:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        connected, errors = [], []
        for addr in (("127.0.0.1", self.spec["port"]), ("1.1.1.1", 53)):
            s = socket.socket()
            s.settimeout(2)
            try:
                s.connect(addr)
                s.sendall(b"leak")
                connected.append(addr)
            except OSError as e:
                errors.append(f"{addr[0]}: {e}")
            finally:
                s.close()
        raise RuntimeError(f"connected {connected}; errors {errors}")

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
