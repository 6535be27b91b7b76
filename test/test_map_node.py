"""policy_node on the elevation-map path over DDS: a stale map stops the walk with the reason
on /diagnostics; closed loop sim_node map -> policy_node -> sim_node up and down 10 cm stairs."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("grid_map_msgs.msg", reason="make install builds them")
pytest.importorskip("anymal_ros.obs.proprio", reason="needs the observation contract")

from geometry_msgs.msg import Twist  # noqa: E402
from rclpy.lifecycle import TransitionCallbackReturn  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import FakeRobot  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.policy_node import PolicyNode  # noqa: E402
from anymal_ros.nodes.safety import Mode  # noqa: E402
from anymal_ros.nodes.sim_node import SimNode  # noqa: E402

pytestmark = pytest.mark.ros
REPO = Path(__file__).resolve().parents[1]


def params(**values) -> list[Parameter]:
    return [Parameter(k, value=v) for k, v in values.items()]


def test_stale_map_stops_the_walk_with_the_reason_on_diagnostics(ros, student_path):
    robot = ros.add(FakeRobot(ros.context))
    lenient = {f"{name}_timeout": 1.0 for name in ("joint_states", "imu", "odom")}
    node = ros.add(
        PolicyNode(
            context=ros.context,
            parameter_overrides=params(
                model_path=str(student_path), stand_duration=0.1, diagnostics_period=0.2,
                elevation_map_timeout=0.5, **lenient,
            ),
        )
    )  # fmt: skip
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.health(node.now()).heights, 5.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: robot.targets, 5.0)
    ros.spin_for(0.15)
    assert ros.call(robot.mode_clients["walk"], Trigger.Request()).success
    assert ros.spin_until(lambda: (robot.diagnostics or [{}])[-1].get("heights.stale") == "no", 5.0)
    assert robot.diagnostics[-1]["heights.source"] == "elevation_map"

    robot.map_stamp_age = 1.0  # maps keep arriving, but each was built a second ago
    assert ros.spin_until(lambda: node.controller.mode is Mode.STAND, 5.0)
    assert "watchdog" in str(node.controller.safety.last_transition)

    # Each map is rejected on arrival for its old stamp (README "Input checks"); the heights
    # go stale and the rejections say why.
    def told() -> bool:
        diag = robot.diagnostics[-1]
        return "header.stamp" in diag.get("elevation_map.last_error", "") and diag.get(
            "heights.stale", "no"
        ).startswith("elevation_map: newest arrived")

    assert ros.spin_until(told, 5.0), robot.diagnostics[-1]
    diag = robot.diagnostics[-1]
    assert "older than the elevation_map timeout" in diag["elevation_map.last_error"]
    assert diag["heights.stale"] != "no" and "elevation_map" in diag["_message"], diag
    assert not ros.call(robot.mode_clients["walk"], Trigger.Request()).success

    robot.map_stamp_age = 0.0
    robot.enabled["elevation_map"] = False  # no map at all
    assert ros.spin_until(
        lambda: "newest arrived" in robot.diagnostics[-1].get("heights.stale", ""), 5.0
    )


def test_closed_loop_on_the_map_path_up_10_cm_stairs(ros):
    """The bundled student, sim_node's map, no falls; the robot must actually climb.

    Both nodes run on the simulator's /clock at half real time: on a loaded 2-core machine
    real time costs the controller missed ticks (and, with them, falls on either height
    path), which is not what this test is about."""
    sim = ros.add(
        SimNode(
            context=ros.context,
            parameter_overrides=params(
                terrain_kind="heightfield", sim_config=str(REPO / "config/sim_stairs.yaml"),
                real_time_factor=0.5, publish_clock=True, use_sim_time=True,
                robot=OnnxPolicy(REPO / "policies/student.onnx").metadata.robot,
            ),
        )
    )  # fmt: skip
    node = ros.add(
        PolicyNode(
            context=ros.context,
            # Closed-loop stability is under test, not the watchdog: a loaded machine may
            # stall the physics thread for longer than the robot's 0.1 s.
            parameter_overrides=params(
                model_path=str(REPO / "policies/student.onnx"), stand_duration=1.0,
                joint_states_timeout=0.5, imu_timeout=0.5, odom_timeout=0.5,
                cmd_vel_timeout=1.0, use_sim_time=True,
            ),
        )
    )  # fmt: skip
    teleop = ros.add(Node("teleop", context=ros.context))
    pub = teleop.create_publisher(Twist, "/cmd_vel", 10)
    forward = Twist()
    forward.linear.x = 0.5
    teleop.create_timer(0.05, lambda: pub.publish(forward))
    assert node.trigger_configure() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.health(node.now()).heights, 10.0)
    assert node.trigger_activate() == TransitionCallbackReturn.SUCCESS
    assert ros.spin_until(lambda: node.controller.request(Mode.WALK, node.now())[0], 15.0)
    terrain = sim.robot.env.terrain
    start, lowest, highest = sim.robot.time, np.inf, -np.inf

    def track() -> bool:
        nonlocal lowest, highest
        with sim.lock:
            xy = sim.robot.state().base_pos[:2]
        h = float(terrain.heights(xy[None])[0])
        lowest, highest = min(lowest, h), max(highest, h)
        return sim.robot.time - start >= 12.0

    ros.spin_until(track, 90.0)
    assert sim.robot.time - start >= 10.0, "the simulation fell far behind"
    assert sim.falls == 0, sim.fall_reasons
    assert node.controller.mode is Mode.WALK
    # From the pit's floor, 1 m below the rim: five steps or more.
    assert highest - lowest >= 0.5, f"climbed only {highest - lowest:.2f} m"
    assert node.controller.missing_heights < 20
