"""ROS 2 lifecycle node that runs an exported student policy on the robot.

Lifecycle
    ``configure`` loads and checks the ONNX file (parameter ``model_path``; empty = the bundled
    ``share/anymal_ros/policies/student.onnx``) and creates subscriptions, publishers and
    services; ``activate`` starts control in ``activate_mode`` (``stand`` by default, or
    ``passive``); ``deactivate`` drops to PASSIVE and stops the control loop; ``cleanup`` and
    ``shutdown`` release everything. ``autostart: true`` configures and activates at start-up.

Inputs (sensor-data QoS; names are parameters and can be remapped)
    ``/joint_states`` (sensor_msgs/JointState, by joint name; extra joints ignored),
    ``/imu`` (sensor_msgs/Imu: orientation and angular velocity, base frame),
    ``/odom`` (nav_msgs/Odometry: twist in the child (base) frame),
    ``/cmd_vel`` (geometry_msgs/Twist: vx, vy, yaw rate; clipped to ``cmd_vel_min/max``,
    zeroed when older than its timeout, reached at most at ``cmd_vel_max_rate`` per second),
    and the terrain, by ``height_source``: ``elevation_map`` (default; grid_map_msgs/GridMap,
    e.g. from elevation_mapping_cupy, in the odometry frame or a frame with a fixed transform
    to it; the node places the feet by forward kinematics and the odometry pose and samples
    the 4 x 52 rings itself, see :mod:`anymal_ros.deploy.height_map`; decoded once per
    arrival, :mod:`anymal_ros.ros_io.grid_map`) or ``height_samples`` (sensor_msgs/PointCloud2
    of 4 x 52 heights sampled elsewhere; layout in :mod:`anymal_ros.ros_io.inputs`).

Outputs (reliable QoS; all but ``/diagnostics`` are lifecycle publishers: rclpy drops what
they are given while the node is not active)
    ``/joint_group_position_controller/commands`` (std_msgs/Float64MultiArray, joint targets
    in the model's joint order), optionally ``~/joint_targets`` (sensor_msgs/JointState with
    names; ``header.stamp`` is the stamp of the joint_states message the targets were computed
    from, so latency can be measured end to end; the node's clock at the tick where that
    stamp is zero and ``accept_unstamped`` let it in), ``/diagnostics`` (~1 Hz; also while
    unconfigured after a failed ``configure``, with the reason), and while walking with a
    student file that carries its belief decoder, at ``belief_rate`` Hz, what it believes:
    ``~/belief/terrain`` and ``~/belief/privileged`` (:mod:`anymal_ros.nodes.belief`).

Input checks (every message, as it arrives; a rejected message keeps the previous value,
which ages out by the watchdog, and is counted and explained on ``/diagnostics``)
    finite values, sizes, every model joint named exactly once, values within plausible
    ranges derived from the policy and its training (:mod:`anymal_ros.nodes.plausibility`;
    ``plausible_*`` parameters widen them), and header stamps: older than the input's timeout
    or more than ``stamp_future_tolerance`` ahead of the node's clock -> rejected, zero ->
    rejected unless ``accept_unstamped`` (``check_stamps: false`` turns stamp checks off).
    An input that rejects more than ``max_rejected_fraction`` of its messages over
    ``rejection_window`` seconds is unusable like a stale one (joint_states/imu -> PASSIVE,
    odom/heights -> STAND), so a sensor that is wrong a third of the time stops the robot
    deterministically instead of by the luck of which message is the newest at a tick.
    ``/diagnostics`` reports the rejections of the last ``diagnostics_error_window`` seconds
    (all-time counts too) and returns to OK once inputs have been clean that long.

Joint targets in WALK move at most ``joint_target_rate_limit`` rad/s per joint (clipped
ticks are counted on ``/diagnostics`` as ``joint_targets.rate_limited``); clipping on every
tick for ``rate_limit_stand_after`` seconds falls back to STAND.

A student file that carries a speed governor (``anymal-ros export --speed-governor``) is run
governed (``speed_governor: true``): where the student's belief shows steps, the planar command
the policy sees is capped for a while (:mod:`anymal_ros.obs.governor`); ``/diagnostics``
says so in its summary and reports the belief's spread and how often the governor capped.

Services (std_srvs/Trigger): ``~/passive``, ``~/stand``, ``~/walk``. Modes and watchdog rules
are described in :mod:`anymal_ros.nodes.safety`.

Control runs on a timer at the model's control period (``control_trigger: timer``), or, with
``control_trigger: joint_states``, inside the joint_states callback of the first message at or
after each control tick, which removes the wait between the sensor and the tick.

Latency: with ``raw_inputs: true`` (default) every input is subscribed to serialized, and with
``cdr_readers: true`` (default) no message object is built in Python: the fields the
controller uses are read straight from the plain-CDR bytes (:mod:`anymal_ros.ros_io.cdr`; other
encodings fall back to ``deserialize_message``) and validated on arrival.
``main()`` spins rclpy's C++ ``EventsExecutor`` (parameter ``executor``). Diagnostics report the
node's own latency per published tick (``control_ms``: entry of the callback that ran the tick,
the completing joint_states message or the timer, until the last publish returned) next to the
policy's ``inference_ms``, over the last ``latency_window`` ticks.
"""

