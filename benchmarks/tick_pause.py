"""What a pause between control ticks costs: one policy tick (no DDS) by section, back to back
and after the pause a 50 Hz node has between ticks.

The tick is the node's (``PolicyController``: input health, build the observation, run
onnxruntime, decode the CPG action, safety checks), fed with real serialized messages by
``input_decode.walking_controller``. Each variant runs ``--ticks`` ticks with one way of
spending the time between them:

* ``back_to_back``: no pause (what ``latency.py``-style loops measure);
* ``sleep``: ``--pause-ms`` asleep, as the node waits for its next message;
* ``spin``: ``--pause-ms`` of busy-waiting (the core never idles);
* ``warm_up``: asleep, but one throw-away onnxruntime run 2.5 ms (one 400 Hz sensor period)
  before the tick.

    OMP_NUM_THREADS=1 python benchmarks/tick_pause.py   # -> benchmarks/results/tick_pause.json
"""

from __future__ import annotations

import argparse
import functools
import json
import sys
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # this checkout's anymal_ros, not an installed one
sys.path.insert(0, str(REPO / "benchmarks"))

SECTIONS = {  # label -> (object path from the controller, method)
    "health": ("", "health"),
    "observation": ("proprio", "build"),
    "onnx": ("policy", "step"),
    "cpg_decode": ("decoder", "decode"),
    "safety": ("safety", "check"),
}


def timed_sections(c) -> dict[str, list[float]]:
    """Wrap the controller's sections with timers; returns the lists they append to (s)."""
    times: dict[str, list[float]] = {}
    for label, (path, method) in SECTIONS.items():
        owner = getattr(c, path) if path else c
        inner = getattr(owner, method)
        samples = times.setdefault(label, [])

        def timed(*args, _inner=inner, _samples=samples, **kwargs):
            start = time.perf_counter()
            try:
                return _inner(*args, **kwargs)
            finally:
                _samples.append(time.perf_counter() - start)

        setattr(owner, method, timed)
    return times


def pause(variant: str, seconds: float, warm_up) -> None:
    if variant == "sleep":
        time.sleep(seconds)
    elif variant == "spin":
        end = time.perf_counter() + seconds
        while time.perf_counter() < end:
            pass
    elif variant == "warm_up":
        lead = min(0.0025, seconds)
        time.sleep(seconds - lead)
        warm_up()
        time.sleep(lead)


def percentiles(samples: list[float]) -> dict[str, float]:
    a = np.asarray(samples) * 1e6
    return {"p50_us": float(np.percentile(a, 50)), "p99_us": float(np.percentile(a, 99))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", type=Path, default=REPO / "policies/student.onnx")
    parser.add_argument("--pause-ms", type=float, default=20.0, help="pause between ticks")
    parser.add_argument("--ticks", type=int, default=500, help="ticks per variant")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks/results/tick_pause.json")
    args = parser.parse_args()
    result = {"model": str(args.model), "pause_ms": args.pause_ms, "variants": {}}
    from input_decode import walking_controller

    for variant in ("back_to_back", "sleep", "spin", "warm_up"):
        c, tick = walking_controller(args.model)  # the node's default: CDR readers
        session = c.policy.session
        feed = {
            i.name: np.zeros([d if isinstance(d, int) else 1 for d in i.shape], np.float32)
            for i in session.get_inputs()
        }
        times = timed_sections(c)
        whole = []
        for _ in range(args.ticks):
            pause(variant, args.pause_ms * 1e-3, functools.partial(session.run, None, feed))
            start = time.perf_counter()
            tick()
            whole.append(time.perf_counter() - start)
        row = {"tick": percentiles(whole), **{k: percentiles(v) for k, v in times.items()}}
        result["variants"][variant] = row
        cells = "  ".join(f"{k} {v['p50_us']:6.0f}" for k, v in row.items())
        print(f"{variant:13s} p50 (us): {cells}   tick p99 {row['tick']['p99_us']:.0f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
