"""Experience store: episodes on disk as memory-mapped ``.npy`` arrays, crash-safe by design.

Layout of a store directory::

    schema.json              fields (shape, dtype), max_episode_length, chunk_episodes
    index.json               committed episodes, in commit order: [[slot, length], ...]
    writer.lock              flock'ed by the one process that may append
    chunks/00000/<field>.npy one file per field per chunk: [chunk_episodes, T, *shape]
    chunks/00001/...

Why per-chunk files. Storage is a pool of episode *slots*; chunk ``k`` holds slots
``[k*C, (k+1)*C)``. When every slot is taken the store grows by one chunk: new files, written
sparse (the OS allocates disk pages only when rows are written), so growth costs O(chunk)
and never copies or rewrites earlier data. A single growing memmap would have to be copied
(or truncated and re-headered) on each growth, touching committed episodes.

Why slots. A writer serving N parallel environments writes each step straight into the
slot its environment's episode owns (no RAM buffer of N x T steps). A slot becomes an
episode only when it is *committed*: its pages are flushed to disk, then ``index.json`` is
replaced atomically (temporary file, fsync, rename, fsync of the directory). A process killed
mid-episode therefore leaves ``index.json`` listing exactly the episodes committed before;
the half-written slot is unreferenced and is reused by the next writer. Discarded episodes
give their slot back the same way.

The index lists every episode, so a commit rewrites O(episodes) bytes (about 12 per episode:
a 10 000-episode store writes ~120 kB per commit, small next to the episode itself).
"""

from __future__ import annotations

import contextlib
import fcntl
import heapq
import json
import os
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from anymal_ros.contract import EXTERO_SHAPE, NUM_JOINTS, PRIVILEGED_DIM
from anymal_ros.files import atomic_write, fsync_dir

FORMAT = "anymal_ros.episode_store"
FORMAT_VERSION = 1
SCHEMA_FILE = "schema.json"
INDEX_FILE = "index.json"
LOCK_FILE = "writer.lock"
CHUNK_DIR = "chunks"


class StoreError(RuntimeError):
    """The store cannot do what was asked (locked, closed, wrong mode)."""


class CorruptStoreError(StoreError):
    """A file of the store is missing or does not match the schema or the index."""


class SchemaMismatchError(StoreError):
    """A store was reopened with a schema different from the one it was created with."""


@dataclass(frozen=True)
class FieldSpec:
    """Per-step shape and dtype of one stored field."""

    shape: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def make(cls, name: str, spec: Any) -> FieldSpec:
        if isinstance(spec, FieldSpec):
            return spec
        try:
            shape, dtype = spec
        except (TypeError, ValueError):
            raise ValueError(f"field {name!r}: expected (shape, dtype), got {spec!r}") from None
        shape = (shape,) if isinstance(shape, (int, np.integer)) else tuple(shape)
        if any(not isinstance(d, (int, np.integer)) or d < 1 for d in shape):
            raise ValueError(f"field {name!r}: shape must be positive integers, got {shape}")
        try:
            dt = np.dtype(dtype)
        except TypeError as err:
            raise ValueError(f"field {name!r}: unknown dtype {dtype!r}") from err
        if dt.kind not in "biuf":
            raise ValueError(f"field {name!r}: dtype must be bool, integer or float, got {dt}")
        return cls(tuple(int(d) for d in shape), dt)

    def to_json(self) -> dict[str, Any]:
        return {"shape": list(self.shape), "dtype": self.dtype.name}


def quadruped_fields(
    proprio_dim: int = 133,
    num_actions: int = NUM_JOINTS,
    embedding_dim: int | None = None,
) -> dict[str, FieldSpec]:
    """The standard field set for the quadruped (float32 observations, bool flags).

    ``action`` is what was executed (the student's action under DAgger), ``teacher_action``
    the teacher's label for the same state; ``instruction`` (an embedding per step) is added
    when ``embedding_dim`` is given.
    """
    f32 = np.dtype(np.float32)
    fields = {
        "proprio": FieldSpec((proprio_dim,), f32),
        "extero": FieldSpec(EXTERO_SHAPE, f32),
        "privileged": FieldSpec((PRIVILEGED_DIM,), f32),
        "action": FieldSpec((num_actions,), f32),
        "teacher_action": FieldSpec((num_actions,), f32),
        "reward": FieldSpec((), f32),
        "terminated": FieldSpec((), np.dtype(bool)),
        "truncated": FieldSpec((), np.dtype(bool)),
    }
    if embedding_dim is not None:
        fields["instruction"] = FieldSpec((embedding_dim,), f32)
    return fields


