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
    "bool_count": lambda spec: frame(b'{"msg":{"op":"prompts","args":[true]},"arrays":[]}'),
    "float_count": lambda spec: frame(b'{"msg":{"op":"prompts","args":[2.0]},"arrays":[]}'),
    "zero_rows": lambda spec: frame(b'{"msg":{"op":"probs","args":[{"$array":0}]},'
                                    b'"arrays":[{"dtype":"<i8","shape":[0,7]}]}'),
    "bool_array": lambda spec: frame(b'{"msg":{"op":"rollout","args":[{"$array":0}]},'
                                     b'"arrays":[{"dtype":"|b1","shape":[1,4]}]}') + b"\1" * 4,
    "extra_array": lambda spec: frame(b'{"msg":{"op":"done","args":[]},'
                                      b'"arrays":[{"dtype":"|u1","shape":[8]}]}') + b"\0" * 8,
    # One in-limit message that a harness answering it would pay for many times over: a uint8 `probs`
    # request of 32 MiB asks for 32 MiB / obs_len rows, each an int64 observation and a row of A
    # float probabilities (the issue-23 measurement: 128 MiB grew the harness by 2.27 GiB).
    "amplify": lambda spec: frame(b'{"msg":{"op":"probs","args":[{"$array":0}]},"arrays":[{"dtype":"|u1",'
                                  b'"shape":[%d,%d]}]}' % ((32 << 20) // spec["obs_len"], spec["obs_len"]))
                            + bytes((32 << 20) // spec["obs_len"] * spec["obs_len"]),
}


class Malformed:
    def __init__(self, spec):
        self.spec = spec

    def train(self, expert):
        if self.spec["mode"] == "pipeline":  # requests written without reading the answers: the socket fills
            expert._sock.setblocking(True)
            request = frame(b'{"msg":{"op":"prompts","args":[256]},"arrays":[]}')
            for _ in range(60):  # 60 answers of 256 prompts: far more than a socket buffer holds
                expert._sock.sendall(request)
            time.sleep(3600)
        expert._sock.sendall(MODES[self.spec["mode"]](self.spec))
        if self.spec["mode"] == "truncated":
            if self.spec.get("stall"):
                time.sleep(3600)  # keep the harness waiting for the rest
            os._exit(0)  # hang up mid-message
        expert._sock.recv(1)  # wait for the harness to end the run

    def act(self, observations):
        return np.zeros(len(observations), dtype=np.int64)
