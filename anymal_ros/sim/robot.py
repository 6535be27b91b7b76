"""Builds one MuJoCo model holding N copies of the robot on the terrain, and the index tables
that let the environment read and write every robot's state with vectorised numpy.

All N robots live in one ``MjModel``: one ``mj_step`` advances them all in C, and their state
sits in contiguous arrays (``qpos``, ``xpos``, ``cfrc_ext``...) that numpy can gather with
precomputed indices. Robots collide only with the terrain (contype/conaffinity bits in the
MJCF), so the N copies never interact. Every joint, actuator and body is looked up by name,
so an MJCF that lists its legs or actuators in another order maps the same way.

The robot itself is data (:mod:`anymal_ros.config.robot`): its YAML names the MJCF, the joints,
the feet and the PD loop; :func:`derive_leg_chains` reads the legs' geometry off the compiled
model, so nothing about the legs is kept by hand beside the MJCF.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from anymal_ros.config.robot import LegChains, RobotDescription, load_robot
from anymal_ros.config.sim import SimConfig
from anymal_ros.contract import JOINT_NAMES, LEGS
from anymal_ros.sim.terrain import Terrain

ROLE_NONE, ROLE_BASE, ROLE_THIGH, ROLE_SHANK, ROLE_FOOT = 0, 1, 2, 3, 4


def robot_prefix(env: int) -> str:
    return f"r{env}/"


@dataclass
class RobotIndex:
    """Index tables into the merged model's arrays (N robots)."""

    num_envs: int
    qpos_base: np.ndarray  # [N, 7] position then quaternion (w, x, y, z)
    qvel_base: np.ndarray  # [N, 6] world linear velocity then local angular velocity
    qpos_joint: np.ndarray  # [N, 12] JOINT_NAMES order
    qvel_joint: np.ndarray  # [N, 12]
    actuator: np.ndarray  # [N, 12] actuator driving each joint, JOINT_NAMES order
    base_body: np.ndarray  # [N]
    foot_body: np.ndarray  # [N, 4] LEGS order
    thigh_body: np.ndarray  # [N, 4]
    shank_body: np.ndarray  # [N, 4]
    base_bodies: np.ndarray  # [N, k] trunk and hips: touching the ground ends an episode
    foot_geom: np.ndarray  # [N, 4]
    geom_env: np.ndarray  # [ngeom] robot owning each geom (-1: terrain)
    geom_leg: np.ndarray  # [ngeom] leg of each foot geom (-1 otherwise)
    dof_base: np.ndarray  # [N, 6]
    dof_joint: np.ndarray  # [N, 12]
    joint_lower: np.ndarray  # [12]
    joint_upper: np.ndarray  # [12]


def load_robot_spec(robot: RobotDescription) -> mujoco.MjSpec:
    path = Path(robot.mjcf)
    if not path.is_file():
        raise FileNotFoundError(f"robot MJCF not found: {path}")
    return mujoco.MjSpec.from_file(str(path))


def derive_leg_chains(
    model: mujoco.MjModel, robot: RobotDescription, prefix: str = ""
) -> LegChains:
    """The legs' joint anchors and axes and foot centres in the base frame at the zero pose,
    read off ``model`` (a robot alone or one copy ``prefix`` of a merged world)."""
    data = mujoco.MjData(model)
    base = _id(model, mujoco.mjtObj.mjOBJ_BODY, prefix + robot.base_body)
    free = model.body_jntadr[base]
    if free >= 0 and model.jnt_type[free] == mujoco.mjtJoint.mjJNT_FREE:
        data.qpos[model.jnt_qposadr[free] : model.jnt_qposadr[free] + 7] = [0, 0, 0, 1, 0, 0, 0]
    for name in robot.joint_names:  # the zero pose
        data.qpos[model.jnt_qposadr[_id(model, mujoco.mjtObj.mjOBJ_JOINT, prefix + name)]] = 0
    mujoco.mj_kinematics(model, data)
    origin, rot = data.xpos[base].copy(), data.xmat[base].reshape(3, 3).copy()

    def in_base(p: np.ndarray) -> tuple[float, float, float]:
        return tuple(float(v) for v in rot.T @ (p - origin))

    anchors, axes = [], []
    for name in robot.joint_names:
        j = _id(model, mujoco.mjtObj.mjOBJ_JOINT, prefix + name)
        if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
            raise ValueError(f"joint {name!r} must be a hinge (revolute) joint")
        anchors.append(in_base(data.xanchor[j]))
        axes.append(tuple(float(v) for v in rot.T @ data.xaxis[j]))
    feet = []
    radius = []
    for body in robot.foot_bodies:
        geom = _foot_geom(model, _id(model, mujoco.mjtObj.mjOBJ_BODY, prefix + body))
        feet.append(in_base(data.geom_xpos[geom]))
        radius.append(float(model.geom_size[geom, 0]))
    if max(radius) - min(radius) > 1e-9:
        raise ValueError(f"the feet must share one radius, got {radius}")
    return LegChains(tuple(anchors), tuple(axes), tuple(feet), radius[0])


