"""Fields one after another (anymal_ros.eval.parallel): figures in order, the progress bar's
count of finished fields. The processes' path is tested through scorecard and step-sweep
--jobs 2 (test_scorecard.py, test_step_sweep.py): same figures as this path."""

from __future__ import annotations

import io

import pytest
from tqdm import tqdm

from anymal_ros.config.sim import SimConfig
from anymal_ros.eval import parallel
from anymal_ros.eval.parallel import FieldJob, run_fields


def test_fields_in_order_with_the_finished_count_on_the_bar(monkeypatch):
    def figures_of_the_seed(sim, terrain, policy, noise, seed, robots, length, on_step):
        for _ in range(3):  # three of the field's steps, all robots walking
            on_step()
        return {"seed": seed, "terrain": terrain}

    monkeypatch.setattr(parallel, "run_field", figures_of_the_seed)
    jobs = [FieldJob(lambda n: None, SimConfig(), t, "none", s, 4, 1.0)
            for t, s in (("flat", 7), ("stairs_up", 3))]  # fmt: skip
    bar = tqdm(total=sum(j.full_steps for j in jobs), file=io.StringIO())
    seen = []
    out = run_fields(jobs, 1, bar, lambda i, f: seen.append((i, bar.postfix)))
    assert out == [{"seed": 7, "terrain": "flat"}, {"seed": 3, "terrain": "stairs_up"}]
    assert seen == [(0, "fields 1/2"), (1, "fields 2/2")]
    assert bar.n == bar.total == 2 * 4 * 50  # a field cut short counts in full
    with pytest.raises(ValueError, match="jobs must be >= 1"):
        run_fields(jobs, 0)
