"""policy_node publishes the student's belief over real DDS: the terrain cloud's points and
fields match the decoder's output for that tick, the privileged estimate is a named vector,
and a file without a decoder says on /diagnostics that the belief is unavailable."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from diagnostic_msgs.msg import DiagnosticArray
from rclpy.lifecycle import TransitionCallbackReturn
from ros_helpers import FakeRobot, RosSession
from sensor_msgs.msg import JointState, PointCloud2
from std_srvs.srv import Trigger
from test_policy_node import start as start_node

from anymal_ros.config.models import StudentConfig, sized_for_action_mode
from anymal_ros.contract import NUM_LEGS, default_joint_positions, height_sample_offsets
from anymal_ros.deploy.export import export_student
from anymal_ros.models.student import Student
from anymal_ros.nodes.belief import TERRAIN_FIELDS
from anymal_ros.nodes.policy_node import PolicyNode
from anymal_ros.ros_io.messages import PRIVILEGED_NAMES

pytestmark = pytest.mark.ros

LENIENT = {f"{name}_timeout": 1.0 for name in ("joint_states", "imu", "odom")}


@pytest.fixture(scope="module")
def belief_student(tmp_path_factory):
    """A joint-residual student (stands still when walking on a still robot) whose decoder
    outputs are far from zero, exported with and without its belief decoder."""
    torch.manual_seed(0)
    student = Student(sized_for_action_mode(StudentConfig(), "joint_residual")).eval()
    with torch.no_grad():
        for head in (student.heights_decoder, student.privileged_decoder, student.decoder_gate):
            for p in head.parameters():
                p.add_(torch.randn_like(p) * 0.3)
    folder = tmp_path_factory.mktemp("belief_node")
    with_belief = export_student(student, folder / "with.onnx")
    without = export_student(student, folder / "without.onnx", belief=False)
    return student, with_belief, without


def start(ros: RosSession, path, **params) -> tuple[PolicyNode, FakeRobot]:
    return start_node(ros, path, **{"stand_duration": 0.1, **LENIENT, **params})


def walk(ros: RosSession, node: PolicyNode, robot: FakeRobot) -> None:
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.health(node.now()).proprioception, 5.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: len(robot.targets) > 0, 5.0)
    ros.spin_for(0.15)  # stand_duration 0.1 s
    response = ros.call(robot.mode_clients["walk"], Trigger.Request())
    assert response.success, response.message


def belief_diagnostics(robot: FakeRobot) -> list[dict[str, str]]:
    seen: list[dict[str, str]] = []

    def record(msg: DiagnosticArray) -> None:
        for status in msg.status:
            if status.name.endswith(": belief"):
                entry = {kv.key: kv.value for kv in status.values}
                entry["_message"], entry["_level"] = status.message, status.level[0]
                seen.append(entry)

    robot.create_subscription(DiagnosticArray, "/diagnostics", record, 10)
    return seen


def expected_points(q: np.ndarray, position, yaw: float, meta) -> tuple[np.ndarray, np.ndarray]:
    """Sample x/y ``[4, 52, 2]`` and sole heights ``[4]`` computed here from scratch: feet by
    forward kinematics, placed by a yaw-only pose, rings turned by the yaw."""
    c, s = np.cos(yaw), np.sin(yaw)
    rot = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    feet = meta.kinematics.forward(q[None])[0] @ rot.T + np.asarray(position)
    rings = height_sample_offsets().astype(np.float64) @ rot[:2, :2].T  # [52, 2]
    return feet[:, None, :2] + rings[None], feet[:, 2] - meta.foot_radius


def test_the_terrain_cloud_over_dds_is_what_the_decoder_computed(ros, belief_student):
    student, path, _ = belief_student
    # The measured heights are the robot's cloud (the map path has its own tests).
    node, robot = start(ros, path, belief_rate=10.0, height_source="height_samples")
    yaw, position = 0.7, (1.5, -2.0, 0.55)

    def pose(odom) -> None:
        odom.header.frame_id = "odom"
        p, o = odom.pose.pose.position, odom.pose.pose.orientation
        p.x, p.y, p.z = position
        o.w, o.z = float(np.cos(yaw / 2)), float(np.sin(yaw / 2))

    robot.edit["odom"] = pose
    robot.joint_pos = default_joint_positions() + 0.03 * np.arange(12) / 12
    rng = np.random.default_rng(0)
    robot.heights = (-0.5 + 0.1 * rng.standard_normal((4, 52))).astype(np.float32)
    clouds: list[PointCloud2] = []
    privileged: list[JointState] = []
    robot.create_subscription(PointCloud2, "/policy_node/belief/terrain", clouds.append, 10)
    robot.create_subscription(JointState, "/policy_node/belief/privileged", privileged.append, 10)
    walk(ros, node, robot)
    assert ros.spin_until(lambda: len(clouds) >= 3 and len(privileged) >= 3, 5.0)
    assert node.controller.mode.value == "WALK"

    by_stamp = {s.stamp: s for s in node.belief.samples}
    meta = node.controller.metadata
    xy, sole = expected_points(robot.joint_pos, position, yaw, meta)
    for cloud in clouds[-3:]:
        stamp = (cloud.header.stamp.sec, cloud.header.stamp.nanosec)
        sample = by_stamp[stamp]  # a cloud the node computed at a tick, by its stamp
        assert cloud.header.frame_id == "odom"
        assert [f.name for f in cloud.fields] == list(TERRAIN_FIELDS)
        assert cloud.width * cloud.height == NUM_LEGS * 52
        data = np.frombuffer(bytes(cloud.data), dtype="<f4").reshape(4, 52, len(TERRAIN_FIELDS))
        # The decoder, recomputed in torch from the inputs of that tick.
        with torch.no_grad():
            heights, _ = student.decode_in_units(
                torch.from_numpy(sample.hidden[-1]), torch.from_numpy(sample.belief.measured)[None]
            )
        believed = heights[0].numpy()
        np.testing.assert_allclose(data[..., 4], believed, atol=1e-5)
        np.testing.assert_allclose(data[..., 3], robot.heights, atol=1e-6)  # the input
        np.testing.assert_allclose(data[..., 5], believed - robot.heights, atol=1e-5)
        np.testing.assert_allclose(data[..., :2], xy, atol=1e-4)
        np.testing.assert_allclose(data[..., 2], sole[:, None] + believed, atol=1e-4)
        assert np.abs(believed - robot.heights).max() > 0.01  # not the input echoed back
    # The privileged estimate: named, stamped like the cloud, the decoder's values.
    msg = privileged[-1]
    sample = by_stamp[(msg.header.stamp.sec, msg.header.stamp.nanosec)]
    assert list(msg.name) == list(PRIVILEGED_NAMES)
    with torch.no_grad():
        _, ref = student.decode_in_units(
            torch.from_numpy(sample.hidden[-1]), torch.from_numpy(sample.belief.measured)[None]
        )
    np.testing.assert_allclose(msg.position, ref[0].numpy(), atol=1e-5)


def test_diagnostics_report_per_foot_disagreement_and_warn_above_the_threshold(ros, belief_student):
    _, path, _ = belief_student
    node, robot = start(ros, path, belief_rate=10.0, belief_disagreement_warn=1e-3)
    seen = belief_diagnostics(robot)
    walk(ros, node, robot)
    # 10 Hz, not every 50 Hz tick: one second of walking gives about ten.
    ticks, beliefs = node.ticks, node.belief.published
    ros.spin_for(1.0)
    ticks, beliefs = node.ticks - ticks, node.belief.published - beliefs
    assert 0 < beliefs <= 11 and beliefs <= ticks / 4, (beliefs, ticks)
    assert ros.spin_until(lambda: any(d["belief"] == "available" for d in seen), 5.0)
    last = [d for d in seen if d["belief"] == "available"][-1]
    error = node.belief.samples[-1].belief.disagreement()
    for leg, e in zip(("LF", "RF", "LH", "RH"), error, strict=True):
        assert float(last[f"disagreement.{leg}"]) == pytest.approx(e, abs=0.01)
    assert last["_level"] == 1 and "disagree" in last["_message"]  # 1 mm: every foot warns


def test_a_file_without_the_decoder_says_the_belief_is_unavailable(ros, belief_student):
    _, _, without = belief_student
    node, robot = start(ros, without, belief_rate=10.0)
    seen = belief_diagnostics(robot)
    clouds: list[PointCloud2] = []
    robot.create_subscription(PointCloud2, "/policy_node/belief/terrain", clouds.append, 10)
    walk(ros, node, robot)
    assert ros.spin_until(lambda: len(seen) >= 2, 5.0)
    assert seen[-1]["belief"] == "unavailable"
    assert "no belief decoder" in seen[-1]["_message"]
    assert len(robot.targets) > 0 and not clouds  # the node controls, and publishes no belief


def test_bad_belief_parameters_fail_configure_with_the_reason(ros, belief_student):
    _, path, _ = belief_student
    node, _ = start(ros, path, belief_rate=-1.0)
    assert node.trigger_configure() == TransitionCallbackReturn.FAILURE
    assert "belief_rate" in node.configure_error