_LEG_CHAINS: dict[tuple, LegChains] = {}


def leg_chains_of(robot: RobotDescription) -> LegChains:
    """:func:`derive_leg_chains` of ``robot`` compiled alone (cached per MJCF and bodies)."""
    key = (robot.mjcf, robot.base_body, robot.joint_names, robot.foot_bodies)
    if key not in _LEG_CHAINS:
        _LEG_CHAINS[key] = derive_leg_chains(load_robot_spec(robot).compile(), robot)
    return _LEG_CHAINS[key]


def _foot_geom(model: mujoco.MjModel, body: int) -> int:
    """The foot body's contact sphere."""
    first = model.body_geomadr[body]
    spheres = [
        g
        for g in range(first, first + model.body_geomnum[body])
        if model.geom_type[g] == mujoco.mjtGeom.mjGEOM_SPHERE and model.geom_contype[g]
    ]
    if len(spheres) != 1:
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body)
        raise ValueError(f"foot body {name!r} needs exactly one colliding sphere geom")
    return spheres[0]


def trunk_underside(model: mujoco.MjModel, base_body: int, per_side: int = 5) -> np.ndarray:
    """``[2 * per_side, 3]`` points (base frame) along the two lower long edges of the box
    bounding the base body's colliding geoms (of any type): where a trunk meets a step first."""
    first = model.body_geomadr[base_body]
    signs = np.array(np.meshgrid([-1, 1], [-1, 1], [-1, 1])).reshape(3, -1).T  # a box's corners
    corners = []
    for g in range(first, first + model.body_geomnum[base_body]):
        if not model.geom_contype[g]:
            continue
        rot = np.empty(9)
        mujoco.mju_quat2Mat(rot, model.geom_quat[g])
        centre, half = model.geom_aabb[g, :3], model.geom_aabb[g, 3:]  # in the geom's frame
        corners.append(model.geom_pos[g] + (centre + signs * half) @ rot.reshape(3, 3).T)
    if not corners:
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, base_body)
        raise ValueError(f"base body {name!r} has no colliding geom (its trunk)")
    every = np.concatenate(corners)
    lo, hi = every.min(axis=0), every.max(axis=0)
    x = np.linspace(lo[0], hi[0], per_side)
    return np.array([(xi, y, lo[2]) for y in (lo[1], hi[1]) for xi in x])


