"""Episode store: round trips, growth, reopening, crash safety (SIGKILL) and clear errors."""

import json
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from anymal_ros.replay.store import (
    CorruptStoreError,
    EpisodeStore,
    SchemaMismatchError,
    StoreError,
    quadruped_fields,
)

FIELDS = {
    "obs": ((3,), np.float32),
    "grid": ((2, 4), np.float32),
    "action": (2, "float32"),
    "reward": ((), np.float32),
    "terminated": ((), bool),
    "step": ((), np.int64),
}


def make_episode(seed: int, length: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    terminated = np.zeros(length, bool)
    terminated[-1] = seed % 2 == 0
    return {
        "obs": rng.normal(size=(length, 3)).astype(np.float32),
        "grid": rng.normal(size=(length, 2, 4)).astype(np.float32),
        "action": rng.normal(size=(length, 2)).astype(np.float32),
        "reward": rng.normal(size=length).astype(np.float32),
        "terminated": terminated,
        "step": np.arange(length, dtype=np.int64) + 1000 * seed,
    }


def assert_episode_equal(got: dict, want: dict) -> None:
    assert set(got) == set(want)
    for name in want:
        assert got[name].dtype == want[name].dtype, name
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)


def write(store: EpisodeStore, episode: dict, stepwise: bool = False) -> int:
    w = store.writer()
    if stepwise:
        for t in range(len(episode["obs"])):
            w.add_step(**{k: v[t] for k, v in episode.items()})
    else:
        w.add_steps(**episode)
    return w.commit_episode()


def test_round_trip_grows_in_chunks_and_reads_back_exactly(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FIELDS, max_episode_length=20, chunk_episodes=3)
    episodes = [make_episode(i, length=5 + 2 * i) for i in range(7)]
    for i, ep in enumerate(episodes):
        assert write(store, ep, stepwise=i % 2 == 0) == i
    assert len(store) == 7
    np.testing.assert_array_equal(store.lengths, [5 + 2 * i for i in range(7)])
    assert store.num_steps == sum(5 + 2 * i for i in range(7))
    # Grown one chunk at a time: 7 episodes in chunks of 3 -> 3 chunk directories.
    assert sorted(p.name for p in (tmp_path / "s" / "chunks").iterdir()) == [
        "00000",
        "00001",
        "00002",
    ]
    for i, ep in enumerate(episodes):
        assert_episode_equal(store.episode(i), ep)
    part = store.read(3, 2, 6, fields=["obs", "step"])
    np.testing.assert_array_equal(part["step"], episodes[3]["step"][2:6])
    assert set(part) == {"obs", "step"}
    store.close()
    reader = EpisodeStore.open(tmp_path / "s")
    assert_episode_equal(reader.episode(-1), episodes[-1])
    schema = json.loads((tmp_path / "s" / "schema.json").read_text())
    assert schema["fields"]["grid"] == {"shape": [2, 4], "dtype": "float32"}


def test_reopen_appends_and_a_reader_sees_new_commits_after_refresh(tmp_path):
    with EpisodeStore.create(tmp_path / "s", FIELDS, 10, chunk_episodes=2) as store:
        write(store, make_episode(0, 4))
    reader = EpisodeStore.open(tmp_path / "s", "r")
    assert len(reader) == 1
    store = EpisodeStore.create(tmp_path / "s", FIELDS, 10, chunk_episodes=2, exist_ok=True)
    assert len(store) == 1
    for i in range(1, 4):
        write(store, make_episode(i, 3 + i))
    assert len(reader) == 1
    assert reader.refresh() == 4
    for i in range(4):
        assert_episode_equal(reader.episode(i), make_episode(i, 4 if i == 0 else 3 + i))


