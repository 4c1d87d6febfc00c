"""Not an attack: a submission that builds on the project's own student (agents.policy) and
losses, as issue 27 asks (it failed with `ModuleNotFoundError: agents` when the sandbox
showed submissions only the scoreboards package)."""

import numpy as np
import torch

from agents.losses import forward_kl  # noqa: F401  the shipped losses import too
from agents.policy import PolicyConfig, TransformerPolicy


class UsesAgents:
    def __init__(self, spec):
        self.spec = spec
        torch.manual_seed(0)
        self.policy = TransformerPolicy(PolicyConfig(vocab_size=spec["vocab_size"], num_actions=spec["num_actions"],
                                                     block_size=spec["obs_len"], n_layer=1, n_head=2, n_embd=16))

    def train(self, expert):
        pass

    def act(self, observations):
        with torch.no_grad():
            logits = self.policy(torch.as_tensor(np.asarray(observations), dtype=torch.long))[:, -1]
        return logits.argmax(-1).numpy()
