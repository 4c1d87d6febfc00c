"""The wire between the harness and a worker: JSON headers and raw numpy buffers, never pickle.

One message is one frame on a stream socket::

    u32 little-endian header length | header: UTF-8 JSON | array buffers, in header order

The header is ``{"msg": VALUE, "arrays": [{"dtype": "<i8", "shape": [N, P]}, ...]}``.
``VALUE`` is any JSON value in which ``{"$array": i}`` stands for the i-th array; the
buffers that follow are the arrays' bytes, C order, little-endian. Decoding is strict
and bounded, because the harness reads what untrusted code wrote: the header is at
most :data:`MAX_HEADER` bytes of JSON; dtypes come from :data:`DTYPES` (numbers and
booleans only); at most :data:`MAX_ARRAYS` arrays of at most :data:`MAX_NDIM`
dimensions; their declared size is checked against the reader's ``max_payload``
before a byte of it is read. Nothing in a message is executed or imported: it turns
into dicts, lists, numbers, strings and numpy arrays, and that is all.

Both ends call :func:`send` and :func:`recv`; a deadline (``time.monotonic()``
seconds) bounds every wait, so a peer that stops mid-frame cannot hang the other.
"""

from __future__ import annotations

import json
import math
import select
import socket
import struct
import time
from collections.abc import Callable
from typing import Any

import numpy as np

#: Largest JSON header, in bytes.
MAX_HEADER = 1 << 16
#: Largest total array payload the harness accepts in one message from a worker.
MAX_PAYLOAD = 256 << 20
#: Most arrays in one message, and most dimensions of one array.
MAX_ARRAYS, MAX_NDIM = 16, 4
#: The array dtypes on the wire (little-endian numbers and booleans).
DTYPES = frozenset({"|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"})
_LEN = struct.Struct("<I")


class WireError(Exception):
    """A malformed, oversized or truncated message; ``str(e)`` says what was wrong."""


class PeerClosed(WireError):
    """The other end closed the connection (between messages: ``partial`` is False)."""

    def __init__(self, partial: bool) -> None:
        self.partial = partial
        super().__init__("the connection closed in the middle of a message" if partial
                         else "the connection closed")


# ----- values <-> JSON + buffers ------------------------------------------------------------
def _as_array(x: Any) -> np.ndarray | None:
    if isinstance(x, np.ndarray):
        return x
    if type(x).__module__.startswith("torch") and hasattr(x, "detach"):
        return x.detach().cpu().numpy()
    return None


def _pack(x: Any, arrays: list[np.ndarray]) -> Any:
    a = _as_array(x)
    if a is not None:
        arrays.append(a)
        return {"$array": len(arrays) - 1}
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    if isinstance(x, np.generic):
        return x.item()
    if isinstance(x, (list, tuple)):
        return [_pack(v, arrays) for v in x]
    if isinstance(x, dict):
        if not all(isinstance(k, str) for k in x):
            raise TypeError("cannot send a dict with non-string keys")
        return {k: _pack(v, arrays) for k, v in x.items()}
    raise TypeError(f"cannot send a {type(x).__name__}: send numbers, strings, lists, dicts "
                    "and numpy arrays")


def encode(msg: Any) -> list[Any]:
    """The frame for `msg` as a list of buffers (header, then the arrays' bytes)."""
    arrays: list[np.ndarray] = []
    value = _pack(msg, arrays)
    if len(arrays) > MAX_ARRAYS:
        raise TypeError(f"cannot send {len(arrays)} arrays in one message (at most {MAX_ARRAYS})")
    wire = []
    for a in arrays:
        dt = a.dtype.newbyteorder("<")
        if a.ndim > MAX_NDIM or dt.str not in DTYPES:
            raise TypeError(f"cannot send a {a.ndim}-dimensional {a.dtype} array (at most {MAX_NDIM} "
                            f"dimensions; dtypes {', '.join(sorted(DTYPES))})")
        wire.append(np.asarray(a, dtype=dt, order="C"))
    header = json.dumps({"msg": value, "arrays": [{"dtype": w.dtype.str, "shape": list(w.shape)} for w in wire]},
                        separators=(",", ":")).encode()
    if len(header) > MAX_HEADER:
        raise TypeError(f"message header of {len(header):,} bytes exceeds {MAX_HEADER:,}: send large data "
                        "as numpy arrays")
    return [_LEN.pack(len(header)), header, *(memoryview(w.reshape(-1).view(np.uint8)) for w in wire if w.nbytes)]