def build_world(
    cfg: SimConfig, terrain: Terrain, num_envs: int
) -> tuple[mujoco.MjModel, RobotIndex]:
    """Compile the terrain plus ``num_envs`` robots into one model; return it and its indices."""
    description = load_robot(cfg.robot.description)
    world = mujoco.MjSpec()
    world.modelname = "anymal_ros_world"
    robot = load_robot_spec(description)
    for opt in (world.option, robot.option):  # equal options: no attach-conflict warning
        opt.timestep = cfg.physics.dt
        opt.integrator = _INTEGRATORS[cfg.physics.integrator]
        opt.cone = _cone(cfg)
        opt.impratio = cfg.physics.impratio
        opt.iterations = cfg.physics.solver_iterations
        opt.ls_iterations = cfg.physics.line_search_iterations
        # A robot whose physics diverges is rolled back alone (QuadrupedVecEnv); MuJoCo's
        # auto-reset would reset the whole MjData, every robot of the batch with it. Sparse
        # Jacobians keep one robot's NaN its own: the dense ones MuJoCo picks below 60 dofs
        # (3 robots) multiply it into every robot's row (NaN x 0 is NaN).
        opt.disableflags |= mujoco.mjtDisableBit.mjDSBL_AUTORESET
        opt.jacobian = mujoco.mjtJacobian.mjJAC_SPARSE
    # Arena bytes: contacts and constraints grow linearly with the robots, but MuJoCo's
    # broadphase takes scratch space per pair of bodies (~1.2 bytes each: 354 MB for 1024
    # robots), so the quadratic term is what overflows large batches without it.
    nbody = 1 + num_envs * len(robot.bodies)
    world.memory = int(2e5 + 6e5 * num_envs + 1.5 * nbody**2)
    world.visual.global_.offwidth = 1280
    world.visual.global_.offheight = 720
    if terrain.flat:
        world.worldbody.add_geom(
            name="terrain",
            type=mujoco.mjtGeom.mjGEOM_PLANE,
            size=[terrain.size_x, terrain.size_y, 0.1],
            pos=[terrain.size_x / 2, terrain.size_y / 2, 0.0],
            contype=1,
            conaffinity=2,
            rgba=[0.5, 0.55, 0.6, 1],
        )
    else:
        for i, field in enumerate(terrain.height_fields()):
            name = "terrain" if i == 0 else f"terrain_{i}"
            data, z_min, z_range = field.mujoco_data()
            rows, cols = field.grid.shape
            (size_x, size_y), (x0, y0) = field.size, field.origin
            world.add_hfield(
                name=name,
                size=[size_x / 2, size_y / 2, z_range, 1.0],
                nrow=rows,
                ncol=cols,
                userdata=data.tolist(),
            )
            world.worldbody.add_geom(
                name=name,
                type=mujoco.mjtGeom.mjGEOM_HFIELD,
                hfieldname=name,
                pos=[x0 + size_x / 2, y0 + size_y / 2, z_min],
                contype=1,
                conaffinity=2,
                rgba=[0.5, 0.55, 0.6, 1],
            )
    world.worldbody.add_light(pos=[terrain.size_x / 2, terrain.size_y / 2, 30], dir=[0, 0, -1])
    for env in range(num_envs):
        frame = world.worldbody.add_frame(pos=[1.0 + 0.01 * env, 1.0, 1.0])
        frame.attach_body(robot.copy().body(description.base_body), robot_prefix(env), "")
    model = world.compile()
    _apply_actuator_config(model, description)
    robot_dofs = model.jnt_dofadr[model.jnt_type == mujoco.mjtJoint.mjJNT_HINGE]
    model.dof_damping[robot_dofs] *= cfg.physics.joint_damping_scale
    model.dof_frictionloss[robot_dofs] *= cfg.physics.joint_frictionloss_scale
    model.dof_armature[robot_dofs] *= cfg.physics.armature_scale
    model.geom_solref[:] = [cfg.physics.contact_timeconst, 1.0]  # see PhysicsConfig
    return model, make_index(model, num_envs, description)


_INTEGRATORS = {
    "implicitfast": mujoco.mjtIntegrator.mjINT_IMPLICITFAST,
    "implicit": mujoco.mjtIntegrator.mjINT_IMPLICIT,
    "Euler": mujoco.mjtIntegrator.mjINT_EULER,
    "RK4": mujoco.mjtIntegrator.mjINT_RK4,
}


def _cone(cfg: SimConfig) -> int:
    if cfg.physics.cone == "pyramidal":
        return int(mujoco.mjtCone.mjCONE_PYRAMIDAL)
    return int(mujoco.mjtCone.mjCONE_ELLIPTIC)


def _apply_actuator_config(model: mujoco.MjModel, robot: RobotDescription) -> None:
    kp, kd, limit = robot.kp, robot.kd, robot.torque_limit
    model.actuator_gainprm[:, 0] = kp
    model.actuator_biasprm[:, :3] = [0.0, -kp, -kd]
    model.actuator_forcelimited[:] = 1
    model.actuator_forcerange[:] = [-limit, limit]


