"""Export a student or teacher to a self-describing ONNX file.

The graph contains the observation normalisers; the file's ``metadata_props`` carry
:class:`~anymal_ros.deploy.metadata.PolicyMetadata`. Graph interface (batch 1):

* student: inputs ``proprio [1, P]``, ``extero [1, 4, 52]``, ``hidden [L, 1, H]``;
  outputs ``action [1, A]`` and ``hidden_out [L, 1, H]``; with ``belief=True`` (default) the
  belief decoder travels as a second graph in the metadata (:mod:`anymal_ros.deploy.belief`):
  ``hidden [L, 1, H]``, ``extero [1, 4, 52]`` -> ``belief_heights [1, 4, 52]`` (m),
  ``belief_privileged [1, 50]`` (raw units).
* teacher: inputs ``proprio [1, P]``, ``extero [1, 4, 52]``, ``privileged [1, 50]``;
  output ``action [1, A]``.

``action`` is the deterministic action: the Gaussian mean, or for a categorical head the
logits (metadata ``action_output = logits``; the runtime takes the argmax).

torch 2.13's default exporter (``dynamo=True``) needs the ``onnxscript`` package, which this
project does not install; the TorchScript exporter (``dynamo=False``) maps ``nn.GRU`` onto the
ONNX ``GRU`` operator directly and is what the parity tests check, so we use it.
"""

from __future__ import annotations

import copy
import io
import json
import warnings
from dataclasses import replace
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.robot import DEFAULT_ROBOT, load_robot
from anymal_ros.config.sim import PhysicsConfig, RandomizationConfig, SpeedGovernorConfig
from anymal_ros.contract import ObsLayout, ObsTerm, proprio_layout
from anymal_ros.deploy import belief as belief_graph
from anymal_ros.deploy.metadata import ACTION_PARAMS, PREFIX, PolicyMetadata, default_action_config
from anymal_ros.files import atomic_write
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher
from anymal_ros.sim.robot import leg_chains_of

OPSET = 17
STUDENT_INPUTS = ("proprio", "extero", "hidden")
STUDENT_OUTPUTS = ("action", "hidden_out")
TEACHER_INPUTS = ("proprio", "extero", "privileged")
TEACHER_OUTPUTS = ("action",)


class _StudentGraph(nn.Module):
    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, proprio: Tensor, extero: Tensor, hidden: Tensor) -> tuple[Tensor, Tensor]:
        return self.student.step_deterministic(proprio, extero, hidden)


class _BeliefGraph(nn.Module):
    """The decoder from the state a control step leaves: its top GRU layer is ``h_t``."""

    def __init__(self, student: Student) -> None:
        super().__init__()
        self.student = student

    def forward(self, hidden: Tensor, extero: Tensor) -> tuple[Tensor, Tensor]:
        return self.student.decode_in_units(hidden[-1], extero)


class _TeacherGraph(nn.Module):
    def __init__(self, teacher: Teacher) -> None:
        super().__init__()
        self.teacher = teacher

    def forward(self, proprio: Tensor, extero: Tensor, privileged: Tensor) -> Tensor:
        obs = {"proprio": proprio, "extero": extero, "privileged": privileged}
        return self.teacher.action_head.deterministic(self.teacher.features(obs))


def _layout_for(proprio_dim: int) -> ObsLayout:
    """The contract's layout when the size matches one, else a single opaque term."""
    for cpg in (True, False):
        layout = proprio_layout(cpg)
        if layout.dim == proprio_dim:
            return layout
    return ObsLayout((ObsTerm("proprio", proprio_dim),))


def build_metadata(
    kind: str,
    model: Student | Teacher,
    deploy: DeployConfig | None = None,
    physics: PhysicsConfig | None = None,
    randomization: RandomizationConfig | None = None,
    speed_governor: SpeedGovernorConfig | None = None,
    **extra: str,
) -> PolicyMetadata:
    """Metadata for ``model``; unset action settings take :func:`default_action_config`, an
    unset robot the default robot (its kinematics derived from its MJCF); ``physics`` and
    ``randomization``: the simulator physics and the robots' spread it trained in (stored for
    evaluation, see PolicyMetadata); ``speed_governor``: how a student is to be governed."""
    deploy = deploy or DeployConfig()
    cfg = model.cfg
    actions = deploy.actions or default_action_config(cfg.proprio_dim)
    is_student = kind == "student"
    if deploy.leg_chains is not None and deploy.default_joint_pos is not None:
        robot_name = deploy.robot or "unnamed"
        default_pose, leg_chains = deploy.default_joint_pos, deploy.leg_chains
        speed_limit = deploy.joint_velocity_limit or load_robot(robot_name).joint_velocity_limit
    else:  # a deploy section without its robot: the named (or default) bundled robot
        robot = load_robot(deploy.robot or DEFAULT_ROBOT)
        robot_name, default_pose = robot.name, robot.default_pose()
        leg_chains, speed_limit = leg_chains_of(robot), robot.joint_velocity_limit
    return PolicyMetadata(
        kind=kind,
        proprio_dim=cfg.proprio_dim,
        action_dim=cfg.action.num_actions,
        proprio_layout=_layout_for(cfg.proprio_dim),
        extero_shape=(cfg.num_feet, cfg.points_per_foot),
        privileged_dim=0 if is_student else cfg.privileged_dim,
        hidden_shape=(cfg.gru_layers, 1, cfg.gru_hidden) if is_student else (),
        robot=robot_name,
        default_joint_pos=default_pose,
        leg_chains=leg_chains,
        joint_velocity_limit=speed_limit,
        missing_height_fill=deploy.missing_height_fill,
        joint_pos_lower=deploy.joint_pos_lower,
        joint_pos_upper=deploy.joint_pos_upper,
        action_type=actions.mode,
        action_head=cfg.action.type,
        action_scale=actions.scale,
        action_params={k: float(getattr(actions, k)) for k in ACTION_PARAMS},
        control_period=deploy.control_period,
        training_physics=physics,
        training_randomization=randomization,
        speed_governor=speed_governor,
        extra=dict(extra),
    )