def _atomic_write_json(path: Path, data: Any, fsync: bool = True) -> None:
    """Replace ``path`` with ``data`` as JSON atomically (``anymal_ros.files.atomic_write``):
    readers see the old or the new content, never a mix."""
    with atomic_write(path, fsync=fsync) as tmp:
        tmp.write_text(json.dumps(data, separators=(",", ":")))


def _read_json(path: Path, what: str) -> Any:
    if not path.is_file():
        raise CorruptStoreError(f"{path}: {what} is missing; not an episode store or damaged")
    try:
        return json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as err:
        raise CorruptStoreError(f"{path}: {what} is not valid JSON: {err}") from err


class EpisodeStore:
    """Episodes ``[length, *shape]`` per field, memory-mapped from chunk files.

    Create with :meth:`create`, reopen with :meth:`open`. Episode ``i`` (commit order) is read
    with :meth:`episode` or :meth:`read`; new episodes are added through :meth:`writer`
    (one episode at a time) or :meth:`vec_writer` (one episode per parallel environment).
    A store opened with ``mode="r"`` pickles as a path and reopens read-only on the other side,
    so it can travel into DataLoader workers.
    """

    def __init__(self, path: Path, mode: Literal["r", "a"], fsync: bool = True) -> None:
        # Use create() / open(); this only loads and checks what is on disk.
        self.path = Path(path)
        self.mode = mode
        self.fsync = fsync
        self._lock_fd: int | None = None
        self._maps: dict[int, dict[str, np.memmap]] = {}
        self._closed = False
        schema = _read_json(self.path / SCHEMA_FILE, "schema")
        try:
            if schema["format"] != FORMAT:
                raise CorruptStoreError(f"{self.path}: not an episode store ({schema['format']})")
            if schema["version"] != FORMAT_VERSION:
                raise CorruptStoreError(
                    f"{self.path}: store format version {schema['version']}, "
                    f"this code reads {FORMAT_VERSION}"
                )
            self.fields = {
                n: FieldSpec.make(n, (s["shape"], s["dtype"])) for n, s in schema["fields"].items()
            }
            self.max_episode_length = int(schema["max_episode_length"])
            self.chunk_episodes = int(schema["chunk_episodes"])
        except (KeyError, TypeError, ValueError) as err:
            if isinstance(err, StoreError):
                raise
            raise CorruptStoreError(f"{self.path / SCHEMA_FILE}: malformed schema: {err}") from err
        if mode == "a":
            self._acquire_lock()
        self._episodes = np.zeros((0, 2), dtype=np.int64)
        self.refresh()
        # Slot allocation (writers only): free slots below capacity, lowest first.
        self._capacity = self._count_chunks() * self.chunk_episodes
        if mode == "a":
            self._remove_unfinished_chunks()
            used = set(self._episodes[:, 0].tolist())
            self._free = [s for s in range(self._capacity) if s not in used]
            heapq.heapify(self._free)

    # --- construction -----------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        path: str | Path,
        fields: Mapping[str, Any],
        max_episode_length: int,
        chunk_episodes: int = 64,
        exist_ok: bool = False,
        fsync: bool = True,
    ) -> EpisodeStore:
        """Create a store at ``path`` (a new directory) and open it for appending.

        Args:
            fields: name -> ``(shape, dtype)`` or :class:`FieldSpec`; shape ``()`` for scalars.
            max_episode_length: time axis ``T`` of every slot; longer episodes are refused.
            chunk_episodes: episodes per chunk file (growth step).
            exist_ok: if a store already exists at ``path`` with the same schema, open it for
                appending (resuming a job); a different schema raises SchemaMismatchError.
            fsync: flush each committed episode and the index to the disk before the commit
                returns, so a power cut keeps it too. ``False`` still keeps every committed
                episode when the *process* dies (the page cache survives it) and writes
                several times faster; use it for data that can be regenerated.
        """
        path = Path(path)
        specs = {str(n): FieldSpec.make(str(n), s) for n, s in fields.items()}
        if not specs:
            raise ValueError("a store needs at least one field")
        for name in specs:
            if not name.isidentifier():
                raise ValueError(f"field name {name!r} must be a Python identifier")
        if max_episode_length < 1 or chunk_episodes < 1:
            raise ValueError(
                f"max_episode_length and chunk_episodes must be >= 1, got "
                f"{max_episode_length}, {chunk_episodes}"
            )
        if (path / SCHEMA_FILE).exists():
            if not exist_ok:
                raise FileExistsError(f"{path}: a store already exists (pass exist_ok=True)")
            return cls.open(
                path, "a", fields=specs, max_episode_length=max_episode_length, fsync=fsync
            )
        if path.exists() and any(path.iterdir()):
            raise FileExistsError(f"{path}: directory exists and is not an episode store")
        path.mkdir(parents=True, exist_ok=True)
        (path / CHUNK_DIR).mkdir(exist_ok=True)
        _atomic_write_json(path / INDEX_FILE, {"episodes": []})
        schema = {
            "format": FORMAT,
            "version": FORMAT_VERSION,
            "max_episode_length": int(max_episode_length),
            "chunk_episodes": int(chunk_episodes),
            "fields": {n: s.to_json() for n, s in specs.items()},
        }
        # The schema is written last: its presence marks a complete store.
        _atomic_write_json(path / SCHEMA_FILE, schema)
        return cls(path, "a", fsync=fsync)

    @classmethod
    def open(
        cls,
        path: str | Path,
        mode: Literal["r", "a"] = "r",
        fields: Mapping[str, Any] | None = None,
        max_episode_length: int | None = None,
        fsync: bool = True,
    ) -> EpisodeStore:
        """Open an existing store; ``mode="a"`` takes the writer lock and allows appending.

        ``fields`` / ``max_episode_length``, when given, must equal the stored schema
        (SchemaMismatchError lists every difference). ``fsync``: see :meth:`create`.
        """
        if mode not in ("r", "a"):
            raise ValueError(f"mode must be 'r' or 'a', got {mode!r}")
        path = Path(path)
        if not path.is_dir():
            raise FileNotFoundError(f"{path}: no episode store here")
        store = cls(path, mode, fsync=fsync)
        try:
            store._check_schema(fields, max_episode_length)
        except BaseException:
            store.close()
            raise
        return store

    def _check_schema(self, fields: Mapping[str, Any] | None, max_len: int | None) -> None:
        problems = []
        if max_len is not None and max_len != self.max_episode_length:
            problems.append(f"max_episode_length {max_len} != stored {self.max_episode_length}")
        if fields is not None:
            want = {str(n): FieldSpec.make(str(n), s) for n, s in fields.items()}
            for name in sorted(set(want) | set(self.fields)):
                if name not in self.fields:
                    problems.append(f"field {name!r} is not in the store")
                elif name not in want:
                    problems.append(f"stored field {name!r} was not asked for")
                elif want[name] != self.fields[name]:
                    w, s = want[name], self.fields[name]
                    problems.append(
                        f"field {name!r}: asked {w.shape} {w.dtype}, stored {s.shape} {s.dtype}"
                    )
        if problems:
            raise SchemaMismatchError(f"{self.path}: schema mismatch: " + "; ".join(problems))

    def __reduce__(self):
        # Memory maps and the writer lock do not travel: the copy reopens read-only.
        return (EpisodeStore.open, (str(self.path), "r"))

    # --- reading ----------------------------------------------------------------------------

    def refresh(self) -> int:
        """Re-read the index (a reader sees episodes committed since it opened); returns len."""
        self._check_open()
        index = _read_json(self.path / INDEX_FILE, "index")
        try:
            episodes = np.asarray(index["episodes"], dtype=np.int64).reshape(-1, 2)
        except (KeyError, TypeError, ValueError) as err:
            raise CorruptStoreError(f"{self.path / INDEX_FILE}: malformed index: {err}") from err
        slots, lengths = episodes[:, 0], episodes[:, 1]
        if len(episodes) and (
            lengths.min() < 1
            or lengths.max() > self.max_episode_length
            or slots.min() < 0
            or len(np.unique(slots)) != len(slots)
        ):
            raise CorruptStoreError(f"{self.path / INDEX_FILE}: invalid slots or lengths")
        if len(episodes) and slots.max() >= self._count_chunks() * self.chunk_episodes:
            raise CorruptStoreError(
                f"{self.path}: index refers to slot {slots.max()} but chunk files are missing"
            )
        self._episodes = episodes
        return len(episodes)

    def __len__(self) -> int:
        return len(self._episodes)

    @property
    def lengths(self) -> np.ndarray:
        """``[num_episodes]`` number of steps of each committed episode."""
        return self._episodes[:, 1].copy()

    @property
    def num_steps(self) -> int:
        return int(self._episodes[:, 1].sum())

    def episode(self, i: int, fields: Iterable[str] | None = None) -> dict[str, np.ndarray]:
        """Episode ``i`` as ``{field: [length, *shape]}`` (copies, safe to keep)."""
        return self.read(i, 0, None, fields)

    def read(
        self, i: int, start: int = 0, stop: int | None = None, fields: Iterable[str] | None = None
    ) -> dict[str, np.ndarray]:
        """Steps ``start:stop`` of episode ``i`` as ``{field: [stop - start, *shape]}``."""
        self._check_open()
        n = len(self._episodes)
        if not -n <= i < n:
            raise IndexError(f"episode {i} out of range; the store has {n} episodes")
        slot, length = (int(v) for v in self._episodes[i])
        stop = length if stop is None else stop
        if not 0 <= start <= stop <= length:
            raise IndexError(
                f"steps {start}:{stop} out of range for episode {i} of length {length}"
            )
        names = self._field_names(fields)
        maps = self._chunk(slot // self.chunk_episodes)
        row = slot % self.chunk_episodes
        return {name: np.array(maps[name][row, start:stop]) for name in names}

    def _field_names(self, fields: Iterable[str] | None) -> list[str]:
        if fields is None:
            return list(self.fields)
        names = list(fields)
        unknown = [f for f in names if f not in self.fields]
        if unknown:
            raise KeyError(f"unknown fields {unknown}; the store has {list(self.fields)}")
        return names

    # --- chunk files ------------------------------------------------------------------------

    def _chunk_dir(self, k: int) -> Path:
        return self.path / CHUNK_DIR / f"{k:05d}"

    def _count_chunks(self) -> int:
        k = 0
        while self._chunk_dir(k).is_dir():
            k += 1
        return k

    def _chunk(self, k: int) -> dict[str, np.memmap]:
        maps = self._maps.get(k)
        if maps is not None:
            return maps
        maps = {}
        want_prefix = (self.chunk_episodes, self.max_episode_length)
        for name, spec in self.fields.items():
            file = self._chunk_dir(k) / f"{name}.npy"
            try:
                arr = np.load(file, mmap_mode="r" if self.mode == "r" else "r+")
            except (OSError, ValueError) as err:
                raise CorruptStoreError(f"{file}: cannot map chunk file: {err}") from err
            if arr.shape != want_prefix + spec.shape or arr.dtype != spec.dtype:
                raise CorruptStoreError(
                    f"{file}: holds {arr.shape} {arr.dtype}, schema says "
                    f"{want_prefix + spec.shape} {spec.dtype}"
                )
            maps[name] = arr
        self._maps[k] = maps
        return maps

    def _remove_unfinished_chunks(self) -> None:
        for leftover in (self.path / CHUNK_DIR).glob("*.tmp"):
            shutil.rmtree(leftover)

    def _grow(self) -> None:
        """Add one chunk of slots: files built in a temporary directory, then renamed."""
        k = self._capacity // self.chunk_episodes
        final = self._chunk_dir(k)
        tmp = final.with_name(final.name + ".tmp")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        for name, spec in self.fields.items():
            shape = (self.chunk_episodes, self.max_episode_length, *spec.shape)
            # open_memmap writes the header and sizes the file sparsely (no data pages yet).
            mm = np.lib.format.open_memmap(tmp / f"{name}.npy", "w+", spec.dtype, shape)
            mm.flush()
            del mm
            with open(tmp / f"{name}.npy", "rb+") as f:
                os.fsync(f.fileno())
        os.rename(tmp, final)
        fsync_dir(final.parent)
        for s in range(self._capacity, self._capacity + self.chunk_episodes):
            heapq.heappush(self._free, s)
        self._capacity += self.chunk_episodes

    # --- writing (mode "a") -----------------------------------------------------------------

    def writer(self) -> EpisodeWriter:
        """A writer that builds one episode at a time."""
        return EpisodeWriter(self)

    def vec_writer(self, num_envs: int) -> VecEpisodeWriter:
        """A writer with one episode in flight per environment (``add_step`` takes ``[N, ...]``)."""
        return VecEpisodeWriter(self, num_envs)

    def _check_writable(self) -> None:
        self._check_open()
        if self.mode != "a":
            raise StoreError(f"{self.path}: opened read-only; open with mode='a' to append")

    def _allocate_slot(self) -> int:
        if not self._free:
            self._grow()
        return heapq.heappop(self._free)

    def _release_slot(self, slot: int) -> None:
        heapq.heappush(self._free, slot)

    def _slot_view(self, slot: int) -> tuple[dict[str, np.memmap], int]:
        return self._chunk(slot // self.chunk_episodes), slot % self.chunk_episodes

    def _commit(self, slots_lengths: Sequence[tuple[int, int]]) -> list[int]:
        """Flush the slots' pages, then publish them in the index atomically."""
        if self.fsync:
            for k in sorted({s // self.chunk_episodes for s, _ in slots_lengths}):
                for mm in self._chunk(k).values():
                    mm.flush()  # msync: the data is on disk before the index names it
        first = len(self._episodes)
        new = np.asarray(slots_lengths, dtype=np.int64).reshape(-1, 2)
        episodes = np.concatenate([self._episodes, new])
        _atomic_write_json(self.path / INDEX_FILE, {"episodes": episodes.tolist()}, self.fsync)
        self._episodes = episodes
        return list(range(first, len(episodes)))

    # --- lifetime ---------------------------------------------------------------------------

    def _acquire_lock(self) -> None:
        fd = os.open(self.path / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise StoreError(
                f"{self.path}: another writer holds the store; open it with mode='r' to read"
            ) from None
        self._lock_fd = fd

    def _check_open(self) -> None:
        if self._closed:
            raise StoreError(f"{self.path}: store is closed")

    def close(self) -> None:
        """Drop the memory maps and release the writer lock (in-flight episodes are lost)."""
        if self._closed:
            return
        for maps in self._maps.values():
            for mm in maps.values():
                if self.mode == "a":
                    mm.flush()
        self._maps.clear()
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None
        self._closed = True

    def __enter__(self) -> EpisodeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.close()

    def __repr__(self) -> str:
        return (
            f"EpisodeStore({str(self.path)!r}, mode={self.mode!r}, episodes={len(self)}, "
            f"fields={list(self.fields)}, max_episode_length={self.max_episode_length})"
        )


class VecEpisodeWriter:
    """One episode in flight per environment, written straight into its slot on disk.

    ``add_step(**arrays)`` takes ``[N, *shape]`` per field (every field, every step);
    ``commit(env_ids)`` publishes those environments' episodes, ``discard(env_ids)`` drops
    them. An environment's next ``add_step`` starts its new episode.
    """

    def __init__(self, store: EpisodeStore, num_envs: int, check_finite: bool = True) -> None:
        store._check_writable()
        if num_envs < 1:
            raise ValueError(f"num_envs must be >= 1, got {num_envs}")
        self.store = store
        self.num_envs = num_envs
        self.check_finite = check_finite
        self._slot = np.full(num_envs, -1, dtype=np.int64)  # -1: no episode in flight
        self._steps = np.zeros(num_envs, dtype=np.int64)

    @property
    def steps(self) -> np.ndarray:
        """``[N]`` steps of each environment's episode in flight."""
        return self._steps.copy()

    def _validate(self, arrays: Mapping[str, Any], lead: tuple[int, ...]) -> dict[str, np.ndarray]:
        fields = self.store.fields
        unknown = sorted(set(arrays) - set(fields))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; the store has {list(fields)}")
        missing = [n for n in fields if n not in arrays]
        if missing:
            raise ValueError(f"missing fields {missing}: every step must give every field")
        out = {}
        for name, spec in fields.items():
            arr = np.asarray(arrays[name])
            want = lead + spec.shape
            if arr.shape != want:
                raise ValueError(f"field {name!r}: expected shape {want}, got {arr.shape}")
            if not np.can_cast(arr.dtype, spec.dtype, "same_kind"):
                raise ValueError(f"field {name!r}: cannot store {arr.dtype} as {spec.dtype}")
            if self.check_finite and arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
                raise ValueError(f"field {name!r}: contains NaN or inf")
            out[name] = arr
        return out

    def add_step(self, **arrays: Any) -> None:
        """Append one step ``[N, *shape]`` per field to every environment's episode."""
        self.store._check_writable()
        data = self._validate(arrays, (self.num_envs,))
        full = np.flatnonzero(self._steps >= self.store.max_episode_length)
        if len(full):
            raise ValueError(
                f"episodes of envs {full.tolist()} already have max_episode_length="
                f"{self.store.max_episode_length} steps; commit or discard them first"
            )
        for env in np.flatnonzero(self._slot < 0):
            self._slot[env] = self.store._allocate_slot()
        chunk_of = self._slot // self.store.chunk_episodes
        for k in np.unique(chunk_of):
            envs = np.flatnonzero(chunk_of == k)
            maps, _ = self.store._slot_view(int(k) * self.store.chunk_episodes)
            rows = self._slot[envs] % self.store.chunk_episodes
            t = self._steps[envs]
            for name, arr in data.items():
                maps[name][rows, t] = arr[envs]
        self._steps += 1

    def _write_block(self, env: int, data: Mapping[str, np.ndarray], k: int) -> None:
        """Append ``k`` consecutive steps ``[k, *shape]`` to one environment's episode."""
        t0 = int(self._steps[env])
        if t0 + k > self.store.max_episode_length:
            raise ValueError(
                f"episode would have {t0 + k} steps, more than max_episode_length="
                f"{self.store.max_episode_length}"
            )
        if k == 0:
            return
        if self._slot[env] < 0:
            self._slot[env] = self.store._allocate_slot()
        maps, row = self.store._slot_view(int(self._slot[env]))
        for name, arr in data.items():
            maps[name][row, t0 : t0 + k] = arr
        self._steps[env] += k

    def _env_ids(self, env_ids: Any) -> list[int]:
        ids = np.asarray(env_ids)
        if ids.dtype == bool:
            if ids.shape != (self.num_envs,):
                raise ValueError(f"boolean env mask must have shape ({self.num_envs},)")
            ids = np.flatnonzero(ids)
        ids = ids.reshape(-1)
        if ids.size and (not np.issubdtype(ids.dtype, np.integer)):
            raise ValueError(f"env_ids must be integers, got {ids.dtype}")
        if ids.size and (ids.min() < 0 or ids.max() >= self.num_envs):
            raise ValueError(f"env_ids out of range [0, {self.num_envs}): {ids.tolist()}")
        return [int(i) for i in ids]

    def commit(self, env_ids: Any) -> list[int]:
        """Publish the episodes in flight of ``env_ids``; returns their episode indices.

        Environments with no step in flight are refused (an empty episode is a bug).
        """
        self.store._check_writable()
        ids = self._env_ids(env_ids)
        empty = [i for i in ids if self._steps[i] == 0]
        if empty:
            raise ValueError(f"envs {empty} have no steps to commit")
        if len(set(ids)) != len(ids):
            raise ValueError(f"env_ids repeat: {ids}")
        pairs = [(int(self._slot[i]), int(self._steps[i])) for i in ids]
        indices = self.store._commit(pairs)
        self._slot[ids] = -1
        self._steps[ids] = 0
        return indices

    def discard(self, env_ids: Any) -> None:
        """Drop the episodes in flight of ``env_ids``; their slots are reused."""
        for i in self._env_ids(env_ids):
            if self._slot[i] >= 0:
                self.store._release_slot(int(self._slot[i]))
            self._slot[i] = -1
            self._steps[i] = 0


class EpisodeWriter:
    """Builds one episode at a time: ``add_step`` / ``add_steps``, then ``commit_episode``."""

    def __init__(self, store: EpisodeStore, check_finite: bool = True) -> None:
        self._vec = VecEpisodeWriter(store, 1, check_finite)

    @property
    def store(self) -> EpisodeStore:
        return self._vec.store

    def __len__(self) -> int:
        """Steps of the episode in flight."""
        return int(self._vec._steps[0])

    def add_step(self, **arrays: Any) -> None:
        """Append one step: ``field=[*shape]`` for every field."""
        self.store._check_writable()
        data = self._vec._validate(arrays, ())
        self._vec._write_block(0, {n: a[None] for n, a in data.items()}, 1)

    def add_steps(self, **arrays: Any) -> None:
        """Append ``k`` steps at once: ``field=[k, *shape]`` for every field (same ``k``)."""
        self.store._check_writable()
        ks = {n: np.shape(a)[0] if np.ndim(a) else None for n, a in arrays.items()}
        if len(set(ks.values())) > 1 or None in ks.values():
            raise ValueError(f"add_steps needs the same leading length k for every field: {ks}")
        k = next(iter(ks.values()), 0)
        data = self._vec._validate(arrays, (k,))
        self._vec._write_block(0, data, k)

    def commit_episode(self) -> int:
        """Publish the episode in flight; returns its index in the store."""
        if len(self) == 0:
            raise ValueError("no steps to commit: add_step() first")
        return self._vec.commit([0])[0]

    def discard_episode(self) -> None:
        """Drop the episode in flight."""
        self._vec.discard([0])

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        # Leaving the block without commit_episode() drops the half-built episode.
        self.discard_episode()
