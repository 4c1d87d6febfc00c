"""Attack: spend the whole budget, then rewrite the client's counts (and its class) to look unspent."""

import numpy as np


class FakesCounts:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        expert.rollout(expert.prompts(self.spec["budget_trajectories"]))
        expert.trajectories = expert.queries = 0
        type(expert).trajectories_left = property(lambda self: 10**9)
        type(expert).queries_left = property(lambda self: 10**9)
        assert expert.trajectories_left == 10**9

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)


class FakesCountsOverspends(FakesCounts):
    def train(self, expert):
        super().train(expert)
        expert.rollout(expert.prompts(8))  # the harness's count says no
