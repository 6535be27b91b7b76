"""Policies out of checkpoints: the one convention every writer and reader follows.

A checkpoint that holds a quadruped policy (``anymal-ros train`` with a teacher model,
``anymal-ros distill``) stores

* ``models["teacher"]`` and/or ``models["student"]``: the weights (normalisers included);
* ``config["teacher"]`` / ``config["student"]``: the network config *as built*, i.e. sized for
  the simulator it trained in (proprio 133 and 16 actions for CPG, 120 and 12 otherwise);
* ``config["sim"]``: the simulator settings it trained with;
* ``config["deploy"]``: the deployment section (``QuadrupedVecEnv.deploy_config()``), which
  ``anymal-ros export`` writes into the ONNX metadata (with ``config["sim"]["physics"]``).

Export, evaluation, recording and distillation all read checkpoints through this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from anymal_ros.config import ConfigError, from_dict
from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.models import StudentConfig, TeacherConfig
from anymal_ros.config.sim import PhysicsConfig, RandomizationConfig, SpeedGovernorConfig
from anymal_ros.models.checkpoint import CheckpointError, load_model_state
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher


def teacher_from_checkpoint(ckpt: Mapping[str, Any], path: str | Path = "") -> Teacher:
    """The teacher stored under ``models["teacher"]`` with its ``config["teacher"]``."""
    return _load(ckpt, path, "teacher", Teacher, TeacherConfig)


def student_from_checkpoint(ckpt: Mapping[str, Any], path: str | Path = "") -> Student:
    """The student stored under ``models["student"]`` with its ``config["student"]``."""
    return _load(ckpt, path, "student", Student, StudentConfig)


def sim_config_of(ckpt: Mapping[str, Any]) -> dict[str, Any] | None:
    """The simulator settings the checkpoint's policy trained with, or None if not stored."""
    sim = (ckpt.get("config") or {}).get("sim")
    return sim if isinstance(sim, dict) else None


def physics_of(ckpt: Mapping[str, Any], path: str | Path = "") -> PhysicsConfig | None:
    """The physics settings the checkpoint's policy trained in, or None if not stored."""
    return _sim_section(ckpt, path, "physics", PhysicsConfig)


def randomization_of(ckpt: Mapping[str, Any], path: str | Path = "") -> RandomizationConfig | None:
    """The robots' spread (domain randomisation) the checkpoint's policy trained on, or None
    if not stored."""
    return _sim_section(ckpt, path, "randomization", RandomizationConfig)


def training_governor_of(
    ckpt: Mapping[str, Any], path: str | Path = ""
) -> SpeedGovernorConfig | None:
    """The speed governor the checkpoint's policy trained under, or None: its distillation's
    (``distill.dagger.governor``, on the student's belief) or its simulator's
    (``commands.governor``, on the true heights)."""
    distill = (ckpt.get("config") or {}).get("distill") or {}
    governor, where = distill.get("dagger", {}).get("governor"), "distill.dagger.governor"
    if governor is None:
        governor = (sim_config_of(ckpt) or {}).get("commands", {}).get("governor")
        where = "sim.commands.governor"
    if governor is None:
        return None
    try:
        return from_dict(SpeedGovernorConfig, governor, where)
    except ConfigError as err:
        raise CheckpointError(f"{path}: stored governor settings are invalid: {err}") from err


def _sim_section(ckpt: Mapping[str, Any], path: str | Path, name: str, cls: type) -> Any:
    sim = sim_config_of(ckpt)
    if sim is None or sim.get(name) is None:
        return None
    try:
        return from_dict(cls, sim[name], f"sim.{name}")
    except ConfigError as err:
        raise CheckpointError(f"{path}: stored {name} settings are invalid: {err}") from err


def deploy_config_of(ckpt: Mapping[str, Any], path: str | Path = "") -> DeployConfig:
    """The checkpoint's ``deploy`` section (defaults where it stores none)."""
    try:
        return from_dict(DeployConfig, (ckpt.get("config") or {}).get("deploy"), "deploy")
    except ConfigError as err:
        raise CheckpointError(f"{path}: stored deploy config is invalid: {err}") from err


def _load(ckpt: Mapping[str, Any], path: str | Path, kind: str, model_cls: type, cfg_cls: type):
    models = ckpt.get("models", {})
    if kind not in models:
        raise CheckpointError(f"{path}: no {kind} in this checkpoint (it holds {sorted(models)})")
    try:
        model = model_cls(from_dict(cfg_cls, (ckpt.get("config") or {}).get(kind), kind))
    except ConfigError as err:
        raise CheckpointError(f"{path}: stored {kind} config is invalid: {err}") from err
    load_model_state(model, ckpt, kind)
    return model