def test_vec_writer_interleaves_episodes_and_discarded_slots_are_reused(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FIELDS, 8, chunk_episodes=2)
    n = 3
    w = store.vec_writer(n)
    eps = [make_episode(10 + e, 8) for e in range(n)]
    for t in range(5):
        w.add_step(**{k: np.stack([ep[k][t] for ep in eps]) for k in FIELDS})
    np.testing.assert_array_equal(w.steps, [5, 5, 5])
    assert w.commit([2]) == [0]
    w.discard([1])
    for t in range(5, 8):  # env 2 starts a new episode; env 0 continues
        w.add_step(**{k: np.stack([ep[k][t] for ep in eps]) for k in FIELDS})
    assert w.commit(np.array([False, False, True])) == [1]
    assert w.commit([0]) == [2]
    got = [store.episode(i) for i in range(3)]
    assert_episode_equal(got[0], {k: v[:5] for k, v in eps[2].items()})
    assert_episode_equal(got[1], {k: v[5:8] for k, v in eps[2].items()})
    assert_episode_equal(got[2], eps[0])
    # 3 episodes in flight at once need 3 slots (2 chunks); the discarded slot was reused.
    assert len(list((tmp_path / "s" / "chunks").iterdir())) == 2
    with pytest.raises(ValueError, match="max_episode_length=8"):
        for _ in range(9):
            w.add_step(**{k: np.stack([ep[k][0] for ep in eps]) for k in FIELDS})


CHILD = textwrap.dedent(
    """
    import sys, time
    import numpy as np
    sys.path.insert(0, {root!r})
    from test_episode_store import FIELDS, make_episode
    from anymal_ros.replay.store import EpisodeStore

    store = EpisodeStore.create(
        {path!r}, FIELDS, max_episode_length=40, chunk_episodes=2, fsync={fsync}
    )
    w = store.writer()
    i = 0
    while True:
        ep = make_episode(i, 20 + i % 7)
        for t in range(len(ep["obs"])):
            w.add_step(**{{k: v[t] for k, v in ep.items()}})
            if t == 10 and i >= {wait_for}:
                print("mid-episode", i, flush=True)
                time.sleep(60)
        w.commit_episode()
        i += 1
    """
)


@pytest.mark.parametrize(("wait_for", "fsync"), [(0, True), (5, True), (5, False)])
def test_sigkill_mid_episode_keeps_committed_episodes_and_store_stays_appendable(
    tmp_path, wait_for, fsync
):
    path = tmp_path / "s"
    root = str(Path(__file__).parent)
    code = CHILD.format(root=root, path=str(path), wait_for=wait_for, fsync=fsync)
    child = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith("mid-episode"), line
        # The child holds the writer lock while alive.
        with pytest.raises(StoreError, match="another writer"):
            EpisodeStore.open(path, "a")
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
        child.stdout.close()
    assert child.returncode == -signal.SIGKILL
    store = EpisodeStore.open(path, "a", fields=FIELDS, max_episode_length=40)
    assert len(store) == wait_for
    for i in range(wait_for):
        assert_episode_equal(store.episode(i), make_episode(i, 20 + i % 7))
    # Appending reuses the dead writer's half-written slot and grows past it.
    for i in range(wait_for, wait_for + 3):
        assert write(store, make_episode(100 + i, 6)) == i
    store.close()
    reader = EpisodeStore.open(path)
    assert len(reader) == wait_for + 3
    assert_episode_equal(reader.episode(wait_for), make_episode(100 + wait_for, 6))


def test_a_store_pickles_as_a_read_only_reopen(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FIELDS, 10)
    write(store, make_episode(0, 4))
    copy = pickle.loads(pickle.dumps(store))
    assert copy.mode == "r" and len(copy) == 1
    assert_episode_equal(copy.episode(0), make_episode(0, 4))
    with pytest.raises(StoreError, match="read-only"):
        copy.writer()


def test_quadruped_field_set(tmp_path):
    fields = quadruped_fields(embedding_dim=16)
    assert fields["proprio"].shape == (133,) and fields["extero"].shape == (4, 52)
    assert fields["privileged"].shape == (50,) and fields["teacher_action"].shape == (12,)
    assert fields["instruction"].shape == (16,) and fields["terminated"].dtype == bool
    assert "instruction" not in quadruped_fields()
    store = EpisodeStore.create(tmp_path / "q", fields, 5)
    w = store.writer()
    w.add_step(**{n: np.zeros(s.shape, s.dtype) for n, s in fields.items()})
    assert w.commit_episode() == 0


