"""Shared by `record`, `eval`, `step-sweep` and `scorecard`: the simulator settings for a policy
file."""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import fields, replace
from pathlib import Path

from anymal_ros.config import ConfigError
from anymal_ros.config.robot import robot_yaml_path
from anymal_ros.config.sim import ActionConfig, SimConfig


def resolve_sim_config(
    policy_path: str | Path, sim_config: str | None, overrides: Sequence[str]
) -> SimConfig:
    """``--sim-config`` if given, else the settings stored in the checkpoint, else the
    defaults; then ``key=value`` overrides. An ONNX file also selects its robot, its
    training-time action settings and (where the file stores them) its training-time physics
    and robots' spread (``robot.description=...`` overrides the robot, e.g. to try a policy on
    another model of it)."""
    from anymal_ros.config import apply_overrides, from_dict, load_yaml, to_dict
    from anymal_ros.eval.policies import sim_config_of

    meta = None
    if Path(policy_path).suffix == ".onnx":
        from anymal_ros.deploy.runtime import OnnxPolicy

        meta = OnnxPolicy(policy_path).metadata
    if sim_config is not None:
        data = load_yaml(sim_config)
    else:
        data = sim_config_of(policy_path) or {}
        if meta is not None:
            # The file carries its training-time action settings (mode, scale, CPG) and,
            # since files store them, the physics and the robots' spread it trained in.
            data = {**data, "actions": to_dict(meta.action_config())}
            if meta.training_physics is not None:
                data = {**data, "physics": to_dict(meta.training_physics)}
            if meta.training_randomization is not None:
                data = {**data, "randomization": to_dict(meta.training_randomization)}
            elif "randomization" not in data:
                name = Path(policy_path).name
                print(f"note: {name} stores no training randomisation (exported before files "
                      "did): where no --set or scorecard pins them, its robots get the "
                      "simulator's defaults, maybe wider than it trained on")  # fmt: skip
    if meta is not None:
        robot = meta.robot
        try:
            robot_yaml_path(robot)
        except ConfigError:  # not a bundled robot: the config (or --set) must name its YAML
            print(f"note: the policy's robot {robot!r} is not bundled; simulating the config's")
        else:
            data = {**data, "robot": {**data.get("robot", {}), "description": robot}}
    return from_dict(SimConfig, apply_overrides(data, list(overrides)))


def check_policy_fits(policy, env) -> None:
    """Refuse a policy whose input/output sizes differ from the simulator's."""
    model = getattr(policy, "model", None)
    if model is not None:
        p, a = model.cfg.proprio_dim, model.cfg.action.num_actions
    else:
        p, a = policy.metadata.proprio_dim, policy.metadata.action_dim
    if p != env.proprio_dim or (policy.head == "gaussian" and a != env.action_dim):
        raise SystemExit(
            f"policy expects proprio {p} / action {a} but the simulator has proprio "
            f"{env.proprio_dim} / action {env.action_dim} (actions.mode "
            f"{env.cfg.actions.mode!r}); pass --sim-config or actions.mode=... to match"
        )


def trained_actions(policy_path: str | Path) -> ActionConfig | None:
    """The ``actions`` settings a policy file was trained with (ONNX metadata, or the
    checkpoint's simulator settings), or None where the file stores none."""
    from anymal_ros.config import from_dict
    from anymal_ros.eval.policies import sim_config_of

    if Path(policy_path).suffix == ".onnx":
        from anymal_ros.deploy.runtime import OnnxPolicy

        return OnnxPolicy(policy_path).metadata.action_config()
    data = sim_config_of(policy_path)
    if data is None or "actions" not in data:
        return None
    return from_dict(ActionConfig, data["actions"], "actions")


def action_differences(trained: ActionConfig, sim: ActionConfig) -> list[str]:
    """``actions.<field>: trained X, simulator Y`` for every setting that differs."""
    pairs = ((f.name, getattr(trained, f.name), getattr(sim, f.name)) for f in fields(sim))
    return [f"actions.{n}: trained {t!r}, simulator {s!r}" for n, t, s in pairs if t != s]


def _trained_governor(path: str | Path) -> bool:
    """Whether a checkpoint's policy trained under a speed governor of either kind."""
    from anymal_ros.models import loading
    from anymal_ros.models.checkpoint import load_checkpoint

    return loading.training_governor_of(load_checkpoint(path), path) is not None


def eval_policy(path: str | Path, label: str | None, overrides: Sequence[str]):
    """An :class:`~anymal_ros.eval.policies.EvalPolicy` for a policy file in its own simulator
    (its settings plus ``overrides``), checked to fit it; ``label`` defaults to the policy's
    kind, file name and robot. A missing or unfitting file ends the command."""
    from anymal_ros.eval.policies import EvalPolicy, load_policy
    from anymal_ros.sim.env import QuadrupedVecEnv

    if not Path(path).is_file():
        raise SystemExit(f"no such policy file: {path}")
    sim = resolve_sim_config(path, None, overrides)
    trained = trained_actions(path)
    diff = action_differences(trained, sim.actions) if trained is not None else []
    if diff:  # only through --set: asked for, but say so
        print(f"note: {path} runs with other action settings than it was trained with: "
              f"{'; '.join(diff)}")  # fmt: skip
    first = load_policy(path, 1)
    trained_governor = sim.commands.governor is not None
    if trained_governor and first.kind == "student":
        # The simulator's governor reads the true heights, which no robot has: a student
        # is governed by its own belief, as its file says (anymal-ros export).
        print(f"note: {path} trained under a speed governor on the true heights; it runs "
              "without it (a student's file carries the one it runs with)")  # fmt: skip
        sim = replace(sim, commands=replace(sim.commands, governor=None))
    elif first.kind == "student" and Path(path).suffix != ".onnx" and _trained_governor(path):
        # Not the simulator's (that branch is above): the distillation's, on its belief.
        print(f"note: {path} was distilled under a speed governor on its belief; a checkpoint "
              "runs without it: evaluate the file anymal-ros export writes")  # fmt: skip
    probe = QuadrupedVecEnv(sim, 1, seed=0)
    try:
        check_policy_fits(first, probe)
    finally:
        probe.close()
    governed = ""
    if getattr(first, "governor", None) is not None:
        governed = ", speed governed"
    elif trained_governor and first.kind == "teacher":
        governed = ", speed governed on true heights"
    label = label or f"{first.kind} {Path(path).name}, {sim.robot.description}{governed}"
    # A partial, not a closure: an EvalPolicy travels to evaluation processes (scorecard --jobs).
    return EvalPolicy(label, str(path), sim, functools.partial(load_policy, str(path)))