from __future__ import annotations

import dataclasses
import functools
import gc
import os
import sys
import time
from pathlib import Path

from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from nav_msgs.msg import Odometry
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.exceptions import ParameterUninitializedException
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
from rclpy.serialization import deserialize_message
from sensor_msgs.msg import Imu, JointState, PointCloud2
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from anymal_ros.deploy.height_map import MapPlacement
from anymal_ros.nodes.belief import BELIEF_PARAMETERS, BeliefPublisher, BeliefSettings
from anymal_ros.nodes.controller import INPUTS, ControllerConfig, PolicyController, StampCheck
from anymal_ros.nodes.diagnostics import (
    ERROR,
    LatencyWindow,
    governor_values,
    status_level,
    status_values,
)
from anymal_ros.nodes.process import node_process
from anymal_ros.nodes.safety import Mode, SafetyConfig
from anymal_ros.nodes.scheduling import apply_scheduling

PACKAGE = "anymal_ros"
BUNDLED_POLICY = "student.onnx"

#: Per input (controller.INPUTS): its message type, and what happens when it is older than its
#: timeout. Its topic parameter ``<input>_topic`` defaults to the input's name.
_INPUT_DESCRIPTIONS: dict[str, tuple[str, str]] = {
    "joint_states": ("sensor_msgs/JointState input", "s; older -> PASSIVE"),
    "imu": ("sensor_msgs/Imu input", "s; older -> PASSIVE"),
    "odom": ("nav_msgs/Odometry input (twist in the base frame)", "s; older -> WALK stops (STAND)"),
    "height_samples": (
        "sensor_msgs/PointCloud2, 4 x 52 heights",
        "s; older -> STAND, or blind walking if blind_walk",
    ),
    "elevation_map": (
        "grid_map_msgs/GridMap input",
        "s; a map that arrived longer ago, or whose header stamp is older on the node's clock, "
        "is stale -> STAND, or blind walking if blind_walk",
    ),
    "cmd_vel": ("geometry_msgs/Twist velocity command", "s; older -> command is zero"),
}
# The control loop's settings default to the controller's own (ControllerConfig); the node
# checks stamps by default (StampCheck's defaults), the controller alone only when given one.
_CONTROLLER, _SAFETY, _STAMPS = ControllerConfig(), SafetyConfig(), StampCheck()

