"""Submissions for the tests: one honest learner and a gallery of bad ones."""

from __future__ import annotations

import os
import time

import numpy as np


class TableLearner:
    """Honest and tiny: follow the noisy expert's most likely action along its own greedy chain,
    and remember each step as a transition (the chain's last token, or the start, and the next
    input symbol) -> the next token: a lookup table of the chain task's rule, which answers
    prompts it never saw (the scored prompts are never issued for training). Its H single-prefix
    queries per chain cost one expert trajectory per chain."""

    def __init__(self, spec):
        self.spec = spec
        self.m, self.p, self.pad = spec["horizon"], spec["prompt_len"], spec["pad_token"]
        self.table: dict[tuple[int, int], int] = {}

    def _keys(self, obs):
        obs = np.asarray(obs)
        t = (obs[:, self.p:] != self.pad).sum(1)  # chain tokens written so far
        last = np.where(t > 0, obs[np.arange(len(obs)), self.p + np.maximum(t - 1, 0)], -1)
        symbol = obs[np.arange(len(obs)), np.minimum(t, self.m - 1)]
        return zip(last.tolist(), symbol.tolist())

    def train(self, expert):
        h = self.spec["horizon"]
        while expert.trajectories_left >= 256 and expert.queries_left >= 256 * h:
            prompts = expert.prompts(256)
            chain = np.empty((256, 0), dtype=np.int64)
            for _ in range(h):
                obs = expert.observe(prompts, chain)
                a = expert.probs(obs).argmax(1)
                for key, x in zip(self._keys(obs), a):
                    self.table[key] = int(x)
                chain = np.concatenate([chain, a[:, None]], axis=1)

    def act(self, observations):
        return np.array([self.table.get(key, 0) for key in self._keys(observations)], dtype=np.int64)


class CleanExpertCheat:
    """Builds the family's clean expert from the env package (importable in the sandbox) with the
    public kwargs and acts with it; never asks the expert. Perfect on an open board, chance on a
    hidden instance: the package holds the family, the harness alone the instance."""

    def __init__(self, spec):
        from noisy_expert_gym import make_problem

        self.task = make_problem(spec["env_id"], **spec["env_kwargs"]).task

    def train(self, expert):
        pass

    def act(self, observations):
        return np.asarray(self.task.clean_actions(np.asarray(observations)), dtype=np.int64)


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


class AddingCheat:
    """Reads the operands off the observation and adds them mod n; never asks the expert.
    Perfect on an open modular-addition board, chance on a hidden instance."""

    def __init__(self, spec):
        self.m, self.n = spec["horizon"], spec["num_actions"]

    def train(self, expert):
        pass

    def act(self, observations):
        obs = np.asarray(observations)
        written = (obs[:, self.m + 1:] < self.n).sum(1)  # chain tokens so far (pad > n)
        upto = np.arange(self.m)[None, :] <= written[:, None]
        return (obs[:, : self.m] * upto).sum(1) % self.n


class SampleLearner(TableLearner):
    """TableLearner from sampled tokens only (for sample-only boards): the majority of K expert
    samples at each prefix of the chain it builds, then one `sample_along` per chain. The K
    single-prefix samples at every prefix cost K trajectories per chain (H prefix queries make
    one), the `sample_along` one more."""

    K = 5

    def train(self, expert):
        assert expert.access == "sample"
        h, n, b = self.spec["horizon"], self.spec["num_actions"], 64
        while expert.trajectories_left >= b * (self.K + 1) and expert.queries_left >= b * h * (self.K + 1):
            prompts = expert.prompts(b)
            chain = np.empty((b, 0), dtype=np.int64)
            for _ in range(h):
                obs = expert.observe(prompts, chain)
                votes = np.stack([expert.sample(obs) for _ in range(self.K)], axis=1)  # (b, K)
                a = np.array([np.bincount(v, minlength=n).argmax() for v in votes])
                for key, x in zip(self._keys(obs), a):
                    self.table[key] = int(x)
                chain = np.concatenate([chain, a[:, None]], axis=1)
            assert expert.sample_along(prompts, chain, 1).shape == (b, h, 1)


class AsksProbsOnSampleBoard(TableLearner):
    """Tries probs, catches the client's refusal, then sends the request past the client."""

    def train(self, expert):
        p = expert.prompts(4)
        obs = expert.observe(p, p[:, :0])
        try:
            expert.probs(obs)
        except RuntimeError as e:
            assert "sample-only" in str(e)
        expert.sample(obs)  # the run goes on
        expert._call("probs", obs)  # past the client: ends the run


class Spy(TableLearner):
    """Records everything the worker can see -- its spec, its environment, every message the harness
    sends -- into the pickle file named by $NEG_TEST_SPY_OUT, for the tests to search."""

    def train(self, expert):
        import pickle

        from scoreboards.leaderboard.submission import client as client_module

        seen = []
        recv = client_module.wire.recv

        def spying_recv(*args, **kwargs):
            msg = recv(*args, **kwargs)
            seen.append(msg)
            return msg

        client_module.wire.recv = spying_recv
        p = expert.prompts(64)
        chain, _ = np.zeros((64, self.spec["horizon"]), np.int64), None
        expert.probs_along(p, chain)
        expert.sample(expert.observe(p, chain[:, :1]))
        expert.probs(expert.observe(p, chain[:, :2]))
        expert.log_prob(expert.observe(p, chain[:, :0]), np.zeros(64, np.int64))
        expert.sample_along(p, chain, 3)
        expert.rollout(expert.prompts(64))
        super().train(expert)  # spends the budget: the harness's mid-training act requests come too
        with open(os.environ["NEG_TEST_SPY_OUT"], "wb") as f:
            pickle.dump({"spec": self.spec, "environ": dict(os.environ), "messages": seen,
                         "sys_path": list(__import__("sys").path)}, f)
