"""Attacks on time: sleep past the wall limit ignoring SIGTERM, or burn CPU ignoring SIGXCPU."""

import signal
import time

import numpy as np


class Sleeps:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        time.sleep(3600)

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)


class BurnsCpu(Sleeps):
    def train(self, expert):
        x = 0
        while True:
            x += 1


class BurnsCpuIgnoringSigxcpu(Sleeps):
    def train(self, expert):
        signal.signal(signal.SIGXCPU, signal.SIG_IGN)
        x = 0
        while True:
            x += 1
