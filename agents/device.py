"""Device, mixed-precision, compilation and data-parallel choices, written once for every trainer.

The defaults ("auto") pick the fastest *safe* option on the machine at hand:
CUDA > MPS > CPU; bf16 autocast only where the hardware does bf16 natively
(CUDA with bf16 support, CPUs with AVX-512 BF16 or AMX); ``torch.compile``
only on CUDA, where it pays for its compile time.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Callable
from typing import Any, Literal

import torch
from torch import nn

__all__ = ["autocast_context", "broadcast_object", "gather_states", "maybe_compile", "on_rank0", "resolve_device",
           "resolve_precision", "setup_distributed", "sum_over_ranks"]

Precision = Literal["auto", "bf16", "fp32"]
_PRECISIONS = ("auto", "bf16", "fp32")


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """Turn a device spec into an available ``torch.device``.

    Args:
        device: ``"auto"`` (CUDA, else MPS, else CPU), or an explicit device such
            as ``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"mps"`` or a ``torch.device``.

    Returns:
        The resolved device.

    Raises:
        ValueError: if the spec is malformed or names a device this machine lacks.
    """
    if isinstance(device, str) and device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"unknown device {device!r}; use 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps'"
        ) from exc
    unavailable = (
        (dev.type == "cuda" and not torch.cuda.is_available())
        or (dev.type == "mps" and not _mps_available())
    )
    if unavailable:
        raise ValueError(
            f"device {str(dev)!r} is unavailable on this machine; use device='auto' "
            "(picks the best available) or device='cpu'"
        )
    if dev.type == "cuda" and dev.index is not None and dev.index >= torch.cuda.device_count():
        raise ValueError(
            f"device {str(dev)!r} is unavailable: only {torch.cuda.device_count()} CUDA "
            "device(s) visible; use device='auto' or device='cuda:0'"
        )
    return dev


def _cpu_has_native_bf16() -> bool:
    # Without AVX-512 BF16 / AMX, CPU bf16 matmuls are emulated and can be 100x
    # *slower* than fp32 (measured on an AVX2-only EPYC); get_cpu_capability()
    # only reports the vector ISA ("AVX2", "AVX512"), not bf16, so ask torch.cpu.
    cpu = torch.cpu
    for probe in ("_is_avx512_bf16_supported", "_is_amx_tile_supported"):
        fn = getattr(cpu, probe, None)
        if fn is not None and fn():
            return True
    return False


def resolve_precision(device: str | torch.device, precision: Precision = "auto") -> str:
    """Decide the compute precision, ``"bf16"`` or ``"fp32"``, for a device.

    Args:
        device: the device (any spec :func:`resolve_device` accepts).
        precision: ``"auto"`` (bf16 where the hardware supports it natively,
            else fp32), ``"bf16"`` or ``"fp32"``.

    Returns:
        ``"bf16"`` or ``"fp32"``.

    Raises:
        ValueError: on an unknown ``precision``, or ``"bf16"`` on a CUDA device
            without bf16 support.
    """
    if precision not in _PRECISIONS:
        raise ValueError(f"`precision` must be one of {_PRECISIONS}, got {precision!r}")
    dev = resolve_device(device)
    if precision == "fp32":
        return "fp32"
    if dev.type == "cuda":
        supported = torch.cuda.is_bf16_supported()
        if precision == "bf16" and not supported:
            raise ValueError(
                f"{dev} does not support bf16; use precision='fp32' or precision='auto'"
            )
        return "bf16" if supported else "fp32"
    if dev.type == "cpu":
        native = _cpu_has_native_bf16()
        if precision == "bf16" and not native:
            warnings.warn(
                "bf16 requested on a CPU without AVX-512 BF16/AMX: it is emulated and much "
                "slower than fp32; use precision='auto' or 'fp32'",
                stacklevel=3,
            )
            return "bf16"
        return "bf16" if native else "fp32"
    # MPS (and anything else): fp32 unless bf16 is asked for explicitly.
    return "bf16" if precision == "bf16" else "fp32"


def autocast_context(
    device: str | torch.device, precision: Precision = "auto"
) -> contextlib.AbstractContextManager:
    """Context manager for mixed-precision compute on ``device``.

    Args:
        device: the device the model runs on.
        precision: ``"auto"``, ``"bf16"`` or ``"fp32"`` (see :func:`resolve_precision`).

    Returns:
        ``torch.autocast(device_type, dtype=torch.bfloat16)`` for bf16, else a
        no-op ``contextlib.nullcontext()``. Parameters stay fp32 either way
        (autocast casts per op), so optimizers and checkpoints are unaffected.

    Example:
        >>> with autocast_context("cpu", "fp32"):
        ...     pass
    """
    dev = resolve_device(device)
    if resolve_precision(dev, precision) == "bf16":
        return torch.autocast(device_type=dev.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def maybe_compile(model: nn.Module, enabled: bool | str = "auto") -> nn.Module:
    """Compile ``model`` with ``torch.compile`` when it is worth it.

    Compiles in place (``nn.Module.compile``), so the model keeps its class and
    methods: calls to ``model(...)`` (hence ``chain_logits``, which calls it) are
    compiled, while ``TransformerPolicy.generate``'s KV-cached steps, whose shapes
    change every token, stay eager and trigger no recompiles.

    Args:
        model: the module to compile.
        enabled: ``"auto"`` compiles only when the model's parameters are on CUDA
            (on CPU compile time dwarfs the gain for models this small);
            ``True`` always compiles; ``False`` never does.

    Returns:
        The same ``model`` object.

    Raises:
        ValueError: if ``enabled`` is not ``True``, ``False`` or ``"auto"``.
    """
    if enabled == "auto":
        param = next(model.parameters(), None)
        enabled = param is not None and param.device.type == "cuda"
    elif not isinstance(enabled, bool):
        raise ValueError(f"`enabled` must be True, False or 'auto', got {enabled!r}")
    if enabled:
        model.compile()
    return model


# --------------------------------------------------------------------------- data-parallel runs (torchrun)
# Every function below except setup_distributed is a *collective*: under torchrun each rank must call it
# the same number of times, in the same order, or the ranks wait on each other for ever (Lightning#19045,
# speechbrain#2401). So none is ever called under ``if rank == 0``: every rank reaches it, and what only
# rank 0 does (evaluate, write a file) runs inside :func:`on_rank0`, whose result -- or error -- then
# reaches every rank, which therefore take the same branches afterwards.
def setup_distributed(device: str) -> tuple[int, int, torch.device]:
    """``(world size, rank, device)`` of this process; joins the process group under torchrun.

    Without ``WORLD_SIZE`` > 1 it is a single process on :func:`resolve_device`'s
    device. Under torchrun: one CUDA device per local rank (NCCL) when CUDA is
    asked for (or ``auto``) and present, else the CPU (gloo).
    """
    import os

    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 1, 0, resolve_device(device)
    import torch.distributed as dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    if device in ("auto", "cuda") and torch.cuda.is_available():
        dev = torch.device("cuda", local)
        torch.cuda.set_device(dev)
        backend = "nccl"
    else:
        dev, backend = resolve_device("cpu"), "gloo"
    if not dist.is_initialized():
        dist.init_process_group(backend=backend)
    return world, rank, dev


def gather_states(state: Any, world: int) -> list[Any]:
    """Every rank's `state` (any picklable object, e.g. its RNG states), in rank order, on every rank.
    A collective: every rank calls it (a checkpoint gathers first, then rank 0 writes)."""
    if world == 1:
        return [state]
    import torch.distributed as dist

    states: list[Any] = [None] * world
    dist.all_gather_object(states, state)
    return states


def sum_over_ranks(values: tuple[int, ...], device: torch.device, world: int) -> tuple[int, ...]:
    """Integers summed over all ranks (e.g. what each rank's batch spent). A collective."""
    if world == 1:
        return values
    import torch.distributed as dist

    t = torch.tensor(values, dtype=torch.long, device=device)
    dist.all_reduce(t)
    return tuple(int(v) for v in t.tolist())


def broadcast_object(obj: Any, world: int) -> Any:
    """Rank 0's `obj` (any picklable object) on every rank; the other ranks' `obj` is ignored. A collective."""
    if world == 1:
        return obj
    import torch.distributed as dist

    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _Failed:
    """An exception raised on rank 0, carried to the other ranks by :func:`on_rank0`."""

    def __init__(self, error: BaseException) -> None:
        self.error = error


def on_rank0(fn: Callable[[], Any], rank: int, world: int) -> Any:
    """``fn()`` run on rank 0 only, its result returned on every rank. A collective: every rank calls it.

    If ``fn`` raises on rank 0, every rank raises it (as a ``RuntimeError`` naming it where the exception
    or the result cannot be pickled), so no rank is left waiting in the next collective.
    """
    out: Any = None
    if rank == 0:
        try:
            out = fn()
        except Exception as e:  # re-raised on every rank below
            if world == 1:
                raise
            out = _Failed(e)
        if world > 1:  # what cannot be sent is turned into an error that can, before anything is sent
            import pickle

            try:
                pickle.dumps(out)
            except Exception as e:  # noqa: BLE001
                what = (f"rank 0 raised {type(out.error).__name__}: {out.error}" if isinstance(out, _Failed)
                        else f"rank 0's result cannot be sent to the other ranks ({type(e).__name__}: {e})")
                out = _Failed(RuntimeError(what))
    out = broadcast_object(out, world)
    if isinstance(out, _Failed):
        raise out.error
    return out
