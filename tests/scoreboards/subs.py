"""Submissions for the tests: one honest learner and a gallery of bad ones."""

from __future__ import annotations

import os
import time

import numpy as np


class TableLearner:
    """Honest and tiny: follow the noisy expert's most likely action along its own greedy chain,
    and remember every prefix -> action seen (a lookup table policy)."""

    def __init__(self, spec):
        self.spec = spec
        self.table: dict[bytes, int] = {}

    def train(self, expert):
        h = self.spec["horizon"]
        while expert.trajectories_left > 0 and expert.queries_left >= 256 * h:
            prompts = expert.prompts(256)
            chain = np.empty((256, 0), dtype=np.int64)
            for _ in range(h):
                obs = expert.observe(prompts, chain)
                a = expert.probs(obs).argmax(1)
                for o, x in zip(obs, a):
                    self.table[o.tobytes()] = int(x)
                chain = np.concatenate([chain, a[:, None]], axis=1)
            # Spend trajectories too: the budget counts complete chains queried.
            expert.probs_along(prompts, chain)

    def act(self, observations):
        return np.array([self.table.get(o.tobytes(), 0) for o in np.asarray(observations)], dtype=np.int64)


class PeeksAtEnv(TableLearner):
    def train(self, expert):
        import noisy_expert_gym  # noqa: F401  the env package holds the clean expert

        super().train(expert)


class PeeksRawRequest(TableLearner):
    def train(self, expert):
        p = expert.prompts(4)
        expert._call("clean_probs", expert.observe(p, p[:, :0]))


class ForgesPrompts(TableLearner):
    def train(self, expert):
        m = self.spec["horizon"]
        prompts = np.concatenate([np.zeros((4, m), np.int64), np.full((4, 1), 7)], axis=1)
        expert.probs(expert.observe(prompts, prompts[:, :0]))


class Overspends(TableLearner):
    def train(self, expert):
        n = self.spec["budget_trajectories"]
        p = expert.prompts(n)
        expert.rollout(p)  # the whole budget: fine
        q = expert.prompts(1)
        expert.rollout(q)  # one more trajectory: over budget


class Crashes(TableLearner):
    def train(self, expert):
        raise ZeroDivisionError("my bug")


class BadActions(TableLearner):
    def train(self, expert):
        pass

    def act(self, observations):
        return np.zeros((len(observations), 2), dtype=np.int64)


class OutOfRange(BadActions):
    def act(self, observations):
        return np.full(len(observations), 99, dtype=np.int64)


class NoAct:
    def __init__(self, spec):
        pass

    def train(self, expert):
        pass


class Sleeps(TableLearner):
    def train(self, expert):
        time.sleep(60)


class Dies(TableLearner):
    def train(self, expert):
        os._exit(3)


class Catches(TableLearner):
    """Catches the over-budget error and carries on: still rejected."""

    def train(self, expert):
        p = expert.prompts(self.spec["budget_trajectories"] + 1)
        try:
            expert.rollout(p)
        except Exception:  # noqa: BLE001, S110 - the point of this submission
            pass
        self.table = {}


NOT_A_CLASS = 42