def _unpack(x: Any, arrays: list[np.ndarray]) -> Any:
    if isinstance(x, dict):
        if "$array" in x:
            i = x["$array"]
            if len(x) != 1 or type(i) is not int or not 0 <= i < len(arrays):
                raise WireError(f"bad array reference {json.dumps(x)[:80]}")
            return arrays[i]
        return {k: _unpack(v, arrays) for k, v in x.items()}
    if isinstance(x, list):
        return [_unpack(v, arrays) for v in x]
    return x


def _array_specs(specs: Any, max_payload: int | None) -> list[tuple[np.dtype, tuple[int, ...], int]]:
    if not isinstance(specs, list) or len(specs) > MAX_ARRAYS:
        raise WireError(f"`arrays` must be a list of at most {MAX_ARRAYS} array descriptions")
    out, total = [], 0
    for s in specs:
        if not isinstance(s, dict) or set(s) != {"dtype", "shape"}:
            raise WireError("an array description must be {\"dtype\": ..., \"shape\": [...]}")
        dtype, shape = s["dtype"], s["shape"]
        if dtype not in DTYPES:
            raise WireError(f"array dtype {str(dtype)[:20]!r} is not allowed (allowed: {', '.join(sorted(DTYPES))})")
        if (not isinstance(shape, list) or len(shape) > MAX_NDIM
                or not all(type(d) is int and d >= 0 for d in shape)):
            raise WireError(f"array shape must be a list of at most {MAX_NDIM} non-negative ints, "
                            f"got {json.dumps(shape)[:80]}")
        dt = np.dtype(dtype)
        nbytes = math.prod(shape) * dt.itemsize
        total += nbytes
        if max_payload is not None and total > max_payload:
            raise WireError(f"message declares {total:,} bytes of arrays, more than the limit of "
                            f"{max_payload:,}: send it in smaller batches")
        out.append((dt, tuple(shape), nbytes))
    return out


# ----- the socket -----------------------------------------------------------------------------
def _left(deadline: float | None) -> float | None:
    if deadline is None:
        return None
    left = deadline - time.monotonic()
    if left <= 0:
        raise TimeoutError("deadline passed")
    return left


def _recv_into(sock: socket.socket, buf: memoryview, deadline: float | None, started: bool) -> None:
    got = 0
    while got < len(buf):
        sock.settimeout(_left(deadline))  # past it: TimeoutError (socket.timeout is one)
        try:
            n = sock.recv_into(buf[got:])
        except ConnectionResetError:
            n = 0
        if n == 0:
            raise PeerClosed(partial=started or got > 0)
        got += n


def send(sock: socket.socket, msg: Any, deadline: float | None = None) -> None:
    """Send one message (raises TimeoutError past `deadline`, OSError if the peer is gone)."""
    for part in encode(msg):
        sock.settimeout(_left(deadline))
        sock.sendall(part)


def wait_readable(sock: socket.socket, timeout: float) -> bool:
    """Whether a message (or the peer's close) is waiting, after at most `timeout` seconds."""
    return bool(select.select([sock], [], [], max(timeout, 0.0))[0])


def recv(sock: socket.socket, deadline: float | None = None, max_payload: int | None = MAX_PAYLOAD,
         check: Callable[[Any, list[tuple[np.dtype, tuple[int, ...]]]], None] | None = None) -> Any:
    """Receive one message; raises :class:`WireError` (malformed, oversized, truncated),
    :class:`PeerClosed` or TimeoutError.

    `check(msg, arrays)`, given the header's value (``{"$array": i}`` references unresolved) and
    each array's (dtype, shape), runs before a byte of payload is read or allocated; whatever it
    raises ends the read.
    """
    head = bytearray(_LEN.size)
    _recv_into(sock, memoryview(head), deadline, started=False)
    (n,) = _LEN.unpack(head)
    if not 2 <= n <= MAX_HEADER:
        raise WireError(f"message header of {n:,} bytes (allowed: 2 to {MAX_HEADER:,})")
    raw = bytearray(n)
    _recv_into(sock, memoryview(raw), deadline, started=True)
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError) as e:
        raise WireError(f"message header is not JSON ({type(e).__name__})") from None
    if not isinstance(header, dict) or set(header) != {"msg", "arrays"}:
        raise WireError("message header must be {\"msg\": ..., \"arrays\": [...]}")
    specs = _array_specs(header["arrays"], max_payload)
    if check is not None:
        check(header["msg"], [(dt, shape) for dt, shape, _ in specs])
    arrays = []
    for dt, shape, nbytes in specs:
        buf = bytearray(nbytes)
        _recv_into(sock, memoryview(buf), deadline, started=True)
        arrays.append(np.frombuffer(buf, dtype=dt).reshape(shape))
    try:
        return _unpack(header["msg"], arrays)
    except RecursionError:
        raise WireError("message nests too deeply") from None