def test_bad_writes_are_refused_with_clear_errors(tmp_path):
    store = EpisodeStore.create(tmp_path / "s", FIELDS, max_episode_length=6)
    w = store.writer()
    ep = make_episode(0, 3)
    step = {k: v[0] for k, v in ep.items()}
    with pytest.raises(ValueError, match=r"unknown fields \['obz'\]"):
        w.add_step(**step, obz=np.zeros(3))
    with pytest.raises(ValueError, match=r"missing fields \['grid'\]"):
        w.add_step(**{k: v for k, v in step.items() if k != "grid"})
    with pytest.raises(ValueError, match=r"'obs': expected shape \(3,\), got \(4,\)"):
        w.add_step(**{**step, "obs": np.zeros(4)})
    with pytest.raises(ValueError, match="'step': cannot store float64 as int64"):
        w.add_step(**{**step, "step": 1.5})
    with pytest.raises(ValueError, match="'reward': contains NaN"):
        w.add_step(**{**step, "reward": np.nan})
    with pytest.raises(ValueError, match="same leading length"):
        w.add_steps(**{**ep, "obs": ep["obs"][:2]})
    assert len(w) == 0  # nothing half-written by the refused calls
    with pytest.raises(ValueError, match="no steps to commit"):
        w.commit_episode()
    w.add_steps(**make_episode(1, 5))
    with pytest.raises(ValueError, match="more than max_episode_length=6"):
        w.add_steps(**ep)
    w.discard_episode()
    assert len(store) == 0
    with pytest.raises(IndexError, match="store has 0 episodes"):
        store.episode(0)
    write(store, ep)
    with pytest.raises(IndexError, match="out of range for episode 0 of length 3"):
        store.read(0, 1, 4)
    with pytest.raises(KeyError, match="unknown fields"):
        store.episode(0, fields=["nope"])


def test_bad_stores_are_refused_with_clear_errors(tmp_path):
    path = tmp_path / "s"
    with EpisodeStore.create(path, FIELDS, 10, chunk_episodes=2) as store:
        for i in range(3):
            write(store, make_episode(i, 4))
    with pytest.raises(FileExistsError, match="exist_ok"):
        EpisodeStore.create(path, FIELDS, 10)
    with pytest.raises(SchemaMismatchError, match=r"field 'obs': asked \(4,\) float32"):
        EpisodeStore.create(path, {**FIELDS, "obs": ((4,), np.float32)}, 10, exist_ok=True)
    with pytest.raises(SchemaMismatchError, match="max_episode_length 11 != stored 10"):
        EpisodeStore.open(path, "a", max_episode_length=11)
    with pytest.raises(SchemaMismatchError, match="'text' is not in the store"):
        EpisodeStore.open(path, "r", fields={**FIELDS, "text": ((8,), np.float32)})
    EpisodeStore.open(path, "a").close()  # the failed opens released the lock
    with pytest.raises(FileNotFoundError, match="no episode store"):
        EpisodeStore.open(tmp_path / "nothing")
    with pytest.raises(ValueError, match="mode must be"):
        EpisodeStore.open(path, "w")
    with pytest.raises(ValueError, match="field 'x': dtype must be"):
        EpisodeStore.create(tmp_path / "t", {"x": ((), object)}, 10)

    index = path / "index.json"
    good = index.read_text()
    index.write_text(good[:-5])
    with pytest.raises(CorruptStoreError, match="index is not valid JSON"):
        EpisodeStore.open(path)
    index.unlink()
    with pytest.raises(CorruptStoreError, match="index is missing"):
        EpisodeStore.open(path)
    index.write_text(good)
    chunk = path / "chunks" / "00001" / "grid.npy"
    np.save(chunk, np.zeros((2, 10, 2, 5), np.float32))
    with pytest.raises(CorruptStoreError, match=r"grid.npy: holds \(2, 10, 2, 5\) float32"):
        EpisodeStore.open(path).episode(2)
    shutil.rmtree(path / "chunks" / "00001")
    with pytest.raises(CorruptStoreError, match="chunk files are missing"):
        EpisodeStore.open(path)