def export_student(
    student: Student,
    path: str | Path,
    deploy: DeployConfig | None = None,
    belief: bool = True,
    physics: PhysicsConfig | None = None,
    randomization: RandomizationConfig | None = None,
    speed_governor: SpeedGovernorConfig | None = None,
    **extra: str,
) -> Path:
    """Write ``student`` as ONNX to ``path`` (atomically) and return the path; ``belief``:
    store its belief decoder too (a second graph, run only when asked for, and what a
    ``speed_governor`` reads)."""
    if speed_governor is not None and not belief:
        raise ValueError("a speed governor reads the student's belief: export it with belief")
    model = copy.deepcopy(student).float().cpu().eval()
    args = (
        torch.zeros(1, model.cfg.proprio_dim),
        torch.zeros(1, model.cfg.num_feet, model.cfg.points_per_foot),
        model.initial_hidden(1),
    )
    meta = build_metadata("student", model, deploy, physics, randomization, speed_governor, **extra)
    props = {}
    if belief:
        graph = _onnx_bytes(
            _BeliefGraph(model),
            (args[2], args[1]),
            belief_graph.INPUTS,
            (belief_graph.HEIGHTS_OUTPUT, belief_graph.PRIVILEGED_OUTPUT),
        )
        spec = belief_graph.belief_spec(meta.extero_shape, meta.hidden_shape)
        props = {
            belief_graph.SPEC_KEY: json.dumps(spec),
            belief_graph.GRAPH_KEY: belief_graph.encode_graph(graph),
        }
    return _export(_StudentGraph(model), args, STUDENT_INPUTS, STUDENT_OUTPUTS, meta, path, props)


def export_teacher(
    teacher: Teacher,
    path: str | Path,
    deploy: DeployConfig | None = None,
    physics: PhysicsConfig | None = None,
    randomization: RandomizationConfig | None = None,
    **extra: str,
) -> Path:
    """Write ``teacher`` (actor only) as ONNX to ``path`` (atomically); for simulator use."""
    model = copy.deepcopy(teacher).float().cpu().eval()
    cfg = model.cfg
    args = (
        torch.zeros(1, cfg.proprio_dim),
        torch.zeros(1, cfg.num_feet, cfg.points_per_foot),
        torch.zeros(1, cfg.privileged_dim),
    )
    meta = build_metadata("teacher", model, deploy, physics, randomization, **extra)
    return _export(_TeacherGraph(model), args, TEACHER_INPUTS, TEACHER_OUTPUTS, meta, path)


def _onnx_bytes(
    graph: nn.Module, args: tuple[Tensor, ...], inputs: tuple[str, ...], outputs: tuple[str, ...]
) -> bytes:
    """``graph`` traced to a serialized, checked ONNX model."""
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        # The legacy exporter announces its deprecation and traces a few shape checks.
        warnings.simplefilter("ignore")
        with torch.no_grad():
            torch.onnx.export(
                graph,
                args,
                buffer,
                input_names=list(inputs),
                output_names=list(outputs),
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
    data = buffer.getvalue()
    onnx.checker.check_model(onnx.load_from_string(data))
    return data


def _export(
    graph: nn.Module,
    args: tuple[Tensor, ...],
    inputs: tuple[str, ...],
    outputs: tuple[str, ...],
    meta: PolicyMetadata,
    path: str | Path,
    props: dict[str, str] | None = None,
) -> Path:
    with atomic_write(path) as tmp:
        model = onnx.load_from_string(_onnx_bytes(graph, args, inputs, outputs))
        for key, value in {**meta.to_props(), **(props or {})}.items():
            entry = model.metadata_props.add()
            entry.key, entry.value = key, value
        model.producer_name = "anymal_ros"
        onnx.checker.check_model(model)
        tmp.write_bytes(model.SerializeToString())
    return Path(path)


def set_speed_governor(
    source: str | Path, path: str | Path, speed_governor: SpeedGovernorConfig | None
) -> Path:
    """Copy the student file ``source`` to ``path`` (atomically) with its speed governor set
    (None: removed); graphs and every other key stay as they are. Settings are tried on an
    exported file this way, without its checkpoint."""
    from anymal_ros.deploy.runtime import OnnxPolicy

    policy = OnnxPolicy(source)  # refuses a corrupt file or bad metadata, naming the key
    if speed_governor is not None and policy.belief_decoder is None:  # a teacher too
        why = policy.belief_unavailable
        raise ValueError(f"{source}: a speed governor reads the belief, but {why}")
    # The metadata writes (and checks) its own key; None: the key left out, as before it existed.
    key = PREFIX + "speed_governor"
    value = replace(policy.metadata, speed_governor=speed_governor).to_props().get(key)
    model = onnx.load(str(source))
    kept = [(e.key, e.value) for e in model.metadata_props if e.key != key]
    del model.metadata_props[:]
    for k, v in kept + ([(key, value)] if value is not None else []):
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    with atomic_write(path) as tmp:
        tmp.write_bytes(model.SerializeToString())
    OnnxPolicy(path)  # the file we wrote must load
    return Path(path)