def _id(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> int:
    i = mujoco.mj_name2id(model, kind, name)
    if i < 0:
        raise KeyError(f"robot model has no {kind.name.removeprefix('mjOBJ_').lower()} {name!r}")
    return i


def check_imu_site(model: mujoco.MjModel, robot: RobotDescription, prefix: str = "") -> None:
    """The simulator reports orientation and angular velocity in the base frame, as an IMU at
    the base origin would: refuse a robot whose IMU site is elsewhere rather than publish
    readings its real IMU would not give."""
    site = _id(model, mujoco.mjtObj.mjOBJ_SITE, prefix + robot.imu_site)
    base = _id(model, mujoco.mjtObj.mjOBJ_BODY, prefix + robot.base_body)
    aligned = np.allclose(model.site_quat[site], [1, 0, 0, 0]) or np.allclose(
        model.site_quat[site], [-1, 0, 0, 0]
    )
    if model.site_bodyid[site] != base or not np.allclose(model.site_pos[site], 0) or not aligned:
        raise ValueError(
            f"imu_site {robot.imu_site!r} must sit at the origin of body {robot.base_body!r} "
            "with its axes: the simulator reports the IMU in the base frame"
        )


def make_index(model: mujoco.MjModel, num_envs: int, robot: RobotDescription) -> RobotIndex:
    body, joint = mujoco.mjtObj.mjOBJ_BODY, mujoco.mjtObj.mjOBJ_JOINT
    n = num_envs
    check_imu_site(model, robot, robot_prefix(0))
    joint_to_actuator = {}
    for a in range(model.nu):
        if model.actuator_trntype[a] == mujoco.mjtTrn.mjTRN_JOINT:
            joint_to_actuator[int(model.actuator_trnid[a, 0])] = a
    idx = {k: [] for k in ("qb", "vb", "qj", "vj", "act", "base", "foot", "thigh", "shank")}
    idx["hips"] = []
    idx["fgeom"] = []
    for env in range(n):
        p = robot_prefix(env)
        base = _id(model, body, p + robot.base_body)
        free = model.body_jntadr[base]
        if free < 0 or model.jnt_type[free] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError(f"body {p}base must carry the free joint")
        idx["base"].append(base)
        idx["qb"].append(model.jnt_qposadr[free] + np.arange(7))
        idx["vb"].append(model.jnt_dofadr[free] + np.arange(6))
        jids = [_id(model, joint, p + name) for name in JOINT_NAMES]
        idx["qj"].append(model.jnt_qposadr[jids])
        idx["vj"].append(model.jnt_dofadr[jids])
        missing = [
            name for name, j in zip(JOINT_NAMES, jids, strict=True) if j not in joint_to_actuator
        ]
        if missing:
            raise KeyError(f"joints without an actuator: {missing}")
        idx["act"].append([joint_to_actuator[j] for j in jids])
        # Hip, thigh and shank are the bodies the HAA, HFE and KFE joints move.
        hip, thigh, shank = (model.jnt_bodyid[np.asarray(jids).reshape(len(LEGS), 3)[:, k]]
                             for k in range(3))  # fmt: skip
        feet = [_id(model, body, p + name) for name in robot.foot_bodies]
        idx["foot"].append(feet)
        idx["thigh"].append(list(thigh))
        idx["shank"].append(list(shank))
        idx["hips"].append([base] + list(hip))
        idx["fgeom"].append([_foot_geom(model, f) for f in feet])
    geom_env = np.full(model.ngeom, -1, dtype=np.intp)
    geom_leg = np.full(model.ngeom, -1, dtype=np.intp)
    body_env = np.full(model.nbody, -1, dtype=np.intp)
    for env in range(n):
        base = idx["base"][env]
        body_env[model.body_rootid == base] = env
    geom_env[:] = body_env[model.geom_bodyid]
    fgeom = np.asarray(idx["fgeom"], dtype=np.intp)
    geom_leg[fgeom.ravel()] = np.tile(np.arange(len(LEGS)), n)
    jnt0 = [_id(model, joint, robot_prefix(0) + name) for name in JOINT_NAMES]
    arr = lambda key: np.asarray(idx[key], dtype=np.intp)  # noqa: E731
    return RobotIndex(
        num_envs=n,
        qpos_base=arr("qb"),
        qvel_base=arr("vb"),
        qpos_joint=arr("qj"),
        qvel_joint=arr("vj"),
        actuator=arr("act"),
        base_body=arr("base"),
        foot_body=arr("foot"),
        thigh_body=arr("thigh"),
        shank_body=arr("shank"),
        base_bodies=arr("hips"),
        foot_geom=fgeom,
        geom_env=geom_env,
        geom_leg=geom_leg,
        dof_base=arr("vb"),
        dof_joint=arr("vj"),
        joint_lower=model.jnt_range[jnt0, 0].copy(),
        joint_upper=model.jnt_range[jnt0, 1].copy(),
    )
