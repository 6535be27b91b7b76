"""The robot is data: descriptions load and fail clearly, the leg kinematics derived from an
MJCF equal MuJoCo's own, ANYmal C equals its published figures, and a second robot goes
through training, export and the policy node with no code change."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mujoco
import numpy as np
import pytest
import yaml
from sim_helpers import tiny_sim

from anymal_ros.config import ConfigError
from anymal_ros.config.robot import ROBOT_DIR, load_robot
from anymal_ros.contract import JOINT_NAMES, LEGS
from anymal_ros.obs.kinematics import LegKinematics
from anymal_ros.sim.robot import derive_leg_chains, leg_chains_of, load_robot_spec

BUNDLED = sorted(p.stem for p in ROBOT_DIR.glob("*.yaml"))


def scaled_robot(tmp_path: Path, factor: float = 1.1, name: str = "scaled") -> Path:
    """ANYmal C with every leg link ``factor`` times as long (a robot that exists nowhere
    else): its MJCF written by MuJoCo's spec API, its YAML a copy with the new MJCF."""
    robot = load_robot("anymal_c")
    spec = load_robot_spec(robot)
    for body in spec.bodies:
        if body.name in ("world", robot.base_body):
            continue
        body.pos = np.asarray(body.pos) * factor
        for geom in body.geoms:
            geom.pos = np.asarray(geom.pos) * factor
            geom.fromto = np.asarray(geom.fromto) * factor
    (tmp_path / f"{name}.xml").write_text(spec.to_xml())
    data = dataclasses.asdict(robot)
    data.update(name=name, mjcf=f"{name}.xml", nominal_base_height=0.549 * factor)
    data["joint_names"], data["foot_bodies"] = list(robot.joint_names), list(robot.foot_bodies)
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def mujoco_feet(robot, q: np.ndarray) -> np.ndarray:
    """Foot-sphere centres ``[4, 3]`` in the base frame by MuJoCo's forward kinematics."""
    model = load_robot_spec(robot).compile()
    data = mujoco.MjData(model)
    for name, value in zip(robot.joint_names, q, strict=True):
        data.qpos[model.joint(name).qposadr[0]] = value
    data.qpos[3:7] = [0.8, 0.2, -0.3, 0.4] / np.linalg.norm([0.8, 0.2, -0.3, 0.4])
    mujoco.mj_kinematics(model, data)
    base = model.body(robot.base_body).id
    rot = data.xmat[base].reshape(3, 3)
    feet = [data.geom_xpos[model.body(b).geomadr[0]] for b in robot.foot_bodies]
    return (np.array(feet) - data.xpos[base]) @ rot


@pytest.mark.parametrize("which", [*BUNDLED, "scaled"])
def test_derived_leg_kinematics_equal_mujoco_for_random_angles(which, tmp_path):
    robot = load_robot(str(scaled_robot(tmp_path)) if which == "scaled" else which)
    kin = LegKinematics(leg_chains_of(robot))
    rng = np.random.default_rng(0)
    for _ in range(20):
        q = np.array(robot.default_pose()) + rng.uniform(-1.0, 1.0, size=12)
        np.testing.assert_allclose(kin.forward(q[None])[0], mujoco_feet(robot, q), atol=1e-6)


@pytest.mark.parametrize("which", BUNDLED)
def test_nominal_base_height_is_the_mjcf_stance(which):
    robot = load_robot(which)
    chains = leg_chains_of(robot)
    feet = LegKinematics(chains).forward(np.array(robot.default_pose())[None])[0]
    soles = feet[:, 2] - chains.foot_radius
    assert robot.nominal_base_height == pytest.approx(-soles.mean(), abs=1e-3)


# ANYbotics' public anymal_c_simple_description (the URDF, BSD-3-Clause), also carried by
# MuJoCo Menagerie's anybotics_anymal_c: masses (kg); joint origins in the base frame at the
# zero pose (m); foot-sphere centre relative to the KFE joint; HAA ranges (rad). For the left
# front leg; the others mirror x (hind) and y (right).
PUBLISHED = {
    "mass": {"base": 19.2035, "hip": 2.781, "thigh": 3.071, "shank": 0.58842},
    "HAA": (0.2999, 0.104, 0.0),
    "HFE": (0.2999 + 0.0599, 0.104 + 0.08381, 0.0),
    "KFE": (0.2999 + 0.0599, 0.104 + 0.08381 + 0.1003, -0.285),
    "foot_from_KFE": (0.08795, 0.01305, -0.31547),
    "HAA_range_left": (-0.72, 0.49),
    "foot_radius": 0.03,
    "total_mass": 44.965,
}


