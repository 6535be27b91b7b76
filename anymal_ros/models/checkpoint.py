"""The one checkpoint format: weights (normalisers included, they are buffers), optimisers,
config, counters and RNG state in a single file.

Files are written atomically (:func:`anymal_ros.files.atomic_write`: temporary file in the
same directory, fsync, rename, fsync of the directory), so a run killed while saving, or a
power cut, leaves the previous checkpoint or the new one, never a broken file, and read with
``torch.load(weights_only=True)``, so opening a checkpoint never executes pickled code.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from anymal_ros.files import atomic_write

FORMAT = "anymal_ros.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(RuntimeError):
    """A checkpoint is missing, unreadable, of another format, or does not fit the model."""


def save_checkpoint(
    path: str | Path,
    *,
    models: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer] | None = None,
    config: Mapping[str, Any] | None = None,
    counters: Mapping[str, int | float] | None = None,
    extra: Mapping[str, Any] | None = None,
    rng: Mapping[str, Any] | None = None,
) -> Path:
    """Write a checkpoint atomically and return its path.

    ``config`` must be plain data (see ``anymal_ros.config.to_dict``); ``rng`` defaults to the
    global torch/numpy/python generator state (:func:`capture_rng_state`); ``extra`` holds any
    other weights-only-safe data (tensors, numbers, strings, lists, dicts).
    """
    path = Path(path)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "models": {name: m.state_dict() for name, m in models.items()},
        "optimizers": {name: o.state_dict() for name, o in (optimizers or {}).items()},
        "config": dict(config or {}),
        "counters": dict(counters or {}),
        "rng": dict(rng) if rng is not None else capture_rng_state(),
        "extra": dict(extra or {}),
    }
    return write_checkpoint_payload(path, payload)


def write_checkpoint_payload(path: str | Path, payload: Mapping[str, Any]) -> Path:
    """Write an already assembled checkpoint (as :func:`load_checkpoint` returns) atomically."""
    path = Path(path)
    with atomic_write(path) as tmp, open(tmp, "wb") as f:
        torch.save(dict(payload), f)
    return path


def load_checkpoint(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint written by :func:`save_checkpoint` (weights only, no code execution)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        data = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises several types for truncated/foreign files
        raise CheckpointError(f"{path}: not a readable checkpoint ({err})") from err
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise CheckpointError(f"{path}: not an anymal_ros checkpoint (no '{FORMAT}' marker)")
    if data.get("format_version") != FORMAT_VERSION:
        raise CheckpointError(
            f"{path}: checkpoint format version {data.get('format_version')} is not supported "
            f"(this code reads version {FORMAT_VERSION})"
        )
    return data


def average_checkpoints(paths: Sequence[str | Path]) -> dict[str, Any]:
    """One checkpoint whose model weights are the mean of those of ``paths``.

    A policy trained at a small learning rate wanders between updates; the mean of its recent
    checkpoints' weights (one run's neighbours, so they share a basin) sits nearer the middle
    of where it wanders. Every floating-point tensor of every model is averaged, normaliser
    statistics included; integer and boolean buffers (flags) come from the last file, as do
    the optimiser state, config, counters and RNG state, so training can resume from the
    result. ``extra["averaged_from"]`` lists the files and their iterations. Refuses fewer
    than two files, or files whose models differ in names, keys or shapes.
    """
    if len(paths) < 2:
        raise CheckpointError(f"averaging needs at least two checkpoints, got {len(paths)}")
    checkpoints = [load_checkpoint(p) for p in paths]
    last = checkpoints[-1]
    reference = _model_shapes(last)
    for path, ck in zip(paths, checkpoints, strict=True):
        shapes = _model_shapes(ck)
        if shapes != reference:
            raise CheckpointError(
                f"{path}: {_first_difference(shapes, reference)} against {paths[-1]}; only "
                "checkpoints of one model can be averaged"
            )
    models = {
        name: {
            key: torch.stack([ck["models"][name][key] for ck in checkpoints]).mean(0)
            if torch.is_floating_point(value)
            else value.clone()
            for key, value in state.items()
        }
        for name, state in last["models"].items()
    }
    return {
        **last,
        "models": models,
        "extra": {
            **last.get("extra", {}),
            "averaged_from": [
                {"path": str(p), "iteration": int(ck.get("counters", {}).get("iteration", -1))}
                for p, ck in zip(paths, checkpoints, strict=True)
            ],
        },
    }


def _model_shapes(checkpoint: Mapping[str, Any]) -> dict[str, dict[str, list[int]]]:
    """``{model: {key: shape}}`` of a loaded checkpoint."""
    return {
        name: {key: list(value.shape) for key, value in state.items()}
        for name, state in checkpoint["models"].items()
    }


def _first_difference(shapes: dict[str, dict], reference: dict[str, dict]) -> str:
    """Where two ``{model: {key: shape}}`` maps first differ, in words."""
    if set(shapes) != set(reference):
        return f"models {sorted(shapes)}, not {sorted(reference)}"
    for name, keys in reference.items():
        for key in [*keys, *(k for k in shapes[name] if k not in keys)]:  # file order
            if shapes[name].get(key) != keys.get(key):
                found, wanted = shapes[name].get(key, "missing"), keys.get(key, "missing")
                return f"model '{name}' {key} is {found}, not {wanted}"
    return "no difference"


def load_model_state(module: nn.Module, checkpoint: Mapping[str, Any], name: str) -> None:
    """Load ``checkpoint['models'][name]`` into ``module``, refusing any mismatch.

    The error lists missing and unexpected parameters and every shape that differs, e.g.
    ``policy_mlp.0.weight: checkpoint [256, 253] vs model [256, 250]``, so a checkpoint
    trained with other network sizes is never half-loaded.
    """
    models = checkpoint.get("models", {})
    if name not in models:
        raise CheckpointError(f"checkpoint has no model '{name}' (it has {sorted(models)})")
    saved = models[name]
    current = module.state_dict()
    problems = []
    missing = sorted(set(current) - set(saved))
    unexpected = sorted(set(saved) - set(current))
    if missing:
        problems.append(f"missing from checkpoint: {missing}")
    if unexpected:
        problems.append(f"not in model: {unexpected}")
    for key in sorted(set(saved) & set(current)):
        if tuple(saved[key].shape) != tuple(current[key].shape):
            problems.append(
                f"{key}: checkpoint {list(saved[key].shape)} vs model {list(current[key].shape)}"
            )
    if problems:
        raise CheckpointError(
            f"model '{name}' does not match the checkpoint: " + "; ".join(problems)
        )
    module.load_state_dict(saved)


def capture_rng_state() -> dict[str, Any]:
    """Global torch, numpy and python RNG state in a weights-only-loadable form."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()  # noqa: NPY002 (global state other code may use)
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": kind,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": list(random.getstate()[1]),
    }


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(  # noqa: NPY002
        (
            n["kind"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    random.setstate((3, tuple(state["python"]), None))


def generator_state(rng: np.random.Generator) -> dict[str, Any]:
    """State of a numpy Generator as weights-only-safe data (big ints become strings)."""
    return _ints_to_str(rng.bit_generator.state)


def set_generator_state(rng: np.random.Generator, state: Mapping[str, Any]) -> None:
    rng.bit_generator.state = _str_to_ints(state)


def _ints_to_str(obj: Any) -> Any:
    # PCG64 state holds 128-bit integers; keep them exact as decimal strings.
    if isinstance(obj, dict):
        return {k: _ints_to_str(v) for k, v in obj.items()}
    if isinstance(obj, int) and not isinstance(obj, bool):
        return f"int:{obj}"
    return obj


def _str_to_ints(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _str_to_ints(v) for k, v in obj.items()}
    if isinstance(obj, str) and obj.startswith("int:"):
        return int(obj[4:])
    return obj
