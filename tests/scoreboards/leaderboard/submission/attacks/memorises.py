"""Attack (issue 23, finding 2): learn no rule; memorise the test set instead. Record every prompt
the harness shows ``act`` (its learning-curve evaluations call it mid-training), spend enough
budget to be shown them, then draw training prompts until the recorded ones come up, label
those with the noisy expert's argmax along clean prefixes, and answer from the lookup table.
It scored 0.997 and 0.996 on the two CPU hidden boards, rank 1, above the clean ceiling."""

import numpy as np


class Memorises:
    def __init__(self, spec):
        self.spec = spec
        self.p, self.h = spec["prompt_len"], spec["horizon"]
        self.shown: set[bytes] = set()
        self.table: dict[bytes, int] = {}

    def act(self, observations):
        obs = np.asarray(observations)
        for row in obs[:, : self.p]:
            self.shown.add(row.astype(np.int64).tobytes())
        return np.array([self.table.get(o.astype(np.int64).tobytes(), 0) for o in obs], dtype=np.int64)

    def train(self, expert):
        # Spend past the first learning-curve point so the harness shows act its evaluation prompts.
        first = expert.budget_trajectories // self.spec["curve_points"] + 1
        drawn = 0
        while expert.trajectories < first:
            n = min(256, first - expert.trajectories)
            expert.rollout(expert.prompts(n))
            drawn += n
        expert.prompts(1)  # the next request: the harness measures its curve point first
        drawn += 1
        shown = set(self.shown)
        wanted = []
        cap = 4 * expert.budget_trajectories + 20_000  # the prompts a run may draw (scoreboards/README.md)
        while drawn < cap and len(wanted) < expert.trajectories_left:
            batch = expert.prompts(min(4096, cap - drawn))
            drawn += len(batch)
            wanted += [r for r in batch if r.astype(np.int64).tobytes() in shown]
            shown -= {r.astype(np.int64).tobytes() for r in batch}
        wanted = np.array(wanted[: expert.trajectories_left]).reshape(-1, self.p)
        chain = np.empty((len(wanted), 0), dtype=np.int64)
        for _ in range(self.h):
            if not len(wanted):
                break
            obs = expert.observe(wanted, chain)
            a = expert.probs(obs).argmax(1)
            for o, x in zip(obs, a):
                self.table[o.astype(np.int64).tobytes()] = int(x)
            chain = np.concatenate([chain, a[:, None]], axis=1)
