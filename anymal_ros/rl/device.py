"""Where the learner runs: ``runner.device`` resolved in one place, and the host-to-device
transfer of one environment step.

MuJoCo always runs on the CPU (in this process or in simulator workers); only the networks,
their optimisers and the rollout storage move to a GPU. Each control step then crosses the
bus twice: the actions go to the simulator (one device-to-host copy) and the step's results
come back. :class:`HostToDevice` sends those results as one packed copy from pinned memory
instead of one small copy per observation key, reward and flag.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
from torch import Tensor


def resolve_device(name: str, local_rank: int | None = None) -> torch.device:
    """The torch device named by ``runner.device`` (``cpu``, ``cuda``, ``cuda:N``).

    Under ``torchrun`` a bare ``cuda`` means this process's own GPU, ``cuda:LOCAL_RANK``.
    Raises a ``ValueError`` for a name torch does not know and a ``RuntimeError`` when a CUDA
    device is asked for on a machine without one (nothing in this package needs a GPU).
    """
    try:
        device = torch.device(name)
    except RuntimeError as err:
        raise ValueError(f"runner.device {name!r} is not a torch device ({err})") from err
    if device.type == "cpu":
        return device
    if device.type != "cuda":
        raise ValueError(f"runner.device must be 'cpu', 'cuda' or 'cuda:N', got {name!r}")
    if not torch.cuda.is_available():
        built = torch.version.cuda
        why = (
            f"torch {torch.__version__} is built with CUDA {built} but sees no GPU"
            if built
            else f"torch {torch.__version__} is a CPU-only build"
        )
        raise RuntimeError(
            f"runner.device is {name!r} but no CUDA GPU is available ({why}); "
            "train with runner.device=cpu on this machine"
        )
    if local_rank is None:
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    index = device.index if device.index is not None else local_rank
    if index >= torch.cuda.device_count():
        raise RuntimeError(
            f"runner.device {name!r} needs GPU {index} but this machine has "
            f"{torch.cuda.device_count()} (torchrun: --nproc-per-node at most the GPU count)"
        )
    return torch.device("cuda", index)


class HostToDevice:
    """Moves a step's host data ``{name: array or tensor}`` to ``device`` in one copy.

    On the CPU it only wraps the arrays as tensors (a copy, as the environments reuse their
    buffers). Elsewhere every entry is written into one float32 staging buffer (pinned, so the
    copy is asynchronous), sent with a single ``to(device)``, and split back into views cast
    to the requested dtype. Booleans and integers below 2**24 survive float32 exactly, which
    covers flags, episode lengths and categorical actions. ``packed=True`` forces the packed
    path on the CPU (how the tests cover it on a machine without a GPU).
    """

    def __init__(self, device: torch.device | str, packed: bool | None = None) -> None:
        self.device = torch.device(device)
        self.packed = self.device.type != "cpu" if packed is None else packed
        self.pin = self.device.type == "cuda"
        self._staging: Tensor | None = None

    def __call__(
        self, items: Mapping[str, Any], dtypes: Mapping[str, torch.dtype] | None = None
    ) -> dict[str, Tensor]:
        """``items``: host arrays/tensors; ``dtypes``: per-name dtype (default float32)."""
        dtypes = dtypes or {}
        if not self.packed:
            return {
                k: torch.tensor(
                    np.asarray(v.detach().cpu() if isinstance(v, Tensor) else v),
                    dtype=dtypes.get(k, torch.float32),
                    device=self.device,
                )
                for k, v in items.items()
            }
        arrays = {k: _host(v) for k, v in items.items()}
        sizes = [int(a.size) for a in arrays.values()]
        total = sum(sizes)
        staging = self._staging_buffer(total)
        offset = 0
        for a, n in zip(arrays.values(), sizes, strict=True):
            staging[offset : offset + n].copy_(torch.from_numpy(a.reshape(-1)))
            offset += n
        # copy=True: on the CPU ``to`` would return the staging buffer itself, reused next step.
        sent = staging[:total].to(self.device, non_blocking=self.pin, copy=True)
        out: dict[str, Tensor] = {}
        offset = 0
        for (k, a), n in zip(arrays.items(), sizes, strict=True):
            view = sent[offset : offset + n].reshape(a.shape)
            out[k] = view.to(dtypes.get(k, torch.float32))
            offset += n
        return out

    def _staging_buffer(self, total: int) -> Tensor:
        # The buffer is reused while the copy from it may still be running on the GPU: wait for
        # the previous step's copy first (cheap; it finished long before the next step).
        if self.pin:
            torch.cuda.current_stream(self.device).synchronize()
        if self._staging is None or self._staging.numel() < total:
            self._staging = torch.empty(total, dtype=torch.float32, pin_memory=self.pin)
        return self._staging


def _host(x: Any) -> np.ndarray:
    """A float32-convertible numpy array of a host array or CPU tensor."""
    if isinstance(x, Tensor):
        x = x.detach().cpu().numpy()
    a = np.asarray(x)
    return a.astype(np.float32) if a.dtype != np.float32 else a