#: name -> (default, description). Types follow the defaults.
PARAMETERS: dict[str, tuple[object, str]] = {
    "model_path": ("", "ONNX student policy; empty = the bundled policies/student.onnx"),
    "autostart": (False, "configure and activate right after start-up"),
    "activate_mode": ("stand", "mode entered on activate: 'stand' or 'passive'"),
    "control_trigger": ("timer", "'timer' (control period timer) or 'joint_states'"),
    **{f"{name}_topic": (name, _INPUT_DESCRIPTIONS[name][0]) for name in INPUTS},
    "height_source": (
        _CONTROLLER.height_source,
        "'elevation_map' (GridMap, sampled around the feet by the node) or 'height_samples' "
        "(PointCloud2 of 4 x 52 heights sampled elsewhere)",
    ),
    "elevation_map_layer": (
        _CONTROLLER.elevation_map_layer,
        "layer of the map holding the terrain height (m)",
    ),
    "elevation_map_frame": (
        _CONTROLLER.elevation_map_frame,
        "a frame other than the odometry frame the map may be published in (placed by "
        "elevation_map_transform); empty = the map must be in the odometry frame",
    ),
    "elevation_map_transform": (
        list(dataclasses.astuple(_CONTROLLER.map_placement)),
        "fixed pose (x, y, z m, yaw rad) of elevation_map_frame in the odometry frame",
    ),
    "command_topic": (
        "joint_group_position_controller/commands",
        "std_msgs/Float64MultiArray joint position targets (model joint order)",
    ),
    "publish_joint_targets": (True, "also publish ~/joint_targets as sensor_msgs/JointState"),
    **{
        f"{name}_timeout": (_CONTROLLER.timeouts[name], _INPUT_DESCRIPTIONS[name][1])
        for name in INPUTS
    },
    "blind_walk": (_SAFETY.blind_walk, "keep walking on stale heights, fed as missing points"),
    "check_stamps": (
        True,
        "reject stamped inputs whose header.stamp is older than the input's timeout or more "
        "than stamp_future_tolerance ahead of the node's clock",
    ),
    "stamp_future_tolerance": (
        _STAMPS.future_tolerance,
        "s; how far ahead of the node's clock a stamp may be",
    ),
    "accept_unstamped": (
        _STAMPS.accept_zero,
        "accept header.stamp zero ('no stamp'); ~/joint_targets are then stamped with the "
        "node's clock",
    ),
    "plausible_joint_position_margin": (
        _CONTROLLER.joint_position_margin,
        "rad; joint_states positions further than this outside the joint limits (the file's, "
        "or joint_lower/upper_limits) are rejected",
    ),
    "plausible_joint_velocity_factor": (
        _CONTROLLER.joint_velocity_factor,
        "joint_states velocities beyond this x the robot's joint speed limit (the policy "
        "file's joint_velocity_limit) are rejected",
    ),
    "plausible_height_margin": (
        _CONTROLLER.height_margin,
        "m; heights further than this outside the range the training terrain and height "
        "noise produce (plausibility.training_height_range) are rejected",
    ),
    "rejection_window": (
        _CONTROLLER.rejection_window,
        "s; window over which max_rejected_fraction is judged",
    ),
    "max_rejected_fraction": (
        _CONTROLLER.max_rejected_fraction,
        "an input rejecting more than this fraction of the messages that arrived in the last "
        "rejection_window seconds is unusable like a stale one: joint_states/imu -> PASSIVE, "
        "odom/heights -> STAND (every message is validated on arrival, so this is "
        "deterministic); 1 = never",
    ),
    "diagnostics_error_window": (
        _CONTROLLER.error_window,
        "s; /diagnostics shows the rejections of this recent window and returns to OK once "
        "inputs have been clean that long",
    ),
    "joint_target_rate_limit": (
        _CONTROLLER.joint_target_rate_limit,
        "rad/s; largest change per second of each joint target in WALK (0 = no limit); the "
        "bundled policy walking in the simulator stays below ~22",
    ),
    "rate_limit_stand_after": (
        _CONTROLLER.rate_limit_stand_after,
        "s; STAND when the joint target rate limit has clipped on every tick this long (0 = never)",
    ),
    "stand_duration": (
        _SAFETY.stand_duration,
        "s; interpolation from the measured pose to the default pose",
    ),
    "max_tilt": (
        _SAFETY.max_tilt,
        "rad; |roll| or |pitch| beyond this -> PASSIVE, and STAND/WALK refused",
    ),
    "cmd_vel_min": (list(_CONTROLLER.command_low), "lower clip of (vx, vy, yaw rate)"),
    "cmd_vel_max": (list(_CONTROLLER.command_high), "upper clip of (vx, vy, yaw rate)"),
    "cmd_vel_max_rate": (
        list(_CONTROLLER.command_rate_limit),
        "largest change per second of (vx, vy, yaw rate) fed to the policy; 0 = no limit",
    ),
    "speed_governor": (
        _CONTROLLER.speed_governor,
        "run the speed governor a student file carries: its planar command capped where its "
        "belief shows steps (false: ungoverned; a file without one is never governed)",
    ),
    # Declared by type only: unset means "use the limits stored in the policy file".
    "joint_lower_limits": (Parameter.Type.DOUBLE_ARRAY, "rad, model joint order"),
    "joint_upper_limits": (Parameter.Type.DOUBLE_ARRAY, "rad, model joint order"),
    "diagnostics_period": (1.0, "s between /diagnostics messages"),
    "latency_window": (500, "ticks over which diagnostics report latency percentiles"),
    "raw_inputs": (
        True,
        "subscribe serialized and decode each message with the cdr_readers (false: rclpy "
        "builds message objects)",
    ),
    "cdr_readers": (
        True,
        "with raw_inputs: read the used fields straight from plain-CDR bytes instead of "
        "deserializing message objects (false: rclpy deserialize_message)",
    ),
    "intra_op_threads": (1, "onnxruntime threads"),
    "realtime_priority": (
        0,
        "main() only: SCHED_FIFO priority 1..99 for every thread of the process; 0 = the "
        "default scheduler (needs root, CAP_SYS_NICE or an rtprio limit; refused -> warning)",
    ),
    "cpu_affinity": (
        Parameter.Type.INTEGER_ARRAY,
        "main() only: CPUs the process may run on, e.g. [3]; unset = all",
    ),
    "executor": (
        "events",
        "main() only: 'events' (rclpy.experimental.EventsExecutor, least overhead per "
        "callback) or 'single_threaded' (rclpy's SingleThreadedExecutor)",
    ),
    **BELIEF_PARAMETERS,  # the student's belief on topics (anymal_ros.nodes.belief)
}