def test_anymal_c_equals_its_published_figures():
    robot = load_robot("anymal_c")
    model = load_robot_spec(robot).compile()
    m = PUBLISHED["mass"]
    for leg in LEGS:
        assert model.body(f"{leg}_HIP").mass[0] == pytest.approx(m["hip"])
        assert model.body(f"{leg}_THIGH").mass[0] == pytest.approx(m["thigh"])
        # The shank body carries the foot (a massless sphere), as in the description.
        shank = model.body(f"{leg}_SHANK").id
        subtree = model.body_subtreemass[shank]
        assert subtree == pytest.approx(m["shank"])
    assert model.body("base").mass[0] == pytest.approx(m["base"])
    assert model.body_subtreemass[model.body("base").id] == pytest.approx(
        PUBLISHED["total_mass"], abs=1e-3
    )
    chains = leg_chains_of(robot)
    anchors = np.array(chains.joint_anchors).reshape(4, 3, 3)
    for i, leg in enumerate(LEGS):
        mirror = np.array([1.0 if leg[1] == "F" else -1.0, 1.0 if leg[0] == "L" else -1.0, 1.0])
        for j, kind in enumerate(("HAA", "HFE", "KFE")):
            np.testing.assert_allclose(anchors[i, j], mirror * PUBLISHED[kind], atol=1e-9)
        foot = np.array(chains.foot_centres[i]) - anchors[i, 2]
        np.testing.assert_allclose(foot, mirror * PUBLISHED["foot_from_KFE"], atol=1e-9)
        lo, hi = PUBLISHED["HAA_range_left"]
        expected = (lo, hi) if leg[0] == "L" else (-hi, -lo)
        np.testing.assert_allclose(model.joint(f"{leg}_HAA").range, expected)
    assert chains.foot_radius == PUBLISHED["foot_radius"]
    # The axes: HAA along x, HFE and KFE along y, at the zero pose.
    axes = np.array(chains.joint_axes).reshape(4, 3, 3)
    np.testing.assert_allclose(axes[:, 0], np.tile([1.0, 0, 0], (4, 1)), atol=1e-12)
    np.testing.assert_allclose(axes[:, 1:], np.tile([0, 1.0, 0], (4, 2, 1)), atol=1e-12)


def test_a_bad_description_names_the_problem(tmp_path):
    with pytest.raises(ConfigError, match="bundled robots: .*anymal_c"):
        load_robot("anymal_d")
    data = yaml.safe_load((ROBOT_DIR / "anymal_c.yaml").read_text())
    data["mjcf"] = str(ROBOT_DIR / "anymal_c.xml")
    renamed = {**data, "joint_names": [n.lower() for n in JOINT_NAMES]}
    (tmp_path / "renamed.yaml").write_text(yaml.safe_dump(renamed))
    with pytest.raises(ConfigError, match="joint_names must be"):
        load_robot(str(tmp_path / "renamed.yaml"))
    no_foot = {**data, "foot_bodies": ["LF_FOOT", "RF_FOOT", "LH_FOOT", "LH_SHANK"]}
    (tmp_path / "no_foot.yaml").write_text(yaml.safe_dump(no_foot))
    with pytest.raises(ValueError, match="LH_SHANK.*sphere"):
        derive_leg_chains(load_robot_spec(load_robot("anymal_c")).compile(),
                          load_robot(str(tmp_path / "no_foot.yaml")))  # fmt: skip


