"""Windows of consecutive steps from an :class:`EpisodeStore`, as a torch ``Dataset``.

A window of ``n`` steps starting at step ``t`` of an episode of length ``L`` holds, for each
requested field, steps ``t .. t+n-1`` (``[n, *shape]``), and, for each *next field*, the
state at step ``t+n`` (``next_<field>``, ``[*shape]``): the state the n-step return
bootstraps from (the reference implementation handed back the current state instead).

The store keeps the observation *before* each action, not the one after the last step, so:

* a window with ``t + n <= L - 1`` has a real next state (``terminal`` is False);
* the window ending at the episode's last step (``t + n == L``) is kept only if that step
  ``terminated``: ``terminal`` is True, ``next_*`` are zeros and must not be bootstrapped
  from. If the episode was truncated (time-out) or never finished, that window is dropped,
  because the state needed to bootstrap it was never stored;
* windows never cross episodes, and an episode yields no window when it is too short
  (fewer than ``n + 1`` steps, or exactly ``n`` steps ending in a termination).

Without next fields (``next_fields=()``) every ``t`` with ``t + n <= L`` is a window.

Each item is a dict of tensors: the fields ``[n, *shape]``, ``next_<f>`` ``[*shape]``,
``terminal`` (bool: the window's last step ends the episode by termination), ``episode`` and
``start`` (int64). The dataset keeps only the store's path and its own episode count; it
reopens the store read-only in every DataLoader worker.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from anymal_ros.replay.store import EpisodeStore

#: Fields treated as the state by default (those present in the store are used).
STATE_FIELDS: tuple[str, ...] = ("proprio", "extero", "privileged", "instruction")


class WindowDataset(Dataset):
    """All valid windows of ``window`` consecutive steps; see the module docstring.

    Args:
        store: an open store or its path (the dataset opens its own read-only view).
        window: ``n``, steps per window.
        fields: fields returned per step (default: all).
        next_fields: fields whose state at ``t + n`` is returned (default: the stored ones
            of :data:`STATE_FIELDS`); ``()`` returns no next state. Needs a ``terminated``
            field in the store.
    """

    def __init__(
        self,
        store: EpisodeStore | str | Path,
        window: int,
        fields: Sequence[str] | None = None,
        next_fields: Sequence[str] | None = None,
    ) -> None:
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self.path = Path(store.path if isinstance(store, EpisodeStore) else store)
        self.window = window
        self._store: EpisodeStore | None = None
        self._pid = -1
        reader = self._reader()
        known = list(reader.fields)
        self.fields = list(known if fields is None else fields)
        if next_fields is None:
            next_fields = [f for f in STATE_FIELDS if f in known]
        self.next_fields = list(next_fields)
        unknown = [f for f in self.fields + self.next_fields if f not in known]
        if unknown:
            raise KeyError(f"unknown fields {unknown}; the store has {known}")
        if self.next_fields and "terminated" not in known:
            raise ValueError("next_fields need a 'terminated' field in the store")
        self._read_fields = list(dict.fromkeys(self.fields + self.next_fields))

        self.num_episodes = len(reader)
        lengths = reader.lengths
        self._last_terminated = np.zeros(len(lengths), dtype=bool)
        if "terminated" in known:
            for i, n in enumerate(lengths):
                last = reader.read(i, int(n) - 1, int(n), ["terminated"])["terminated"]
                self._last_terminated[i] = bool(last[0])
        if self.next_fields:
            # Starts 0 .. L-n-1 have a stored next state; start L-n only when terminal.
            ends_terminal = (lengths >= window) & self._last_terminated
            counts = np.maximum(lengths - window, 0) + ends_terminal
        else:
            counts = np.maximum(lengths - window + 1, 0)
        self.lengths = lengths
        self.counts = counts.astype(np.int64)
        self._ends = np.cumsum(self.counts)

    def _reader(self) -> EpisodeStore:
        # Re-open in each process: memory maps and file handles are per process.
        if self._store is None or self._pid != os.getpid():
            self._store = EpisodeStore.open(self.path, "r")
            self._pid = os.getpid()
        return self._store

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_store"], state["_pid"] = None, -1
        return state

    def __len__(self) -> int:
        return int(self._ends[-1]) if len(self._ends) else 0

    def locate(self, index: int) -> tuple[int, int]:
        """Window ``index`` -> (episode, start step)."""
        if not 0 <= index < len(self):
            raise IndexError(f"window {index} out of range; the dataset has {len(self)}")
        episode = int(np.searchsorted(self._ends, index, side="right"))
        before = int(self._ends[episode - 1]) if episode else 0
        return episode, index - before

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        episode, start = self.locate(int(index))
        n = self.window
        terminal = bool(start + n == self.lengths[episode] and self._last_terminated[episode])
        need_next = bool(self.next_fields) and not terminal
        steps = self._reader().read(episode, start, start + n + need_next, self._read_fields)
        item = {f: torch.from_numpy(steps[f][:n]) for f in self.fields}
        for f in self.next_fields:
            nxt = steps[f][n] if need_next else np.zeros_like(steps[f][0])
            item[f"next_{f}"] = torch.from_numpy(np.ascontiguousarray(nxt))
        item["terminal"] = torch.tensor(terminal)
        item["episode"] = torch.tensor(episode, dtype=torch.int64)
        item["start"] = torch.tensor(start, dtype=torch.int64)
        return item
