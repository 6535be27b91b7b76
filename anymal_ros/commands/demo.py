"""`anymal-ros demo`: the whole stack closed loop on one machine.

sim_node (MuJoCo, 400 Hz) and policy_node (the ONNX student at its control rate) run in one
process on one executor thread (physics in its own thread), talking over the real ROS topics;
a command schedule is sent on ``/cmd_vel``. The policy node samples its heights from sim_node's
elevation map (grid_map_msgs/GridMap), as it would from a robot's elevation mapping.

``--terrain stairs`` (default): a pit of 10 cm stairs (``config/sim_stairs.yaml``); the robot
walks straight ahead from the pit's floor, up the stairs and over the rim down into the next
pit. ``--terrain flat``: flat ground and a schedule of forward walking and turning.

Prints velocity-tracking error, falls and the height climbed, and writes
``out/demo_velocity.png`` (commanded vs actual base velocity, terrain under the base) and
``out/demo.json``, and
``out/demo.mp4`` (a camera following the robot, 15 fps, 320x240, rendered after the run) when
MuJoCo can render offscreen
(``--no-video`` skips it; ``--video`` makes a rendering failure an error).

The policy is ``--model`` if given, else the bundled ``policies/student.onnx`` (see
``policies/MODEL_CARD.md``); if that file is missing (a broken install), a freshly initialised
student exported on the spot, which outputs near-zero residuals, so the robot just stands at
the default pose. The output says which policy ran.
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: (start s, vx m/s, vy m/s, yaw rate rad/s) after WALK starts, per terrain.
SCHEDULES = {
    "flat": (
        (0.0, 0.0, 0.0, 0.0),
        (2.0, 0.5, 0.0, 0.0),
        (8.0, 0.3, 0.0, 0.5),
        (14.0, 0.0, 0.0, 0.0),
    ),
    "stairs": ((0.0, 0.0, 0.0, 0.0), (2.0, 0.5, 0.0, 0.0), (18.0, 0.0, 0.0, 0.0)),
}
#: sim_node settings per terrain (the stairs file is found in the package's share/config).
TERRAINS = {"flat": {}, "stairs": {"terrain_kind": "heightfield", "sim_config": "sim_stairs.yaml"}}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--seconds", type=float, default=20.0, help="walking time (sim s)")
    parser.add_argument(
        "--terrain", choices=sorted(TERRAINS), default="stairs", help="what the robot walks on"
    )
    parser.add_argument("--model", type=Path, default=None, help="ONNX student policy")
    parser.add_argument("--out-dir", type=Path, default=Path("out"), help="where files go")
    parser.add_argument(
        "--video",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="write demo.mp4 (default: when offscreen rendering works)",
    )


#: Video settings: frames per simulated second and size (software EGL renders ~10 frames/s).
VIDEO_FPS, VIDEO_SIZE = 15.0, (320, 240)


class _Video:
    """Records the robot's configuration at VIDEO_FPS of simulated time while the demo runs
    (a copy under the simulator's lock, so physics keeps its pace) and renders the frames
    afterwards, from a camera following the base, on a private MjData."""

    def __init__(self, sim) -> None:
        import types

        import mujoco

        from anymal_ros.sim.render import FollowCamera

        self.sim = sim
        env = sim.robot.env
        self.data = mujoco.MjData(env.model)
        view = types.SimpleNamespace(model=env.model, index=env.index, data=self.data)
        self.camera = FollowCamera(view, width=VIDEO_SIZE[0], height=VIDEO_SIZE[1])
        self.qpos: list = []
        self.next_time = 0.0

    def maybe_capture(self, t: float) -> None:
        if t < self.next_time:
            return
        self.next_time = max(self.next_time + 1.0 / VIDEO_FPS, t)
        with self.sim.lock:
            self.qpos.append(self.sim.robot.data.qpos.copy())

    def save(self, path: Path) -> Path | None:
        import mujoco

        from anymal_ros.sim.render import save_frames

        frames = []
        model = self.sim.robot.env.model
        for q in self.qpos:
            self.data.qpos[:] = q
            mujoco.mj_forward(model, self.data)
            frames.append(self.camera.frame())
        self.camera.close()
        return save_frames(frames, path, VIDEO_FPS) if frames else None


def _make_video(sim, wanted: bool | None):
    """The recorder, or None: rendering off, or unavailable and not explicitly asked for."""
    if wanted is False:
        return None
    try:
        return _Video(sim)
    except Exception as err:  # no OpenGL backend (MUJOCO_GL), no display libraries, ...
        if wanted:
            raise RuntimeError(f"--video: offscreen rendering failed ({err})") from err
        print(f"no video: offscreen rendering unavailable ({err}); set MUJOCO_GL=egl|osmesa")
        return None


def command_at(t: float, terrain: str = "flat") -> tuple[float, float, float]:
    schedule = SCHEDULES[terrain]
    current = schedule[0][1:]
    for start, *cmd in schedule:
        if t >= start:
            current = tuple(cmd)
    return current


def _policy(args: argparse.Namespace) -> tuple[Path, str]:
    from anymal_ros.nodes.policy_node import bundled_policy_path

    if args.model is not None:
        return args.model, f"--model {args.model}"
    bundled = bundled_policy_path()
    if bundled.is_file():
        return bundled, f"bundled policy {bundled}"
    import torch

    from anymal_ros.config.models import StudentConfig, sized_for_action_mode
    from anymal_ros.deploy.export import export_student
    from anymal_ros.models.student import Student

    torch.manual_seed(0)
    path = export_student(
        Student(sized_for_action_mode(StudentConfig(), "joint_residual")).eval(),
        args.out_dir / "demo_untrained.onnx",
    )
    return path, (
        f"BUNDLED POLICY MISSING ({bundled}): freshly initialised student {path} "
        "(near-zero actions: the robot stands, it does not track the command)"
    )


def config_path(name: str) -> Path:
    """A file of the package's ``config/``: installed share, else the source tree."""
    try:
        from ament_index_python.packages import get_package_share_directory

        path = Path(get_package_share_directory("anymal_ros")) / "config" / name
        if path.is_file():
            return path
    except Exception:  # noqa: BLE001 - not installed / no AMENT_PREFIX_PATH
        pass
    return Path(__file__).resolve().parents[2] / "config" / name


def sim_parameters(terrain: str, robot: str) -> list:
    """sim_node's parameters: the terrain's, and the robot the policy was trained for."""
    from rclpy.parameter import Parameter

    values = {**TERRAINS[terrain], "robot": robot}
    if "sim_config" in values:
        values["sim_config"] = str(config_path(values["sim_config"]))
    return [Parameter(k, value=v) for k, v in values.items()]


def run(args: argparse.Namespace) -> int:
    import json
    import os
    import random
    import threading
    import time
    import traceback

    if args.video is not False:  # before MuJoCo is imported: it picks its GL backend once
        os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    os.environ.setdefault("ROS_DOMAIN_ID", str(random.randint(10, 200)))
    import numpy as np
    import rclpy
    from geometry_msgs.msg import Twist
    from rclpy.context import Context
    from rclpy.executors import SingleThreadedExecutor
    from rclpy.node import Node
    from rclpy.parameter import Parameter

    from anymal_ros.nodes.policy_node import PolicyNode
    from anymal_ros.nodes.safety import Mode
    from anymal_ros.nodes.sim_node import SimNode

    args.out_dir.mkdir(parents=True, exist_ok=True)
    model, which = _policy(args)
    print(f"policy: {which}; terrain: {args.terrain}")
    context = Context()
    rclpy.init(args=[], context=context)  # not this command's argv: no --ros-args for the nodes
    # One executor thread for every callback (rclpy's multi-threaded executor costs more than
    # it gains under the GIL); physics runs in sim_node's own thread.
    executor = SingleThreadedExecutor(context=context)
    from anymal_ros.deploy.runtime import OnnxPolicy

    robot = OnnxPolicy(model).metadata.robot  # simulate the robot the policy was trained for
    sim = SimNode(context=context, parameter_overrides=sim_parameters(args.terrain, robot))
    policy = PolicyNode(
        context=context,
        parameter_overrides=[
            Parameter("model_path", value=str(model)),
            Parameter("stand_duration", value=1.0),
            Parameter("cmd_vel_timeout", value=1.0),
        ],
    )
    height_source = policy.p("height_source")
    commander = Node("demo_commander", context=context)
    cmd_pub = commander.create_publisher(Twist, "/cmd_vel", 10)
    for node in (sim, policy, commander):
        executor.add_node(node)
    spin_errors: list[Exception] = []

    def spin() -> None:
        try:
            executor.spin()
        except Exception as err:  # a callback raised: the loops below say so and stop
            spin_errors.append(err)
            traceback.print_exc()

    def stopped() -> bool:
        """Whether the executor thread has ended, and with it every node (printing why)."""
        if spinner.is_alive():
            return False
        why = f": {spin_errors[0]!r}" if spin_errors else ""
        print(f"the nodes' executor thread ended{why}; the nodes no longer run")
        return True

    spinner = threading.Thread(target=spin, daemon=True)
    spinner.start()
    # t, commanded vx vy wz, actual vx vy wz, terrain height under the base
    log: list[tuple[float, ...]] = []
    video = None
    try:
        video = _make_video(sim, args.video)
        policy.trigger_configure()
        if policy.controller is None:
            print("policy_node failed to configure (see the log above)")
            return 1
        deadline = time.monotonic() + 10.0
        while not policy.controller.health(policy.now()).proprioception:
            if stopped():
                return 1
            if time.monotonic() > deadline:
                print("no joint_states/imu from sim_node within 10 s")
                return 1
            time.sleep(0.05)
        policy.trigger_activate()
        # The node stands up first (stand_duration); WALK is granted once that has finished.
        # Ask until it is, rather than guessing how long a busy machine needs.
        deadline = time.monotonic() + 15.0
        while True:
            ok, message = policy.controller.request(Mode.WALK, policy.now(), "demo")
            if ok or time.monotonic() > deadline or stopped():
                break
            time.sleep(0.1)
        print(f"walk: {message}")
        if not ok:
            return 1
        t0 = sim.robot.time
        next_print = 0.0
        terrain = sim.robot.env.terrain
        while (t := sim.robot.time - t0) < args.seconds:
            if stopped():
                return 1
            vx, vy, wz = command_at(t, args.terrain)
            msg = Twist()
            msg.linear.x, msg.linear.y, msg.angular.z = vx, vy, wz
            cmd_pub.publish(msg)
            with sim.lock:
                s = sim.robot.state()
            ground = float(terrain.heights(s.base_pos[None, :2])[0])
            log.append((t, vx, vy, wz, *s.base_lin_vel[:2], s.base_ang_vel[2], ground))
            if video is not None:
                video.maybe_capture(t)
            if t >= next_print:
                print(
                    f"  t={t:5.1f} s  cmd=({vx:+.2f}, {vy:+.2f}, {wz:+.2f})  "
                    f"vel=({s.base_lin_vel[0]:+.2f}, {s.base_lin_vel[1]:+.2f}, "
                    f"{s.base_ang_vel[2]:+.2f})  mode={policy.controller.mode.value}  "
                    f"falls={sim.falls}",
                    flush=True,
                )
                next_print += 2.0
            time.sleep(0.02)
    finally:
        executor.shutdown()
        # shutdown() waits for the callback in progress, not for the spinner: one whose wait
        # had already returned could still run a timer on a node being destroyed.
        spinner.join(timeout=5.0)
        for node in (commander, policy, sim):
            node.destroy_node()
        rclpy.shutdown(context=context)
    data = np.asarray(log)
    err_lin = np.linalg.norm(data[:, 1:3] - data[:, 4:6], axis=1)
    err_yaw = np.abs(data[:, 3] - data[:, 6])
    summary = {
        "policy": which,
        "terrain": args.terrain,
        "height_source": height_source,
        "seconds": float(data[-1, 0]),
        "falls": sim.falls,
        "fall_reasons": sim.fall_reasons,
        "lin_vel_error_mean": float(err_lin.mean()),
        "yaw_rate_error_mean": float(err_yaw.mean()),
        "terrain_height_range": float(data[:, 7].max() - data[:, 7].min()),
        "inference_ms": policy_summary(policy),
        "sim_overruns": sim.overruns,
    }
    print(json.dumps(summary, indent=2))
    (args.out_dir / "demo.json").write_text(json.dumps(summary, indent=2) + "\n")
    plot(data, args.out_dir / "demo_velocity.png", which)
    print(f"wrote {args.out_dir / 'demo_velocity.png'} and {args.out_dir / 'demo.json'}")
    if video is not None:
        print(f"rendering {len(video.qpos)} video frames ...", flush=True)
        path = video.save(args.out_dir / "demo.mp4")
        print(f"wrote {path}" if path else "no video frames")
    return 0


def policy_summary(policy) -> dict:
    c = policy.controller
    return c.inference.summary_ms() if c is not None else {}


def plot(data, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 1, sharex=True, figsize=(8, 9))
    for ax, (cmd, act, label) in zip(
        axes[:3], ((1, 4, "vx (m/s)"), (2, 5, "vy (m/s)"), (3, 6, "yaw rate (rad/s)")), strict=True
    ):
        ax.plot(data[:, 0], data[:, cmd], label="commanded")
        ax.plot(data[:, 0], data[:, act], label="actual")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    axes[3].plot(data[:, 0], data[:, 7], color="tab:brown")
    axes[3].set_ylabel("terrain under base (m)")
    axes[3].grid(alpha=0.3)
    axes[0].legend()
    axes[0].set_title(title[:90], fontsize=8)
    axes[-1].set_xlabel("time since WALK (s)")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