def test_an_imu_away_from_the_base_origin_is_refused(tmp_path):
    from anymal_ros.sim.robot import check_imu_site

    robot = load_robot("anymal_c")
    model = load_robot_spec(robot).compile()
    check_imu_site(model, robot)  # the bundled robot's IMU is the base frame
    model.site_pos[model.site(robot.imu_site).id] = [0.1, 0.0, 0.05]
    with pytest.raises(ValueError, match="imu_site 'imu' must sit at the origin"):
        check_imu_site(model, robot)
    missing = dataclasses.replace(robot, imu_site="lidar")
    with pytest.raises(KeyError, match="no site 'lidar'"):
        check_imu_site(load_robot_spec(robot).compile(), missing)


TRAIN = [
    "env.num_envs=4", "env.num_workers=1", "ppo.num_steps=8", "ppo.num_minibatches=1",
    "ppo.num_epochs=1", "runner.iterations=2", "runner.torch_threads=1",
    "runner.tensorboard=false", "runner.progress=false",
]  # fmt: skip
DISTILL = [
    "env.num_envs=2", "env.num_workers=1", "runner.torch_threads=1", "runner.iterations=1",
    "dagger.num_steps=8", "loss.tbptt_steps=4", "loss.num_minibatches=1",
    "runner.tensorboard=false", "runner.progress=false",
]  # fmt: skip


@pytest.mark.slow
@pytest.mark.ros
def test_a_second_robot_trains_exports_and_runs_in_the_policy_node(ros, tmp_path):
    from rclpy.lifecycle import TransitionCallbackReturn
    from rclpy.parameter import Parameter
    from ros_helpers import FakeRobot

    from anymal_ros.cli import main
    from anymal_ros.deploy.runtime import OnnxPolicy
    from anymal_ros.nodes.policy_node import PolicyNode

    robot_yaml = scaled_robot(tmp_path, factor=1.1)
    sim = {**tiny_sim(episode_length_s=1.0), "actions": {"mode": "cpg"}}
    sim["robot"] = {"description": str(robot_yaml)}
    (tmp_path / "sim.yaml").write_text(yaml.safe_dump({"env": {"sim": sim}}))
    teacher_cfg = tmp_path / "teacher.yaml"
    teacher_cfg.write_text(f"extends: {Path('config/teacher_ppo.yaml').resolve()}\n"
                           + (tmp_path / "sim.yaml").read_text())  # fmt: skip
    teacher = tmp_path / "teacher"
    assert main(["train", "ppo", "--config", str(teacher_cfg), "--run-dir", str(teacher),
                 "--set", *TRAIN]) == 0  # fmt: skip
    student = tmp_path / "student"
    assert main(["distill", "--teacher", str(teacher / "checkpoints" / "latest.pt"),
                 "--config", "config/distill.yaml", "--run-dir", str(student),
                 "--set", *DISTILL]) == 0  # fmt: skip
    onnx = tmp_path / "student.onnx"
    assert main(["export", str(student / "checkpoints" / "latest.pt"), "--out", str(onnx)]) == 0

    meta = OnnxPolicy(onnx).metadata
    scaled = load_robot(str(robot_yaml))
    assert meta.robot == "scaled"
    assert meta.leg_chains == leg_chains_of(scaled)  # the file carries the robot's legs

    node = ros.add(
        PolicyNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("model_path", value=str(onnx)),
                Parameter("stand_duration", value=0.1),
            ],
        )
    )
    fake = ros.add(FakeRobot(ros.context))  # fmt: skip
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    decoder = node.controller.decoder
    np.testing.assert_allclose(  # the CPG stands on the scaled legs
        decoder.nominal_feet, LegKinematics(leg_chains_of(scaled)).forward(
            np.array(scaled.default_pose())[None])[0], atol=1e-9)  # fmt: skip
    assert ros.spin_until(lambda: node.controller.health(node.now()).proprioception, 5.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: len(fake.targets) >= 3, 5.0)
    assert np.all(np.isfinite(fake.targets[-1]))


@pytest.mark.parametrize("which", BUNDLED)
def test_the_contracts_fallback_pose_is_every_bundled_robots_default(which):
    # The contract keeps a default pose for code that runs without a robot (a fresh test
    # student, the joint-residual decoder's fallback); it must be the bundled robots' pose.
    from anymal_ros.contract import default_joint_positions

    assert load_robot(which).default_pose() == tuple(default_joint_positions())