def bundled_policy_path() -> Path:
    """The installed ``share/anymal_ros/policies/student.onnx``, else the source tree's."""
    try:
        from ament_index_python.packages import (
            PackageNotFoundError,
            get_package_share_directory,
        )

        try:
            share = Path(get_package_share_directory(PACKAGE))
            if (share / "policies" / BUNDLED_POLICY).is_file():
                return share / "policies" / BUNDLED_POLICY
        except (PackageNotFoundError, OSError):  # not installed / no AMENT_PREFIX_PATH
            pass
    except ImportError:
        pass
    return Path(__file__).resolve().parents[2] / "policies" / BUNDLED_POLICY


class PolicyNode(LifecycleNode):
    """See the module docstring."""

    def __init__(self, node_name: str = "policy_node", **kwargs) -> None:
        super().__init__(node_name, **kwargs)
        for name, (default, description) in PARAMETERS.items():
            self.declare_parameter(name, default, ParameterDescriptor(description=description))
        self.controller = None
        self.belief: BeliefPublisher | None = None
        self._entities: list = []
        self._control_timer = None
        self._active = False
        self._next_tick = 0.0
        self._last_tick: float | None = None
        self.ticks = 0
        self.missed_ticks = 0
        self.control_latency = LatencyWindow()
        self._stand_pending = False
        self._stand_warned = False
        #: What apply_scheduling reported (main() sets it); shown on /diagnostics.
        self.scheduling = "default scheduler"
        #: Why the last configure failed (published on /diagnostics while unconfigured).
        self.configure_error: str | None = None
        # Diagnostics live as long as the node: a failed configure is reported too.
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_timer(float(self.p("diagnostics_period")), self._publish_diagnostics)

    def p(self, name: str):
        return self.get_parameter(name).value

    def now(self) -> float:
        return self.get_clock().now().nanoseconds * 1e-9

    # --- lifecycle ----------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        # Imported here so that `--help` and launch-file checks need no onnxruntime.
        from anymal_ros.deploy.runtime import OnnxPolicy

        path = self.p("model_path") or str(bundled_policy_path())
        try:
            config = self._controller_config()
            self._belief_settings = BeliefSettings.from_node(self)  # anymal_ros.nodes.belief
            policy = OnnxPolicy(path, intra_op_threads=int(self.p("intra_op_threads")))
            self.controller = PolicyController(policy, config)
        except (ValueError, OSError) as err:  # PolicyFileError, bad parameters
            self.configure_error = f"configure failed: {err}"
            self.get_logger().error(self.configure_error)
            self._publish_diagnostics()
            return TransitionCallbackReturn.FAILURE
        self.configure_error = None
        meta = policy.metadata
        self.get_logger().info(
            f"loaded {path}: {meta.kind}, {meta.action_type} actions, "
            f"control period {meta.control_period * 1e3:.1f} ms"
        )
        size = int(self.p("latency_window"))
        self.control_latency = LatencyWindow(size)
        self.controller.inference = LatencyWindow(size)
        self._create_interfaces()
        return TransitionCallbackReturn.SUCCESS

    def _controller_config(self) -> ControllerConfig:
        def limits(name: str) -> tuple[float, ...] | None:
            try:
                value = self.p(name)
            except ParameterUninitializedException:
                return None
            return tuple(float(v) for v in value)

        trigger = self.p("control_trigger")
        if trigger not in ("timer", "joint_states"):
            raise ValueError(f"control_trigger must be 'timer' or 'joint_states', got {trigger!r}")
        if self.p("activate_mode") not in ("stand", "passive"):
            mode = self.p("activate_mode")
            raise ValueError(f"activate_mode must be 'stand' or 'passive', got {mode!r}")
        stamps = None
        if self.p("check_stamps"):
            stamps = StampCheck(
                future_tolerance=float(self.p("stamp_future_tolerance")),
                accept_zero=bool(self.p("accept_unstamped")),
            )
        transform = tuple(float(v) for v in self.p("elevation_map_transform"))
        if len(transform) != 4:
            raise ValueError(f"elevation_map_transform needs x, y, z, yaw; got {transform}")
        return ControllerConfig(
            height_source=self.p("height_source"),
            elevation_map_layer=self.p("elevation_map_layer"),
            elevation_map_frame=self.p("elevation_map_frame"),
            map_placement=MapPlacement(*transform),
            safety=SafetyConfig(
                stand_duration=float(self.p("stand_duration")),
                max_tilt=float(self.p("max_tilt")),
                blind_walk=bool(self.p("blind_walk")),
            ),
            timeouts={name: float(self.p(f"{name}_timeout")) for name in INPUTS},
            command_low=tuple(float(v) for v in self.p("cmd_vel_min")),
            command_high=tuple(float(v) for v in self.p("cmd_vel_max")),
            command_rate_limit=tuple(float(v) for v in self.p("cmd_vel_max_rate")),
            joint_lower=limits("joint_lower_limits"),
            joint_upper=limits("joint_upper_limits"),
            joint_position_margin=float(self.p("plausible_joint_position_margin")),
            joint_velocity_factor=float(self.p("plausible_joint_velocity_factor")),
            height_margin=float(self.p("plausible_height_margin")),
            stamps=stamps,
            rejection_window=float(self.p("rejection_window")),
            max_rejected_fraction=float(self.p("max_rejected_fraction")),
            error_window=float(self.p("diagnostics_error_window")),
            joint_target_rate_limit=float(self.p("joint_target_rate_limit")),
            rate_limit_stand_after=float(self.p("rate_limit_stand_after")),
            speed_governor=bool(self.p("speed_governor")),
        )

    def _create_interfaces(self) -> None:
        c = self.controller
        sensor = qos_profile_sensor_data
        raw = bool(self.p("raw_inputs"))
        read_cdr = bool(self.p("cdr_readers"))
        subs = [
            ("joint_states", JointState, self._on_joint_states),
            ("imu", Imu, c.on_imu),
            ("odom", Odometry, c.on_odom),
            ("cmd_vel", Twist, c.on_cmd_vel),
        ]
        if c.height_source == "height_samples":
            subs.append(("height_samples", PointCloud2, c.on_heights))
        else:
            # Decoded on arrival (a few Hz), as a message object: never deferred to a tick.
            from grid_map_msgs.msg import GridMap

            on_map = self._validating(c.on_elevation_map)
            topic = self.p("elevation_map_topic")
            self._entities.append(self.create_subscription(GridMap, topic, on_map, sensor))
        for name, msg_type, handler in subs:
            if raw:
                decode = functools.partial(deserialize_message, message_type=msg_type)
                c.set_decoder(name, decode, read_cdr=read_cdr)
                if name == "joint_states":
                    callback = self._on_joint_states_raw
                else:
                    callback = self._receiving(name)
            elif name == "joint_states":
                callback = handler
            else:
                callback = self._validating(handler)
            topic = self.p(f"{name}_topic")
            self._entities.append(
                self.create_subscription(msg_type, topic, callback, sensor, raw=raw)
            )
        reliable = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
        # Lifecycle publishers: rclpy itself drops what they are given unless the node is
        # active, so no path that forgets to look at self._active can move the robot.
        topic = self.p("command_topic")
        self._cmd_pub = self.create_lifecycle_publisher(Float64MultiArray, topic, reliable)
        self._js_pub = None
        if self.p("publish_joint_targets"):
            self._js_pub = self.create_lifecycle_publisher(JointState, "~/joint_targets", reliable)
        self._cmd_msg = Float64MultiArray()
        self._js_msg = JointState(name=list(self.controller.joint_names))
        self._entities += [p for p in (self._cmd_pub, self._js_pub) if p]
        # --- belief (anymal_ros.nodes.belief) ---
        self.belief = BeliefPublisher(self, c, self._belief_settings, self.p("odom_topic"))
        self._entities += self.belief.entities
        # --- end belief ---
        for mode in Mode:
            self._entities.append(
                self.create_service(Trigger, f"~/{mode.value.lower()}", self._mode_service(mode))
            )

    def _destroy_interfaces(self) -> None:
        self._stop_control()
        destroy = {
            "Subscription": self.destroy_subscription,
            "Publisher": self.destroy_publisher,
            "LifecyclePublisher": self.destroy_lifecycle_publisher,
            "Service": self.destroy_service,
            "Timer": self.destroy_timer,
        }
        for entity in self._entities:
            destroy[type(entity).__name__](entity)
        self._entities = []
        self.controller = None
        self.belief = None

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        result = super().on_activate(state)  # enables the lifecycle publishers first
        if result != TransitionCallbackReturn.SUCCESS:
            return result
        c = self.controller
        now = self.now()
        self._active = True
        self._last_tick = None
        self._next_tick = now
        # Stand up as soon as joint_states and imu are fresh (at once if they already are).
        self._stand_pending = self.p("activate_mode") == "stand"
        self._try_pending_stand(now)
        if self.p("control_trigger") == "timer":
            self._control_timer = self.create_timer(c.control_period, self._on_timer)
        return result

    def _try_pending_stand(self, now: float) -> None:
        if not self._stand_pending:
            return
        ok, message = self.controller.request(Mode.STAND, now, "lifecycle activate")
        if ok:
            self._stand_pending = False
            self.get_logger().info(message)
        elif not self._stand_warned:
            self._stand_warned = True
            self.get_logger().warning(f"activate: PASSIVE until STAND is possible ({message})")

    def _stop_control(self) -> None:
        self._active = False
        self._stand_pending = False
        if self._control_timer is not None:
            self.destroy_timer(self._control_timer)
            self._control_timer = None

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_control()
        self.controller.request(Mode.PASSIVE, self.now(), "lifecycle deactivate")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._destroy_interfaces()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        if self.controller is not None:
            self._destroy_interfaces()
        return TransitionCallbackReturn.SUCCESS

    # --- callbacks ----------------------------------------------------------------------------
    # Kept small: at 400 Hz per input these run thousands of times a second.
    def _receiving(self, name: str):
        receive, clock = self.controller.receive, self.get_clock()

        def callback(data: bytes) -> None:
            receive(name, data, clock.now().nanoseconds * 1e-9)

        return callback

    def _validating(self, handler):
        clock = self.get_clock()

        def callback(msg) -> None:
            handler(msg, clock.now().nanoseconds * 1e-9)

        return callback

    def _tick_due(self, now: float) -> bool:
        return self._active and self._control_timer is None and now >= self._next_tick

    def _on_joint_states_raw(self, data: bytes) -> None:
        entry = time.perf_counter()
        now = self.now()
        # Tick on the first joint_states at or after the tick time that passes validation.
        if self.controller.receive("joint_states", data, now) and self._tick_due(now):
            self._control_step(entry, now)

    def _on_joint_states(self, msg: JointState) -> None:
        entry = time.perf_counter()
        now = self.now()
        if self.controller.on_joint_state(msg, now) and self._tick_due(now):
            self._control_step(entry, now)

    def _on_timer(self) -> None:
        self._control_step(time.perf_counter(), self.now())

    def _mode_service(self, mode: Mode):
        def handle(request, response):
            if not self._active:
                response.success, response.message = False, "node is not active"
                return response
            ok, message = self.controller.request(mode, self.now(), f"service ~/{mode.value}")
            response.success, response.message = ok, message
            if ok:
                self.get_logger().info(message)
            else:
                self.get_logger().warning(message)
            return response

        return handle

    def _control_step(self, entry: float, now: float) -> None:
        """One control tick; ``entry`` is ``time.perf_counter()`` at the callback's start,
        ``now`` the node clock read there."""
        if not self.context.ok():  # shutting down (e.g. SIGTERM): nothing may be published
            return
        period = self.controller.control_period
        if self._last_tick is not None and now - self._last_tick > 1.5 * period:
            self.missed_ticks += int(round((now - self._last_tick) / period)) - 1
        self._last_tick = now
        # Next tick on the period grid; if far behind, restart the grid from now.
        self._next_tick = max(self._next_tick + period, now + 0.5 * period)
        self.ticks += 1
        self._try_pending_stand(now)
        before = self.controller.mode
        targets = self.controller.tick(now)
        after = self.controller.mode
        if after is not before:
            self.get_logger().warning(str(self.controller.safety.last_transition))
        if targets is None:
            return
        # The two messages are reused: building them afresh every tick is avoidable latency.
        out = self._cmd_msg
        out.data = targets.tolist()
        self._cmd_pub.publish(out)
        if self._js_pub is not None:
            js = self._js_msg
            stamp = self.controller.joint_stamp  # a Time, or a cdr.Stamp read from the bytes
            if stamp is None or (stamp.sec == 0 and stamp.nanosec == 0):  # unstamped input
                stamp = self.get_clock().now().to_msg()
            js.header.stamp.sec, js.header.stamp.nanosec = stamp.sec, stamp.nanosec
            js.position = out.data
            self._js_pub.publish(js)
        self.control_latency.add(time.perf_counter() - entry)
        self.belief.after_tick(now)  # after the targets are out: the tick never waits for it

    def _publish_diagnostics(self) -> None:
        # The timer runs on the executor's thread and a transition on the thread that asks for
        # it: a tick can come after configure loaded the controller and before its interfaces
        # (the belief publisher among them) exist. Read both once; publish nothing until then.
        c, belief = self.controller, self.belief
        if c is not None and belief is None:
            return
        if c is None:
            if self.configure_error is not None:
                self._publish_status(
                    ERROR,
                    f"unconfigured: {self.configure_error}",
                    [("mode", "UNCONFIGURED"), ("configure_error", self.configure_error)],
                )
            return
        now = self.now()
        names = c.inputs
        stale = c.stale_inputs(now)
        rejecting = c.rejecting_inputs(now)
        errors = c.monitor.recent_errors(now)
        level, summary = status_level(c.mode.value, stale, errors, rejecting)
        values = status_values(
            mode=c.mode.value,
            ages={n: c.monitor.age(n, now) for n in names},
            rates={n: c.monitor.rate(n, now) for n in names},
            rejected=c.monitor.rejected,
            recent_rejected={n: c.monitor.recent_rejections(n, now) for n in names},
            rate_limited=c.rate_limited,
            errors=errors,
            latency=c.inference.summary_ms(),
            control_latency=self.control_latency.summary_ms(),
            transitions=[str(t) for t in c.safety.transitions],
            missing_heights=c.missing_heights,
            ticks=self.ticks,
            missed_ticks=self.missed_ticks,
        )
        values += [(f"{n}.rejecting", why) for n, why in rejecting.items()]
        values.append(("scheduling", self.scheduling))
        values.append(("heights.source", c.height_source))
        values.append(("heights.stale", c.heights_stale(now) or "no"))
        if c.height_source == "elevation_map":
            values.append(("heights.implausible_points", str(c.implausible_heights)))
        # vx vy yaw-rate: what cmd_vel asks, on its way there, and what the policy sees.
        commands = (("requested", c.command), ("ramped", c.policy_command),
                    ("policy", c.governed_command))  # fmt: skip
        for key, command in commands:
            values.append((f"command.{key}", " ".join(f"{v:.3f}" for v in command)))
        values += governor_values(c.metadata.speed_governor, c.governor)
        if c.governor is not None and c.governor.capped[0] and c.mode is Mode.WALK:
            why = "rough ground underfoot" if c.governor.seen_by_feet[0] else "steps in its belief"
            summary += f"; slowed to {c.governor.config.slow_speed:g} m/s: {why}"
        self._publish_status(level, summary, values)
        stamp = self.get_clock().now().to_msg()
        belief.publish_diagnostics(self._diag_pub, self.get_name(), stamp)

    def _publish_status(self, level: int, summary: str, values: list[tuple[str, str]]) -> None:
        status = DiagnosticStatus(
            level=bytes([level]),
            name=f"{self.get_name()}: control",
            message=summary,
            hardware_id=os.uname().nodename,
            values=[KeyValue(key=k, value=v) for k, v in values],
        )
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)


