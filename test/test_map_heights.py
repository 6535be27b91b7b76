"""Height samples from an elevation map: the node's path against the simulator's own samples,
and the controller's map input (frames, fixed transform, staleness, missing points).

Measured (40 random states per terrain, 8 m map of the simulator's terrain, through a
serialized GridMap): flat 0 mm; rough (6 cm amplitude) max 14.9 mm, p99 6.8 mm; 10 cm stairs
max 14.7 mm, p99 9.2 mm at 4 cm cells; the error halves with the cell size (2 cm: 6.4 / 5.2
mm max), so it is the map's discretisation: a bilinear map of a terrain with kinks is off by
at most about a quarter cell times the change of slope in each axis. Asserted: max <= half a
cell times the terrain's steepest slope (24 mm rough, 20 mm stairs at 4 cm), p99 <= 10 mm.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

pytest.importorskip("grid_map_msgs.msg", reason="make install builds them")
from geometry_msgs.msg import Twist  # noqa: E402
from grid_map_msgs.msg import GridMap  # noqa: E402
from nav_msgs.msg import Odometry  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402

from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.robot import load_robot  # noqa: E402
from anymal_ros.config.sim import SimConfig  # noqa: E402
from anymal_ros.contract import JOINT_NAMES, default_joint_positions  # noqa: E402
from anymal_ros.deploy.height_map import FootHeightSampler, MapPlacement  # noqa: E402
from anymal_ros.deploy.runtime import OnnxPolicy  # noqa: E402
from anymal_ros.nodes.controller import ControllerConfig, PolicyController  # noqa: E402
from anymal_ros.nodes.safety import Mode, SafetyConfig  # noqa: E402
from anymal_ros.obs.kinematics import LegKinematics  # noqa: E402
from anymal_ros.obs.rotations import quat_from_yaw  # noqa: E402
from anymal_ros.ros_io.grid_map import decode_grid_map, grid_map_message  # noqa: E402
from anymal_ros.ros_io.messages import fill_joint_state  # noqa: E402
from anymal_ros.sim.elevation_map import map_cells, terrain_map  # noqa: E402
from anymal_ros.sim.robot import leg_chains_of  # noqa: E402

REPO = __import__("pathlib").Path(__file__).resolve().parents[1]
RES = 0.04


def sim_robot(kind: str):
    from anymal_ros.nodes.sim_robot import SimRobot

    base = SimConfig()
    if kind == "stairs":
        cfg = load_config(SimConfig, REPO / "config/sim_stairs.yaml")
    else:
        terrain = dataclasses.replace(
            base.terrain,
            kind="flat" if kind == "flat" else "heightfield",
            num_levels=3,
            num_columns=3,
            proportions={"rough": 1.0},
            rough_amplitude=(0.06, 0.06),
            curriculum=False,
            max_init_level=0,
        )
        cfg = dataclasses.replace(base, terrain=terrain)
    return SimRobot(cfg, seed=0)


def random_states(robot, count: int, seed: int = 0):
    """Poses anywhere on the centre tile (stairs included), any yaw, a little roll and pitch,
    joints off the default pose: the geometry, not the physics, is under test."""
    rng = np.random.default_rng(seed)
    idx, terrain = robot.index, robot.env.terrain
    centre = terrain.tile_origins[1, 1, :2]
    for _ in range(count):
        xy = centre + rng.uniform(-3.5, 3.5, 2)
        quat = quat_from_yaw(np.array([rng.uniform(-np.pi, np.pi)]))[0]
        quat = quat + np.r_[0.0, rng.normal(0.0, 0.05, 2), 0.0]
        z = terrain.heights(xy[None])[0] + 0.55
        robot.data.qpos[idx.qpos_base[0]] = np.r_[xy, z, quat / np.linalg.norm(quat)]
        joints = robot.env.default_joint_pos + rng.uniform(-0.3, 0.3, 12)
        robot.data.qpos[idx.qpos_joint[0]] = joints
        robot._forward()
        yield robot.state()


def map_heights(robot, state, sampler) -> np.ndarray:
    """The node's path: sim_node's map -> serialized GridMap -> decoder -> rings."""
    grid, centre = terrain_map(robot.env.terrain, state.base_pos, map_cells(8.0, RES), RES)
    msg = grid_map_message(grid, centre, RES, "odom", start_index=(17, 101))
    decoded = decode_grid_map(deserialize_message(serialize_message(msg), GridMap))
    return sampler.sample(decoded, state.joint_pos, state.base_pos, state.base_quat)


def sampler_of(robot) -> FootHeightSampler:
    """The node's sampler with the simulated robot's legs, derived from its MJCF."""
    return FootHeightSampler(LegKinematics(robot.env.leg_chains), robot.env.leg_chains.foot_radius)


@pytest.mark.parametrize("kind", ["flat", "rough", "stairs"])
def test_map_heights_equal_the_simulators_within_the_discretisation(kind):
    robot = sim_robot(kind)
    sampler = sampler_of(robot)
    grid = robot.env.terrain.grid
    slope = max(np.abs(np.diff(grid, axis=0)).max(), np.abs(np.diff(grid, axis=1)).max())
    slope /= robot.env.terrain.resolution
    errors = []
    for state in random_states(robot, 40):
        want, _ = robot.height_samples()
        got = map_heights(robot, state, sampler)
        assert not np.isnan(got).any(), "an 8 m map covers every ring"
        errors.append(np.abs(got - want))
    err = np.concatenate(errors).ravel()
    if kind == "flat":
        assert err.max() < 1e-5
        return
    assert 0.9 < slope < 1.3  # 10 cm over 10 cm (stairs); 12 cm over 10 cm at most (rough)
    assert err.max() <= 0.5 * RES * slope, f"max {err.max():.4f} m"
    assert np.percentile(err, 99) <= 0.010
    assert err.mean() <= 0.002


def test_feet_by_forward_kinematics_are_the_simulators():
    robot = sim_robot("flat")
    sampler = sampler_of(robot)
    for state in random_states(robot, 10, seed=1):
        feet = robot.data.xpos[robot.index.foot_body[0]]
        got = sampler.feet(state.joint_pos, state.base_pos, state.base_quat)
        np.testing.assert_allclose(got, feet, atol=1e-9)


# --- the controller's map input ----------------------------------------------------------------
DT = 0.02
BASE_Z = 0.5


def ground_under_default_pose() -> float:
    chains = leg_chains_of(load_robot())  # the default robot, as the exported test student's
    feet = LegKinematics(chains).forward(default_joint_positions()[None])[0]
    return BASE_Z + float(feet[:, 2].mean()) - chains.foot_radius


def flat_map(z: float, frame: str = "odom", stamp: float = 0.0, nan_square: int = 0) -> GridMap:
    grid = np.full((100, 100), z, dtype=np.float32)  # 4 m around the origin
    if nan_square:
        grid[50 - nan_square : 50 + nan_square, 50 - nan_square : 50 + nan_square] = np.nan
    msg = grid_map_message(grid, (0.0, 0.0), RES, frame)
    msg.header.stamp.sec, msg.header.stamp.nanosec = int(stamp), int((stamp % 1) * 1e9)
    return msg


def feed_proprio(c: PolicyController, now: float, frame: str = "odom") -> None:
    js = JointState()
    fill_joint_state(js, JOINT_NAMES, default_joint_positions().astype(np.float64), np.zeros(12))
    imu = Imu()
    imu.orientation.w = 1.0
    odom = Odometry()
    odom.header.frame_id = frame
    odom.pose.pose.position.z = BASE_Z
    assert c.on_joint_state(js, now) and c.on_imu(imu, now) and c.on_odom(odom, now)


def controller(student_path, **config) -> PolicyController:
    cfg = ControllerConfig(safety=SafetyConfig(stand_duration=0.1), **config)
    return PolicyController(OnnxPolicy(student_path), cfg)


def walk(c: PolicyController, now: float, map_msg: GridMap) -> float:
    feed_proprio(c, now)
    assert c.on_elevation_map(map_msg, now), c.monitor.last_error
    assert c.request(Mode.STAND, now)[0]
    for _ in range(10):
        now += DT
        feed_proprio(c, now)
        c.tick(now)
    assert c.request(Mode.WALK, now)[0], c.safety.reason
    return now


def test_the_controller_samples_the_map_around_its_feet(student_path):
    c = controller(student_path)
    assert c.missing_height_fill == OnnxPolicy(student_path).metadata.missing_height_fill
    now = walk(c, 10.0, flat_map(ground_under_default_pose() + 0.1, stamp=10.0))
    c.tick(now)
    # Flat ground 10 cm above the soles: +0.1 m at every point (the feet stand level).
    np.testing.assert_allclose(c.heights, 0.1, atol=1e-5)
    assert c.missing_heights == 0


def test_holes_in_the_map_are_missing_points_with_the_files_fill(student_path):
    c = controller(student_path)
    c.policy.step = lambda proprio, heights: (seen.append(heights.copy()), np.zeros(12))[1]
    seen: list[np.ndarray] = []
    # No data in a 0.96 m square around the origin: the feet's inner rings fall in it.
    now = walk(c, 10.0, flat_map(ground_under_default_pose(), stamp=10.0, nan_square=12))
    c.tick(now)
    missing = np.isnan(c.heights)
    assert 0 < c.missing_heights == missing.sum() < missing.size
    assert (seen[-1][missing] == c.missing_height_fill).all()
    np.testing.assert_allclose(seen[-1][~missing], 0.0, atol=1e-5)


def test_a_map_in_another_frame_is_rejected_naming_both_frames(student_path):
    c = controller(student_path)
    feed_proprio(c, 1.0)
    assert not c.on_elevation_map(flat_map(0.0, frame="map", stamp=1.0), 1.0)
    error = c.monitor.last_error["elevation_map"]
    assert "map frame 'map' is not the odometry frame 'odom'" in error
    assert "none accepted yet" in c.heights_stale(1.0) and "'map'" in c.heights_stale(1.0)


def test_a_fixed_transform_places_a_map_from_another_frame(student_path):
    placement = MapPlacement(x=0.3, y=-0.2, z=0.05, yaw=0.7)
    c = controller(student_path, elevation_map_frame="map", map_placement=placement)
    # In the map frame the ground is 5 cm lower than in odometry: heights come out the same.
    now = walk(c, 10.0, flat_map(ground_under_default_pose() - 0.05, "map", stamp=10.0))
    c.tick(now)
    np.testing.assert_allclose(c.heights, 0.0, atol=1e-5)
    assert not c.on_elevation_map(flat_map(0.0, "world", stamp=now), now)
    assert "or the fixed frame 'map'" in c.monitor.last_error["elevation_map"]


def test_a_placement_without_its_frame_is_refused():
    with pytest.raises(ValueError, match="elevation_map_frame"):
        ControllerConfig(map_placement=MapPlacement(z=0.1))


@pytest.mark.parametrize("why", ["stamp", "arrival"])
def test_a_stale_map_stops_the_walk(student_path, why):
    c = controller(student_path)
    now = walk(c, 10.0, flat_map(ground_under_default_pose(), stamp=10.0))
    # A map arriving on time but built 0.8 s ago, or no map since the one at 10.0 s.
    if why == "stamp":
        assert c.on_elevation_map(flat_map(ground_under_default_pose(), stamp=now), now + 0.8)
    now += 0.8
    feed_proprio(c, now)
    c.tick(now)
    assert c.mode is Mode.STAND
    reason = c.heights_stale(now)
    expected = "header stamp 0.80 s old" if why == "stamp" else "newest arrived 1.00 s ago"
    assert expected in reason
    assert "elevation_map" in c.stale_inputs(now)


def test_blind_walking_on_a_stale_map(student_path):
    c = PolicyController(
        OnnxPolicy(student_path),
        ControllerConfig(safety=SafetyConfig(stand_duration=0.1, blind_walk=True)),
    )
    now = walk(c, 10.0, flat_map(ground_under_default_pose(), stamp=10.0))
    now += 0.8
    feed_proprio(c, now)
    c.on_cmd_vel(Twist(), now)
    c.tick(now)
    assert c.mode is Mode.WALK and c.missing_heights == 4 * 52


def test_the_map_path_needs_a_valid_odometry_pose_and_the_cloud_path_does_not(student_path):
    odom = Odometry()
    odom.header.frame_id = "odom"
    odom.pose.pose.orientation.w = 0.0  # twist-only odometry leaves the pose empty
    on_map = controller(student_path)
    assert not on_map.on_odom(odom, 1.0)
    assert "odom.pose.orientation: quaternion norm 0.000" in on_map.monitor.last_error["odom"]
    assert controller(student_path, height_source="height_samples").on_odom(odom, 1.0)


def test_the_feet_rotation_matrix_is_the_quaternion_rotation():
    from anymal_ros.deploy.height_map import rotation_matrix
    from anymal_ros.obs.rotations import quat_rotate

    rng = np.random.default_rng(5)
    for _ in range(20):
        quat = rng.normal(size=4)
        quat /= np.linalg.norm(quat)
        vec = rng.normal(size=(4, 3))
        expected = quat_rotate(np.broadcast_to(quat, (4, 4)), vec)
        np.testing.assert_allclose(vec @ rotation_matrix(quat).T, expected, atol=1e-12)
