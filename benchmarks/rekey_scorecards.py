"""Re-key committed scorecards after a simulator setting was added with a default that
changes nothing.

A scorecard cell is reused only where its simulator settings' digest (``sim_sha256``) matches
the one a new run would compute. A new ``SimConfig`` field appears in every digest, so every
committed cell goes stale though its figures still hold. For each cell whose policy file is
here, this recomputes the digest with the current code, and again with the added keys left
out: where the second equals the cell's, the cell gets the first. Cells that match neither
(stale before, or settings that differ) are left alone.

    .venv/bin/python benchmarks/rekey_scorecards.py --added commands.governor

prints per card how many cells it re-keyed, and rewrites the cards in place.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from anymal_ros.commands._policy_sim import eval_policy  # noqa: E402
from anymal_ros.config import from_dict, to_dict  # noqa: E402
from anymal_ros.config.scorecard import ScorecardConfig  # noqa: E402
from anymal_ros.eval.scorecard import digest, keyed_cells  # noqa: E402

SAME = ("policy_sha256", "row", "noise", "physics", "seed", "robots")


def without(data: dict, dotted: str) -> dict:
    """A copy of ``data`` with the key at ``dotted`` (a.b.c) removed (unchanged where a
    section on the way is absent or null: a field added to an optional section)."""
    *parents, last = dotted.split(".")
    out = json.loads(json.dumps(data))
    node = out
    for key in parents:
        node = node.get(key) if isinstance(node, dict) else None
    if isinstance(node, dict):
        node.pop(last, None)
    return out


def rekey(card_path: Path, added: list[str]) -> tuple[int, int]:
    """Re-key one card in place; ``(re-keyed, cells)``."""
    card = json.loads(card_path.read_text())
    spec = from_dict(ScorecardConfig, card["spec"], "spec")
    overrides = card.get("overrides", [])
    policies = {}
    for role, p in card["policies"].items():
        if (ROOT / p["path"]).is_file() or Path(p["path"]).is_file():
            policies[role] = eval_policy(p["path"], p["label"], overrides)
    if "candidate" not in policies:
        return 0, len(card["cells"])
    physics = None
    if spec.sim_to_sim is not None:
        physics = Path(card["spec_path"]).parent / spec.sim_to_sim.physics
        if not physics.is_file():
            physics = ROOT / "config" / spec.sim_to_sim.physics
    old_to_new = {}
    for head, sim in keyed_cells(spec, policies, physics):
        data = to_dict(sim)
        for key in added:
            data = without(data, key)
        old = digest(json.dumps(data, sort_keys=True))
        old_to_new[(*(head[k] for k in SAME), old)] = head["sim_sha256"]
    changed = 0
    for cell in card["cells"]:
        new = old_to_new.get((*(cell[k] for k in SAME), cell["sim_sha256"]))
        if new is not None and new != cell["sim_sha256"]:
            cell["sim_sha256"] = new
            changed += 1
    if changed:
        card_path.write_text(json.dumps(card, indent=2) + "\n")
    return changed, len(card["cells"])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--added", nargs="+", required=True, help="dotted SimConfig keys added")
    parser.add_argument("cards", nargs="*", help="scorecard.json files (default: policies/**)")
    args = parser.parse_args()
    cards = [Path(c) for c in args.cards] or sorted((ROOT / "policies").rglob("scorecard.json"))
    for path in cards:
        try:
            changed, total = rekey(path, args.added)
        except (ValueError, SystemExit) as err:  # an older spec this code no longer builds
            print(f"   skipped ({err}): {path.relative_to(ROOT)}", flush=True)
            continue
        print(f"{changed:4d} of {total:4d} cells re-keyed: {path.relative_to(ROOT)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