def make_executor(kind: str, context=None):
    """The executor ``main()`` spins: ``events`` or ``single_threaded`` (see PARAMETERS)."""
    if kind == "events":
        from rclpy.experimental import EventsExecutor

        return EventsExecutor(context=context)
    if kind == "single_threaded":
        from rclpy.executors import SingleThreadedExecutor

        return SingleThreadedExecutor(context=context)
    raise ValueError(f"executor must be 'events' or 'single_threaded', got {kind!r}")


def main(args: list[str] | None = None) -> int:
    with node_process(PolicyNode, args) as process:
        node = process.node
        try:
            executor = make_executor(node.p("executor"))
        except ValueError as err:
            node.get_logger().error(str(err))
            return 1
        try:
            cpus = list(node.p("cpu_affinity"))
        except ParameterUninitializedException:  # unset: all CPUs
            cpus = []
        try:
            node.scheduling = apply_scheduling(int(node.p("realtime_priority")), cpus)
        except ValueError as err:
            node.get_logger().error(str(err))
            return 1
        log = node.get_logger().warning if "refused" in node.scheduling else node.get_logger().info
        log(f"scheduling: {node.scheduling}")
        executor.add_node(node)
        try:
            if node.p("autostart"):
                node.trigger_configure()
                if node.controller is None:
                    return 1
                node.trigger_activate()
            # Everything loaded so far lives as long as the process: keep it out of the cyclic
            # garbage collector, whose full passes over it take tens of ms, mid-tick.
            gc.collect()
            gc.freeze()
            # Not executor.spin(): the EventsExecutor of the Kilted PyPI wheels dispatches
            # nothing from spin() (timers and subscriptions stay silent), while spin_once()
            # works.
            process.spin(executor)
        finally:
            # No callback runs after this; node_process then destroys the node's timers and
            # publishers while the context is still valid.
            executor.shutdown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
