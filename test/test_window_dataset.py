"""Window dataset: next state is step t+n, terminal windows, short episodes, DataLoader workers."""

import pickle

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from anymal_ros.replay.dataset import WindowDataset
from anymal_ros.replay.store import EpisodeStore

FIELDS = {
    "proprio": ((2,), np.float32),
    "extero": ((2, 3), np.float32),
    "action": ((1,), np.float32),
    "reward": ((), np.float32),
    "terminated": ((), bool),
    "truncated": ((), bool),
}


def episode(index: int, length: int, end: str) -> dict[str, np.ndarray]:
    """Every value encodes (episode, step) so a window shows where it came from."""
    t = np.arange(length, dtype=np.float32)
    code = 1000.0 * index + t
    flags = {"terminated": np.zeros(length, bool), "truncated": np.zeros(length, bool)}
    if end in flags:
        flags[end][-1] = True
    return {
        "proprio": np.stack([code, -code], axis=-1),
        "extero": np.broadcast_to(code[:, None, None], (length, 2, 3)).copy(),
        "action": code[:, None] + 0.5,
        "reward": code + 0.25,
        **flags,
    }


# (length, how it ended): terminated, truncated by a time-out, or cut (no flag)
EPISODES = [(10, "terminated"), (10, "truncated"), (3, "terminated"), (4, "terminated"), (7, "")]


@pytest.fixture()
def store(tmp_path):
    s = EpisodeStore.create(tmp_path / "s", FIELDS, max_episode_length=12, chunk_episodes=2)
    w = s.writer()
    for i, (length, end) in enumerate(EPISODES):
        w.add_steps(**episode(i, length, end))
        w.commit_episode()
    return s


def test_windows_hold_steps_t_to_t_plus_n_and_the_next_state_at_t_plus_n(store):
    n = 4
    ds = WindowDataset(store, window=n)
    assert ds.next_fields == ["proprio", "extero"]
    # L - n starts with a stored next state, +1 terminal window when the episode terminated;
    # the 3-step episode is too short; the 4-step terminated one gives only its terminal window.
    assert ds.counts.tolist() == [6 + 1, 6, 0, 0 + 1, 3]
    assert len(ds) == 17
    seen = set()
    for k in range(len(ds)):
        item = ds[k]
        e, t = int(item["episode"]), int(item["start"])
        seen.add((e, t))
        code = 1000.0 * e + np.arange(t, t + n)
        np.testing.assert_array_equal(item["proprio"][:, 0].numpy(), code)
        np.testing.assert_array_equal(item["reward"].numpy(), code + 0.25)
        np.testing.assert_array_equal(item["extero"][:, 1, 2].numpy(), code)
        length = EPISODES[e][0]
        if item["terminal"]:
            assert t + n == length and EPISODES[e][1] == "terminated"
            assert bool(item["terminated"][-1])
            assert not item["next_proprio"].any() and not item["next_extero"].any()
        else:
            assert t + n <= length - 1
            np.testing.assert_array_equal(
                item["next_proprio"].numpy(), [code[-1] + 1, -code[-1] - 1]
            )
            assert item["next_extero"].shape == (2, 3)
            assert float(item["next_extero"][0, 0]) == code[-1] + 1
            assert not item["terminated"].any()
    # The truncated and the unfinished episode never yield a window that needs step L.
    assert (1, 6) not in seen and (4, 3) not in seen and (0, 6) in seen


def test_without_next_state_every_full_window_counts(store):
    ds = WindowDataset(store, window=4, next_fields=())
    assert ds.counts.tolist() == [7, 7, 0, 1, 4]
    item = ds[len(ds) - 1]
    assert "next_proprio" not in item
    assert int(item["start"]) == 3 and not item["terminal"]


def test_window_of_one_and_field_selection(store):
    ds = WindowDataset(store, window=1, fields=["action"], next_fields=["proprio"])
    assert len(ds) == 9 + 1 + 9 + 2 + 1 + 3 + 1 + 6
    item = ds[0]
    assert set(item) == {"action", "next_proprio", "terminal", "episode", "start"}
    assert item["action"].shape == (1, 1)


def test_dataloader_with_workers_matches_direct_reads(store):
    ds = WindowDataset(store.path, window=3)
    copy = pickle.loads(pickle.dumps(ds))
    assert copy._store is None and len(copy) == len(ds)
    loader = DataLoader(ds, batch_size=4, shuffle=False, num_workers=2)
    batches = list(loader)
    proprio = torch.cat([b["proprio"] for b in batches])
    nxt = torch.cat([b["next_proprio"] for b in batches])
    assert proprio.shape == (len(ds), 3, 2) and proprio.dtype == torch.float32
    for k in range(len(ds)):
        torch.testing.assert_close(proprio[k], ds[k]["proprio"])
        torch.testing.assert_close(nxt[k], ds[k]["next_proprio"])


def test_later_commits_do_not_change_an_existing_dataset(store):
    ds = WindowDataset(store, window=2)
    before = len(ds)
    w = store.writer()
    w.add_steps(**episode(9, 6, "terminated"))
    w.commit_episode()
    assert len(ds) == before
    assert len(WindowDataset(store, window=2)) == before + 5


def test_bad_arguments_are_refused(store, tmp_path):
    with pytest.raises(ValueError, match="window must be >= 1"):
        WindowDataset(store, window=0)
    with pytest.raises(KeyError, match=r"unknown fields \['privileged'\]"):
        WindowDataset(store, window=2, next_fields=["privileged"])
    with pytest.raises(IndexError, match="out of range"):
        WindowDataset(store, window=2)[10_000]
    bare = EpisodeStore.create(tmp_path / "bare", {"proprio": ((2,), np.float32)}, 5)
    with pytest.raises(ValueError, match="'terminated' field"):
        WindowDataset(bare, window=2)
    assert len(WindowDataset(bare, window=2, next_fields=())) == 0
