"""`anymal-ros scorecard POLICY [--teacher T] [--baseline B]`: a policy against a release's
targets.

Measures POLICY on every field of the scorecard file (``--spec``, default
``config/scorecard_edition2.yaml``: the second edition's targets, fixed before any policy was
scored on its seeds), pools the seeds and prints each bound's verdict; ``--teacher`` adds the
student-against-teacher check on the hardest fields with noisy heights, ``--baseline`` (e.g.
``policies/student.onnx``) the field-by-field comparison with the policy it would replace.
Every policy runs in its own simulator (its checkpoint's settings or its ONNX file's robot and
actions). Writes ``scorecard.json`` (every cell, the pooled fields, the verdicts, the spec)
and ``scorecard.md`` to ``--out`` after every cell, and ``scorecard.png`` (falls per 10 min
per field, a bar per role) at the end. ``--resume`` reuses the matching cells of
the ``scorecard.json`` already there, ``--reuse`` those of other runs (a policy's cells serve
in any role: the shipped policy's committed card gives a new one its baseline column).
``--strict`` exits with 1 unless every check was measured and met (for a release script).
``--robots`` / ``--seeds`` / ``--rows`` / ``--noise`` shrink a run for a quick look (fewer
robots, other seeds, some fields or height modes only), which the table and JSON then say and
``--strict`` never passes.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from anymal_ros.commands._args import add_overrides_option

#: The second edition's scorecard (installed beside the other configs).
DEFAULT_SPEC = Path(__file__).resolve().parents[2] / "config" / "scorecard_edition2.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("policy", help="the candidate: checkpoint (.pt) or ONNX file (.onnx)")
    parser.add_argument("--teacher", default=None, help="its teacher, for the teacher check")
    parser.add_argument("--baseline", default=None, help="the policy it would replace")
    parser.add_argument("--spec", default=str(DEFAULT_SPEC), help="scorecard YAML")
    parser.add_argument("--out", default="scorecard", help="directory for the JSON and table")
    parser.add_argument("--resume", action="store_true",
                        help="reuse matching cells of --out's scorecard.json")  # fmt: skip
    parser.add_argument("--reuse", nargs="+", default=[], metavar="JSON",
                        help="also reuse matching cells of these scorecard.json files")  # fmt: skip
    parser.add_argument("--robots", type=int, default=None,
                        help="robots per seed instead of the spec's (a quick look)")  # fmt: skip
    parser.add_argument("--seeds", type=int, nargs="+", default=None,
                        help="seeds instead of the spec's (a quick look)")  # fmt: skip
    parser.add_argument("--rows", nargs="+", default=None, metavar="NAME",
                        help="these fields only, named as in the spec (a quick look)")  # fmt: skip
    parser.add_argument("--noise", nargs="+", default=None, metavar="MODE",
                        help="these height modes only, e.g. none (a quick look)")  # fmt: skip
    parser.add_argument("--strict", action="store_true",
                        help="exit 1 unless every check is measured and met")  # fmt: skip
    parser.add_argument("--jobs", type=int, default=1,
                        help="cells measured at once, a process each (the machine's cores "
                             "when nothing else runs)")  # fmt: skip
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    add_overrides_option(parser, "SimConfig overrides for every policy (before the spec's)")


def load_spec(
    path: str | Path,
    robots: int | None = None,
    seeds: list[int] | None = None,
    rows: list[str] | None = None,
    noise: list[str] | None = None,
):
    """``(spec, quick_look)``: the scorecard file with a quick look's robots, seeds, rows and
    height modes, and whether they differ from the file's; errors end the command."""
    from anymal_ros.config import ConfigError, load_config
    from anymal_ros.config.scorecard import ScorecardConfig
    from anymal_ros.eval.scorecard import check_metrics

    try:
        written = load_config(ScorecardConfig, path)
        changes = {"robots_per_seed": robots, "seeds": tuple(seeds) if seeds else None}
        spec = dataclasses.replace(written, **{k: v for k, v in changes.items() if v is not None})
        if rows or noise:
            spec = spec.only(rows or None, noise or None)
        check_metrics(spec)
    except (ConfigError, ValueError) as err:
        raise SystemExit(f"{path}: {err}") from err
    return spec, spec != written


def check_overrides(spec, overrides: list[str], spec_path: str | Path) -> None:
    """``--set`` goes under the spec's settings: a key the spec sets for every field would be
    overwritten without a word, so it ends the command; one some rows set gets a note."""
    from anymal_ros.config import parse_override

    def sets(section: dict, keys: list[str]) -> bool:
        for k in keys:
            if not isinstance(section, dict) or k not in section:
                return False
            section = section[k]
        return True

    for item in overrides:
        keys, _ = parse_override(item)
        if sets(spec.sim, keys):
            raise SystemExit(
                f"--set {item}: {spec_path} sets {'.'.join(keys)} for every field, over any "
                "--set; change it in a copy of the spec (--spec) instead"
            )
        rows = [r.name for r in spec.rows if sets(r.sim, keys)]
        if rows:
            print(f"note: --set {item} does not apply on {rows}: their spec rows set it")


def run(args: argparse.Namespace) -> int:
    from anymal_ros.commands._policy_sim import eval_policy
    from anymal_ros.eval.scorecard import markdown, measure, plot, read_cells, verdicts, write

    spec, quick_look = load_spec(args.spec, args.robots, args.seeds, args.rows, args.noise)
    check_overrides(spec, args.overrides, args.spec)
    roles = {"candidate": args.policy, "teacher": args.teacher, "baseline": args.baseline}
    policies = {
        role: eval_policy(path, f"{role} {Path(path).name}", args.overrides)
        for role, path in roles.items()
        if path is not None
    }
    physics = None
    if spec.sim_to_sim is not None:
        physics = Path(args.spec).parent / spec.sim_to_sim.physics
        if not physics.is_file():
            raise SystemExit(f"{args.spec}: sim_to_sim.physics: no such file {physics}")
    out = Path(args.out)
    earlier = [*args.reuse]
    if args.resume and (out / "scorecard.json").is_file():
        earlier.append(str(out / "scorecard.json"))
    try:
        done = [cell for path in earlier for cell in read_cells(path)]
    except (OSError, ValueError) as err:
        raise SystemExit(f"--resume/--reuse: {err}") from err
    meta = {
        "policies": {role: {"label": p.label, "path": p.path, "robot": p.sim.robot.description}
                     for role, p in policies.items()},
        "spec_path": str(args.spec), "overrides": args.overrides,
        "quick_look": quick_look,
    }  # fmt: skip
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    so_far: list[dict] = []  # written after every cell, so a stopped run keeps them
    try:
        cells = measure(
            spec, policies, physics, done, progress=not args.quiet, jobs=args.jobs,
            on_cell=lambda cell: (so_far.append(cell), write(out, spec, so_far, meta)),
        )  # fmt: skip
    except ValueError as err:
        raise SystemExit(str(err)) from err
    js, md = write(out, spec, cells, meta)
    png = plot(cells, out / "scorecard.png", f"scorecard: {Path(args.spec).name}")
    print(markdown(spec, cells, meta["quick_look"]))
    print(f"wrote {js}, {md} and {png}")
    passed = all(v["met"] is True for v in verdicts(spec, cells)) and not meta["quick_look"]
    return 1 if args.strict and not passed else 0
