"""Attack: report the worker's whole environment (the harness's secrets must not be in it)."""

import json
import os


class EnvSpy:
    def __init__(self, spec):
        pass

    def train(self, expert):
        juicy = dict(sorted(os.environ.items(), key=lambda kv: ("SECRET" not in kv[0], kv[0])))  # secrets first
        raise RuntimeError("ENV " + json.dumps(juicy))

    def act(self, observations):
        return [0] * len(observations)
