"""Attack: write malformed, oversized or hostile bytes on the socket to the harness, bypassing the
client; ``spec["mode"]`` picks which. ``pickle`` sends a payload that runs ``touch MARKER`` when
unpickled (as a multiprocessing.Connection message and as a wire header)."""

import os
import pickle
import struct
import time

import numpy as np


class Pwn:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def frame(header: bytes) -> bytes:
    return struct.pack("<I", len(header)) + header


MODES = {
    "pickle_mp": lambda spec: struct.pack("!i", len(p := pickle.dumps(("probs", Pwn(spec["marker"]))))) + p,
    "pickle_header": lambda spec: frame(pickle.dumps(Pwn(spec["marker"]))),
    "huge_header": lambda spec: struct.pack("<I", 2**31) + b"{",
    "huge_array": lambda spec: frame(b'{"msg":{"op":"probs","args":[{"$array":0}]},'
                                     b'"arrays":[{"dtype":"<i8","shape":[1099511627776]}]}'),
    "object_dtype": lambda spec: frame(b'{"msg":{"op":"probs","args":[{"$array":0}]},'
                                       b'"arrays":[{"dtype":"|O","shape":[4]}]}') + b"\0" * 32,
    "bad_ref": lambda spec: frame(b'{"msg":{"op":"probs","args":[{"$array":7}]},"arrays":[]}'),
    "deep_json": lambda spec: frame(b"[" * 60000),
    "not_a_request": lambda spec: frame(b'{"msg":[1,2,3],"arrays":[]}'),
    "terminal_escape": lambda spec: frame(b'{"msg":{"op":"\\u001b]0;pwned\\u0007","args":[]},"arrays":[]}'),
    "truncated": lambda spec: struct.pack("<I", 1000) + b'{"msg":',
}


class Malformed:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        expert._sock.sendall(MODES[self.spec["mode"]](self.spec))
        if self.spec["mode"] == "truncated":
            if self.spec.get("stall"):
                time.sleep(3600)  # keep the harness waiting for the rest
            os._exit(0)  # hang up mid-message
        expert._sock.recv(1)  # wait for the harness to end the run

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
