"""The policy node's control loop without ROS: inputs -> safety -> observation -> policy ->
joint targets.

:class:`PolicyController` holds the latest value of every input, the safety state machine,
the shared observation contract (:class:`~anymal_ros.obs.proprio.ProprioBuilder`,
:class:`~anymal_ros.obs.actions.ActionDecoder`) and an
:class:`~anymal_ros.deploy.runtime.OnnxPolicy`. The ROS node only converts callbacks and
timers into calls of ``on_*`` and :meth:`PolicyController.tick`; tests drive the same object
directly with real messages and a real ONNX file.

One WALK tick, in the order the simulator uses::

    proprio = builder.build(state, command, joint_targets=<targets being tracked now>)
    action  = policy.step(proprio, heights)      # heights: NaN -> missing fill
    targets = decoder.decode(action)              # then clipped to joint limits

Inputs arrive in one of two ways: ``on_*`` take a decoded message, :meth:`PolicyController.
receive` a *serialized* one. Either way every message is validated as it arrives (header
stamp, finite values, sizes, names, plausible ranges: :mod:`anymal_ros.nodes.plausibility`);
a rejected message leaves the previous accepted value and its age in place (it ages out by the
watchdog) and is counted with its time. Validating every message, not only the newest at the
tick, makes the rejection rule deterministic: an input that rejects more than
``max_rejected_fraction`` of its messages over ``rejection_window`` seconds is treated like a
stale one (joint_states/imu -> PASSIVE, odom/heights -> STAND), whatever the timing of the
bad messages relative to the ticks.

With ``set_decoder(..., read_cdr=True)`` (the node's default) the serialized message is not
deserialized: :mod:`anymal_ros.ros_io.cdr` reads the few fields the controller uses straight
from the plain-CDR bytes (a few microseconds; the decoder stays the fallback for other
encapsulations). The same validation runs either way: each input has one ``_set_*`` method
that takes plain values, fed by ``on_*`` from a message object or by :meth:`PolicyController.
receive` from the bytes; bytes that cannot be read are rejected like a message that cannot be
decoded.

A student file that carries a speed governor (:mod:`anymal_ros.obs.governor`) is run
governed unless ``ControllerConfig.speed_governor`` is off: after each policy step the
controller decodes the student's belief of the heights around its feet, and while it shows
steps the planar command the policy sees is capped (after the command ramp), exactly as
``anymal-ros eval`` and ``scorecard`` run the file. The belief decode is timed with the
policy step (``inference``).

In WALK the policy's joint targets move at most ``joint_target_rate_limit`` rad/s per joint
(counted in ``rate_limited``); clipping on every tick for ``rate_limit_stand_after`` seconds
falls back to STAND. STAND's own trajectory is not rate limited (it is smooth by
construction).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from anymal_ros.contract import EXTERO_SHAPE, JOINT_NAMES, proprio_layout
from anymal_ros.deploy.height_map import ElevationMap, FootHeightSampler, MapPlacement, ring_reach
from anymal_ros.deploy.runtime import OnnxPolicy, PolicyFileError
from anymal_ros.nodes.diagnostics import LatencyWindow
from anymal_ros.nodes.plausibility import PlausibleRanges
from anymal_ros.nodes.safety import (
    InputHealth,
    Mode,
    SafetyConfig,
    SafetyStateMachine,
    clip_to_limits,
)
from anymal_ros.obs.governor import SpeedGovernor
from anymal_ros.obs.proprio import ProprioBuilder
from anymal_ros.obs.rotations import projected_gravity
from anymal_ros.ros_io.cdr import (
    JointStateReader,
    PointCloudReader,
    plain_cdr_order,
    read_header_stamp,
    read_imu,
    read_odometry,
    read_twist,
)
from anymal_ros.ros_io.grid_map import check_map_frame, decode_grid_map
from anymal_ros.ros_io.inputs import (
    InputError,
    InputMonitor,
    JointStateMapper,
    command_from_values,
    fill_missing,
    heights_from_cloud,
    imu_from_values,
    odom_from_values,
    odom_pose_from_values,
)

#: Input names, in the order diagnostics list them.
INPUTS = ("joint_states", "imu", "odom", "height_samples", "elevation_map", "cmd_vel")
#: Where the policy's heights come from: an elevation map the controller samples around the
#: feet itself, or a cloud of 4 x 52 heights sampled by someone else.
HEIGHT_SOURCES = ("elevation_map", "height_samples")
#: Inputs with a std_msgs/Header, by the InputHealth field that judges them ("heights": the
#: controller's height source, one of HEIGHT_SOURCES).
STAMPED = {
    "joint_states": "joint_states",
    "imu": "imu",
    "odom": "odom",
    "heights": "height_samples",
}


@dataclass(frozen=True)
class StampCheck:
    """How header stamps are judged against the node's clock when a message arrives.

    A stamp older than its input's timeout is rejected as stale (a late measurement is not a
    fresh one); one more than ``future_tolerance`` seconds ahead is rejected; zero means "no
    stamp" and is rejected unless ``accept_zero``.
    """

    future_tolerance: float = 0.05
    accept_zero: bool = False

    def __post_init__(self) -> None:
        if not self.future_tolerance >= 0:
            raise ValueError(f"stamp future tolerance must be >= 0 s, got {self.future_tolerance}")


@dataclass(frozen=True)
class ControllerConfig:
    """Settings of the control loop (the node fills it from its ROS parameters)."""

    safety: SafetyConfig = field(default_factory=SafetyConfig)
    #: Seconds after which an input counts as stale (see the safety module for consequences;
    #: a stale cmd_vel only zeroes the command).
    timeouts: dict[str, float] = field(
        default_factory=lambda: {
            "joint_states": 0.1,
            "imu": 0.1,
            "odom": 0.2,
            "height_samples": 0.5,
            "elevation_map": 0.5,
            "cmd_vel": 0.5,
        }
    )
    #: ``elevation_map`` (grid_map_msgs/GridMap) or ``height_samples`` (PointCloud2).
    height_source: str = "elevation_map"
    #: Layer of the map holding the elevation.
    elevation_map_layer: str = "elevation"
    #: A frame other than the odometry frame the map may be published in, placed in the
    #: odometry frame by the fixed ``map_placement``; empty: the map must be in odometry.
    elevation_map_frame: str = ""
    map_placement: MapPlacement = field(default_factory=MapPlacement)
    command_low: tuple[float, float, float] = (-1.0, -0.5, -1.0)
    command_high: tuple[float, float, float] = (1.0, 0.5, 1.0)
    #: Largest change per second of the command the policy sees (vx, vy in m/s², yaw rate in
    #: rad/s²; 0 = no limit): a step in cmd_vel becomes a ramp, so a joystick pushed into a
    #: corner does not ask a standing robot for full speed within one tick.
    command_rate_limit: tuple[float, float, float] = (2.0, 2.0, 4.0)
    #: Joint limits overriding the file's (``[J]`` in the model's joint order), or None.
    joint_lower: tuple[float, ...] | None = None
    joint_upper: tuple[float, ...] | None = None
    #: Plausibility ranges (:mod:`anymal_ros.nodes.plausibility`): rad beyond the joint
    #: limits, factor on the training joint speed limit, m beyond the training heights.
    joint_position_margin: float = 0.5
    joint_velocity_factor: float = 4.0
    height_margin: float = 1.0
    #: Header stamp checks, or None: stamps not looked at (for driving the controller with
    #: synthetic times, as tests and offline tools do; the node always passes one).
    stamps: StampCheck | None = None
    #: An input rejecting more than this fraction of its messages over ``rejection_window``
    #: seconds counts as unusable, like a stale one (1 = never).
    rejection_window: float = 1.0
    max_rejected_fraction: float = 0.1
    #: Diagnostics show the rejections of the last ``error_window`` seconds.
    error_window: float = 10.0
    #: Largest change per second of each joint target in WALK (rad/s; 0 = no limit). The
    #: bundled policy's largest step walking in the simulator is ~0.43 rad per 20 ms tick
    #: (21 rad/s), so the default never clips it.
    joint_target_rate_limit: float = 40.0
    #: STAND once the rate limit has clipped on every tick for this long (s; 0 = never).
    rate_limit_stand_after: float = 0.25
    #: Run the speed governor the policy file carries (False: ungoverned, e.g. to compare).
    speed_governor: bool = True

    def __post_init__(self) -> None:
        missing = [n for n in INPUTS if n not in self.timeouts]
        if missing:
            raise ValueError(f"timeouts missing for inputs {missing}")
        if any(lo > hi for lo, hi in zip(self.command_low, self.command_high, strict=True)):
            raise ValueError(f"command_low {self.command_low} exceeds command_high")
        rate = self.command_rate_limit
        if len(rate) != 3 or not all(math.isfinite(r) and r >= 0 for r in rate):
            raise ValueError(
                f"command_rate_limit needs 3 finite values >= 0 (0 = no limit), got {rate}"
            )
        for name in ("joint_target_rate_limit", "rate_limit_stand_after"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"{name} must be a finite number >= 0 (0 = off), got {value}")
        if self.height_source not in HEIGHT_SOURCES:
            raise ValueError(
                f"height_source must be one of {list(HEIGHT_SOURCES)}, got {self.height_source!r}"
            )
        if self.map_placement != MapPlacement() and not self.elevation_map_frame:
            raise ValueError("a map placement needs the frame it places (elevation_map_frame)")


def check_policy_contract(policy: OnnxPolicy) -> bool:
    """Refuse a file this node cannot drive; returns whether it uses CPG actions."""
    meta = policy.metadata
    if meta.kind != "student":
        raise PolicyFileError(
            f"{policy.path}: a {meta.kind} policy needs privileged state; deploy the student"
        )
    if meta.action_head != "gaussian":
        raise PolicyFileError(
            f"{policy.path}: action head {meta.action_head!r} cannot drive joints; "
            "export a Gaussian (continuous) student"
        )
    if tuple(meta.joint_names) != JOINT_NAMES:
        raise PolicyFileError(
            f"{policy.path}: joint order {list(meta.joint_names)} differs from the observation "
            f"contract's {list(JOINT_NAMES)}"
        )
    if tuple(meta.extero_shape) != EXTERO_SHAPE:
        raise PolicyFileError(f"{policy.path}: extero shape {meta.extero_shape} != {EXTERO_SHAPE}")
    cpg = meta.action_type == "cpg"
    if meta.proprio_layout != proprio_layout(cpg):
        raise PolicyFileError(
            f"{policy.path}: proprio layout {meta.proprio_layout.names} is not the contract's "
            f"{'CPG' if cpg else 'joint-residual'} layout"
        )
    return cpg


class PolicyController:
    """Latest inputs + safety + policy; :meth:`tick` returns the targets to publish or None.

    Args:
        policy: a loaded student policy (its metadata configures everything else).
        config: loop settings.
    """

    def __init__(self, policy: OnnxPolicy, config: ControllerConfig) -> None:
        cpg = check_policy_contract(policy)
        meta = policy.metadata
        self.policy, self.config, self.metadata = policy, config, meta
        self.joint_names = tuple(meta.joint_names)
        self.control_period = float(meta.control_period)
        default = np.asarray(meta.default_joint_pos, dtype=np.float64)
        self.proprio = ProprioBuilder(1, cpg, default_joint_pos=default)
        # The training-time decoder (mode, scale, CPG settings) as written into the file.
        self.decoder = meta.action_decoder(num_envs=1)
        lower = config.joint_lower if config.joint_lower is not None else meta.joint_pos_lower
        upper = config.joint_upper if config.joint_upper is not None else meta.joint_pos_upper
        n = len(self.joint_names)
        for name, lim in (("joint_lower", lower), ("joint_upper", upper)):
            if lim is not None and len(lim) != n:
                raise ValueError(f"{name}: {len(lim)} values for {n} joints")
        self.lower = None if lower is None else np.asarray(lower, dtype=np.float64)
        self.upper = None if upper is None else np.asarray(upper, dtype=np.float64)
        self.safety = SafetyStateMachine(config.safety, default)
        self.monitor = InputMonitor(
            config.timeouts,
            rejection_window=config.rejection_window,
            max_rejected_fraction=config.max_rejected_fraction,
            error_window=config.error_window,
        )
        self.plausible = PlausibleRanges.for_policy(
            self.joint_names,
            self.lower,
            self.upper,
            meta.joint_velocity_limit,
            config.joint_position_margin,
            config.joint_velocity_factor,
            config.height_margin,
        )
        #: Health group -> the input that feeds it (heights: the configured height source).
        self._groups = {**STAMPED, "heights": config.height_source}
        self._stamped = set(self._groups.values()) if config.stamps is not None else set()
        self.inference = LatencyWindow()
        self._cmd_low = np.asarray(config.command_low, dtype=np.float64)
        self._cmd_high = np.asarray(config.command_high, dtype=np.float64)
        self._cmd_rate = np.asarray(config.command_rate_limit, dtype=np.float64)
        self._joints = JointStateMapper(self.joint_names)
        self.joint_pos: np.ndarray | None = None
        self.joint_vel: np.ndarray | None = None
        self.quat: np.ndarray | None = None
        self.imu_ang_vel: np.ndarray | None = None
        self.lin_vel: np.ndarray | None = None
        self.ang_vel: np.ndarray | None = None
        self.heights: np.ndarray | None = None  # [4, 52], NaN = missing
        # Map path: the newest accepted map, the odometry pose and frame it is sampled with.
        self.height_source = config.height_source
        self._uses_map = config.height_source == "elevation_map"
        self.elevation_map: ElevationMap | None = None
        self.odom_frame: str | None = None
        self.base_pos: np.ndarray | None = None
        self.base_quat: np.ndarray | None = None  # odometry orientation (w, x, y, z)
        self.sampler = FootHeightSampler(meta.kinematics, meta.foot_radius, config.map_placement)
        #: m; a map's shorter side must hold the rings around a robot at its centre.
        self.min_map_length = 2.0 * ring_reach(meta.kinematics, default)
        #: Height fed for missing points: the value the student was trained with (its file's).
        self.missing_height_fill = float(meta.missing_height_fill)
        self.command = np.zeros(3)  # requested (cmd_vel, clipped)
        self.policy_command = np.zeros(3)  # ramped toward ``command``
        self.governed_command = np.zeros(3)  # what the policy sees: ramped, then governed
        #: The file's speed governor, or None (the file has none, or the config turned it off).
        self.governor: SpeedGovernor | None = None
        if meta.speed_governor is not None and config.speed_governor:
            if policy.belief_decoder is None:
                raise PolicyFileError(
                    f"{policy.path}: its speed governor reads the belief, but "
                    f"{policy.belief_unavailable}"
                )
            self.governor = meta.governor()
        self._command_time = 0.0
        self.last_targets: np.ndarray | None = None
        self._last_target_time = 0.0
        #: WALK ticks whose targets the rate limit clipped (all time), and since when it has
        #: clipped on every tick (None: the last tick was not clipped).
        self.rate_limited = 0
        self._clipping_since: float | None = None
        self.missing_heights = 0
        self.implausible_heights = 0  # map samples beyond the plausible range, this tick
        #: header.stamp of the newest accepted joint_states (the node stamps its targets).
        self.joint_stamp = None
        self._walk_seen = 0
        self._handlers = {
            "joint_states": self.on_joint_state,
            "imu": self.on_imu,
            "odom": self.on_odom,
            "cmd_vel": self.on_cmd_vel,
            "height_samples": self.on_heights,
            "elevation_map": self.on_elevation_map,
        }
        self._decoders: dict[str, Callable[[object], object]] = {}
        # Serialized inputs read without message objects: reader -> the same _set_* method.
        joint_reader, cloud_reader = JointStateReader(), PointCloudReader()
        self._cdr_readers: dict[str, Callable[[bytes, str], None]] = {
            "joint_states": lambda data, order: self._set_joint_state(*joint_reader(data, order)),
            "imu": lambda data, order: self._set_imu(*read_imu(data, order)),
            "odom": lambda data, order: self._set_odom_read(*read_odometry(data, order)),
            "cmd_vel": lambda data, order: self._set_cmd_vel(*read_twist(data, order)),
            "height_samples": lambda data, order: self._set_heights(cloud_reader(data, order)),
        }
        self._read_cdr: set[str] = set()

    # --- inputs -------------------------------------------------------------------------------
    def _accept(self, name: str, now: float, use, *values, stamp=None) -> bool:
        """One message of ``name`` arrived at ``now``: check its ``stamp`` (if stamps are
        checked), then ``use(*values)`` validates and stores it; an InputError rejects it."""
        self.monitor.arrived(name, now)
        try:
            if stamp is not None and name in self._stamped:  # bytes: checked by _from_cdr
                self._check_stamp(name, stamp, now)
            use(*values)
        except InputError as err:
            self.monitor.reject(name, str(err), now)
            return False
        self.monitor.accepted(name, now)
        return True

    def _check_stamp(self, name: str, stamp, now: float) -> None:
        rule = self.config.stamps
        if stamp.sec == 0 and stamp.nanosec == 0:
            if rule.accept_zero:
                return
            raise InputError(
                f"{name}: header.stamp is zero (no stamp); parameter accept_unstamped allows it"
            )
        ahead = stamp.sec + stamp.nanosec * 1e-9 - now
        if ahead > rule.future_tolerance:
            raise InputError(
                f"{name}: header.stamp {ahead:.3f} s in the future (tolerance "
                f"{rule.future_tolerance:g} s, parameter stamp_future_tolerance)"
            )
        timeout = self.config.timeouts[name]
        if -ahead > timeout:
            raise InputError(
                f"{name}: header.stamp {-ahead:.3f} s old, older than the {name} timeout "
                f"{timeout:g} s (a stale measurement)"
            )

    def on_joint_state(self, msg, now: float) -> bool:
        fields = (msg.header.stamp, tuple(msg.name), msg.position, msg.velocity)
        return self._accept(
            "joint_states", now, self._set_joint_state, *fields, stamp=msg.header.stamp
        )

    def on_imu(self, msg, now: float) -> bool:
        o, w = msg.orientation, msg.angular_velocity
        fields = ((o.x, o.y, o.z, o.w), (w.x, w.y, w.z))
        return self._accept("imu", now, self._set_imu, *fields, stamp=msg.header.stamp)

    def on_odom(self, msg, now: float) -> bool:
        lin, ang = msg.twist.twist.linear, msg.twist.twist.angular
        fields = ((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z))
        p, o = msg.pose.pose.position, msg.pose.pose.orientation
        pose = (msg.header.frame_id, (p.x, p.y, p.z), (o.x, o.y, o.z, o.w))
        return self._accept("odom", now, self._set_odom, *fields, *pose, stamp=msg.header.stamp)

    def on_cmd_vel(self, msg, now: float) -> bool:
        lin, ang = msg.linear, msg.angular
        fields = ((lin.x, lin.y, lin.z), (ang.x, ang.y, ang.z))
        return self._accept("cmd_vel", now, self._set_cmd_vel, *fields)

    def on_heights(self, msg, now: float) -> bool:
        return self._accept("height_samples", now, self._set_heights, msg, stamp=msg.header.stamp)

    def on_elevation_map(self, msg, now: float) -> bool:
        """A ``grid_map_msgs/GridMap``: decoded once here, on arrival, not at every tick."""
        return self._accept("elevation_map", now, self._set_map, msg, stamp=msg.header.stamp)

    # Validation, shared by message objects and serialized bytes. ``stamp`` has ``sec`` and
    # ``nanosec`` (a builtin_interfaces/Time or a cdr.Stamp).
    def _set_joint_state(self, stamp, names: tuple[str, ...], position, velocity) -> None:
        pos, vel = self._joints.map(names, position, velocity)
        self.plausible.check_joints(pos, vel)
        self.joint_pos, self.joint_vel = pos, vel
        self.joint_stamp = stamp

    def _set_imu(self, orientation_xyzw, angular_velocity) -> None:
        self.quat, self.imu_ang_vel = imu_from_values(orientation_xyzw, angular_velocity)

    def _set_odom(self, linear, angular, frame=None, position=None, orientation=None) -> None:
        lin_vel, ang_vel = odom_from_values(linear, angular)
        if self._uses_map:  # the pose places the feet on the map; a cloud needs none
            self.base_pos, self.base_quat = odom_pose_from_values(position, orientation)
            self.odom_frame = frame
        self.lin_vel, self.ang_vel = lin_vel, ang_vel

    def _set_odom_read(self, frame: str, pose: tuple, twist: tuple) -> None:
        self._set_odom(twist[:3], twist[3:], frame, pose[:3], pose[3:])

    def _set_map(self, msg) -> None:
        elevation = decode_grid_map(msg, self.config.elevation_map_layer, self.min_map_length)
        if self.odom_frame is None:
            raise InputError(
                f"elevation_map: no odometry yet to check the map frame "
                f"'{elevation.frame_id}' against"
            )
        check_map_frame(elevation.frame_id, self.odom_frame, self.config.elevation_map_frame)
        self.elevation_map = elevation

    def _set_cmd_vel(self, linear, angular) -> None:
        self.command = command_from_values(linear, angular, self._cmd_low, self._cmd_high)

    def _set_heights(self, cloud) -> None:  # a PointCloud2 or a cdr.PointCloudView
        heights = heights_from_cloud(cloud)
        self.plausible.check_heights(heights)
        self.heights = heights

    # --- serialized inputs --------------------------------------------------------------------
    def set_decoder(
        self, name: str, decode: Callable[[object], object], read_cdr: bool = False
    ) -> None:
        """How :meth:`receive` turns a payload into a message of ``name`` (the node passes
        ``rclpy.serialization.deserialize_message`` for the topic's type).

        ``read_cdr``: payloads are serialized messages of the input's ROS type; plain-CDR
        ones are read directly (:mod:`anymal_ros.ros_io.cdr`), ``decode`` gets the others.
        """
        if name not in self._handlers:
            raise ValueError(f"unknown input {name!r}; inputs are {list(self._handlers)}")
        self._decoders[name] = decode
        if read_cdr:
            self._read_cdr.add(name)
        else:
            self._read_cdr.discard(name)

    def receive(self, name: str, payload: object, now: float) -> bool:
        """Decode and validate one serialized message of ``name`` (e.g. the bytes of a raw
        subscription) that arrived at ``now``; returns whether it was accepted."""
        order = None
        if name in self._read_cdr and isinstance(payload, bytes):
            order = plain_cdr_order(payload)
        if order is not None:
            return self._accept(name, now, self._from_cdr, name, payload, order, now)
        try:
            msg = self._decoders[name](payload)
        except Exception as err:  # noqa: BLE001 - any decoder error is a rejected message
            self.monitor.arrived(name, now)
            self.monitor.reject(name, f"{name}: cannot decode message ({err})", now)
            return False
        return self._handlers[name](msg, now)

    def _from_cdr(self, name: str, data: bytes, order: str, now: float) -> None:
        try:
            if name in self._stamped:
                self._check_stamp(name, read_header_stamp(data, order, name), now)
            self._cdr_readers[name](data, order)
        except InputError:
            raise
        except Exception as err:  # noqa: BLE001 - a reader bug must not stop the node
            raise InputError(f"{name}: cannot decode message ({err!r})") from err

    def health(self, now: float) -> InputHealth:
        """Each input group is usable when fresh and not rejecting too many messages (the
        heights: fresh by arrival and, for a map, by its header stamp too)."""
        usable, problems = {}, {}
        for group, name in self._groups.items():
            rejecting = self.monitor.rejecting(name, now)
            if rejecting is not None:
                problems[group] = rejecting
            fresh = self.monitor.fresh(name, now)
            if group == "heights":
                fresh = self.heights_stale(now) is None
            usable[group] = rejecting is None and fresh
        return InputHealth(**usable, problems=problems)

    @property
    def inputs(self) -> tuple[str, ...]:
        """The inputs this controller uses (one of the two height sources), diagnostics order."""
        unused = "height_samples" if self._uses_map else "elevation_map"
        return tuple(n for n in INPUTS if n != unused)

    def heights_stale(self, now: float) -> str | None:
        """Why the heights are stale (None: fresh). A map is stale when the newest accepted one
        arrived longer than its timeout ago, or its header stamp is older than that on the
        node's clock (a map that arrives on time but was built long ago)."""
        name = self.height_source
        timeout = self.monitor.timeouts[name]
        age = self.monitor.age(name, now)
        if math.isinf(age):
            error = self.monitor.last_error.get(name)
            return f"{name}: none accepted yet" + (f" (last rejected: {error})" if error else "")
        if age > timeout:
            return f"{name}: newest arrived {age:.2f} s ago (timeout {timeout} s)"
        if self._uses_map:
            stamp_age = now - self.elevation_map.stamp
            if stamp_age > timeout:
                return f"{name}: header stamp {stamp_age:.2f} s old (timeout {timeout} s)"
        return None

    def stale_inputs(self, now: float) -> list[str]:
        stale = [n for n in self.inputs if n != "cmd_vel" and not self.monitor.fresh(n, now)]
        if self.height_source not in stale and self.heights_stale(now) is not None:
            stale.append(self.height_source)  # fresh by arrival, old by stamp
        return stale

    def rejecting_inputs(self, now: float) -> dict[str, str]:
        """Inputs unusable for rejecting too many messages -> why."""
        found = ((n, self.monitor.rejecting(n, now)) for n in self.inputs if n != "cmd_vel")
        return {n: why for n, why in found if why is not None}

    def gravity(self) -> np.ndarray | None:
        return None if self.quat is None else projected_gravity(self.quat[None])[0]

    # --- modes --------------------------------------------------------------------------------
    def request(self, mode: Mode, now: float, reason: str = "requested") -> tuple[bool, str]:
        return self.safety.request(
            mode, now, self.health(now), self.joint_pos, reason, gravity=self.gravity()
        )

    @property
    def mode(self) -> Mode:
        return self.safety.mode

    # --- control ------------------------------------------------------------------------------
    def tick(self, now: float) -> np.ndarray | None:
        """One control period: ``[J]`` float64 targets in the model's joint order, or None
        (PASSIVE: publish nothing). Never returns a non-finite value."""
        health = self.health(now)
        if not self.monitor.fresh("cmd_vel", now):
            self.command = np.zeros(3)  # no recent command: stand still, do not keep going
        mode = self.safety.check(now, health, self.joint_pos, self.gravity())
        if mode is Mode.PASSIVE:
            return None
        targets = None
        if mode is Mode.WALK:
            targets = self._walk(now, health)  # None: the policy failed, safety left WALK
            if targets is not None:
                targets = self._limit_rate(targets, now)  # None: clipped too long, left WALK
        if targets is None:
            if self.safety.mode is not Mode.STAND:
                return None
            targets = self.safety.stand_target(now)
        targets = clip_to_limits(targets, self.lower, self.upper)
        if not np.all(np.isfinite(targets)):  # last line of defence: never a NaN out
            self.safety.request(Mode.PASSIVE, now, health, None, "non-finite joint targets")
            return None
        self.last_targets = targets
        self._last_target_time = now
        return targets

    def _limit_rate(self, targets: np.ndarray, now: float) -> np.ndarray | None:
        """WALK targets moved at most ``joint_target_rate_limit`` rad/s per joint from the
        last published ones (at least one control period's worth, so a late tick is not
        clipped harder); None when clipping has lasted ``rate_limit_stand_after`` seconds
        (safety is then in STAND)."""
        rate = self.config.joint_target_rate_limit
        if rate <= 0 or self.last_targets is None:
            return targets
        step = rate * max(now - self._last_target_time, self.control_period)
        low, high = self.last_targets - step, self.last_targets + step
        if np.all((targets >= low) & (targets <= high)):
            self._clipping_since = None
            return targets
        self.rate_limited += 1
        if self._clipping_since is None:
            self._clipping_since = now
        stand_after = self.config.rate_limit_stand_after
        if stand_after > 0 and now - self._clipping_since >= stand_after:
            why = (
                f"joint target rate limit ({rate:g} rad/s) clipped on every tick for "
                f"{now - self._clipping_since:.2f} s"
            )
            self._clipping_since = None
            self.safety.action_failed(now, why, self.joint_pos)
            return None
        return np.clip(targets, low, high)

    def _ramp_command(self, now: float) -> None:
        """Move the policy's command toward the requested one within the rate limit."""
        dt = max(now - self._command_time, 0.0)
        step = np.where(self._cmd_rate > 0, self._cmd_rate * dt, np.inf)  # 0: no limit
        self._command_time = now
        gap = self.command - self.policy_command
        # Within reach: take the request itself (x + (y - x) need not round to y).
        self.policy_command = np.where(
            np.abs(gap) <= step, self.command, self.policy_command + np.clip(gap, -step, step)
        )

    def _walk(self, now: float, health: InputHealth) -> np.ndarray | None:
        if self.safety.walk_started != self._walk_seen:
            # A new walk: the policy's memory and the observation histories start afresh.
            self._walk_seen = self.safety.walk_started
            self.policy.reset()
            self.proprio.reset()
            self.decoder.reset()
            self.policy_command = np.zeros(3)  # a walk starts from standing still
            self._command_time = now
            self._clipping_since = None
            if self.governor is not None:
                self.governor.reset()
        self._ramp_command(now)
        governor = self.governor
        command = self.policy_command if governor is None else governor.limit(self.policy_command)
        self.governed_command = command
        tracked = self.last_targets if self.last_targets is not None else self.joint_pos
        if health.heights and self._uses_map:
            # The rings around where the feet are now, on the newest map; a sample beyond the
            # plausible range (a spike in the map) is a missing point, counted on diagnostics.
            sampled = self.sampler.sample(
                self.elevation_map, self.joint_pos, self.base_pos, self.base_quat
            )
            implausible = np.abs(sampled) > self.plausible.height  # NaN compares False
            self.implausible_heights = int(np.count_nonzero(implausible))
            self.heights = np.where(implausible, np.nan, sampled).astype(np.float32)
        if health.heights and self.heights is not None:
            heights, self.missing_heights = fill_missing(self.heights, self.missing_height_fill)
        else:  # blind walking: every point is missing
            heights = np.full(EXTERO_SHAPE, self.missing_height_fill, dtype=np.float32)
            self.missing_heights = heights.size
        start = time.perf_counter()
        try:
            proprio = self.proprio.build(
                joint_pos=self.joint_pos,
                joint_vel=self.joint_vel,
                base_quat=self.quat,
                base_lin_vel=self.lin_vel,
                base_ang_vel=self.imu_ang_vel,  # the gyro, not the estimator's twist
                command=command,
                joint_targets=tracked,
                **self.decoder.proprio_cpg_kwargs(),
            )
            action = self.policy.step(proprio[0], heights)
            if not np.all(np.isfinite(action)):
                raise ValueError("policy produced a non-finite action")
            if governor is not None:  # what the next tick's command is capped by
                governor.observe(self.policy.belief().heights, proprio=proprio)
            targets = self.decoder.decode(action)[0]
        except ValueError as err:  # ObservationError, decoder or our own check
            self.safety.action_failed(now, f"policy step failed: {err}", self.joint_pos)
            return None
        finally:
            self.inference.add(time.perf_counter() - start)
        return targets
