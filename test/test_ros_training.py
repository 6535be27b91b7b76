"""Training through ROS: the topic bridge against a real sim_node in lockstep mode, PPO through
the bridge, an evaluation rollout, and train_node's progress and services.

sim_node runs in this process in its own rclpy context, spun by a background thread, exactly
as a separate simulator process would answer; the bridge and train_node use contexts of their
own, so every message crosses loopback DDS.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("anymal_ros.sim.env", reason="needs the MuJoCo simulator")

import torch  # noqa: E402
from rclpy.node import Node  # noqa: E402
from rclpy.parameter import Parameter  # noqa: E402
from ros_helpers import RosSession  # noqa: E402
from std_msgs.msg import String  # noqa: E402
from std_srvs.srv import Trigger  # noqa: E402

from anymal_ros.bridges.ros_topics import RosTopicVecEnv, SimulatorTimeout  # noqa: E402
from anymal_ros.config import load_config  # noqa: E402
from anymal_ros.config.rl import TrainConfig  # noqa: E402
from anymal_ros.config.ros_env import RosEnvConfig  # noqa: E402
from anymal_ros.config.sim import ActionConfig, SimConfig  # noqa: E402
from anymal_ros.contract import PRIVILEGED_LAYOUT, proprio_layout  # noqa: E402
from anymal_ros.models.checkpoint import load_checkpoint  # noqa: E402
from anymal_ros.models.loading import teacher_from_checkpoint  # noqa: E402
from anymal_ros.nodes.sim_node import SimNode  # noqa: E402
from anymal_ros.nodes.train_node import TrainNode  # noqa: E402
from anymal_ros.rl.runner import train_runner  # noqa: E402

pytestmark = pytest.mark.ros

REPO = Path(__file__).resolve().parents[1]
SIM = dataclasses.replace(SimConfig(), actions=ActionConfig(mode="joint_residual"))
TINY = [  # two short PPO iterations through one robot
    "ppo.num_steps=16",
    "ppo.num_epochs=1",
    "ppo.num_minibatches=2",
    "runner.iterations=2",
    "runner.progress=false",
    "runner.tensorboard=false",
    "runner.checkpoint_interval=0",
]


class BackgroundSim:
    """sim_node (lockstep, privileged topic) in its own context, spun by a thread."""

    def __init__(self, node_type: type[SimNode] = SimNode, namespace: str = "") -> None:
        self.session = RosSession()
        params = [Parameter("lockstep", value=True), Parameter("publish_privileged", value=True)]
        self.node = self.session.add(
            node_type(context=self.session.context, namespace=namespace, parameter_overrides=params)
        )
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        while not self._stop.is_set():
            self.session.executor.spin_once(timeout_sec=0.01)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.session.close()


@pytest.fixture(scope="module")
def sim():
    background = BackgroundSim()
    yield background.node
    background.close()


@pytest.fixture
def env(sim):
    bridge = RosTopicVecEnv(SIM, RosEnvConfig(), num_envs=1, seed=0)
    yield bridge
    bridge.close()


def test_bridge_observations_match_the_simulator_state(sim, env):
    """Each observation term the bridge builds from topics equals the simulator's own raw
    state at that instant (float32 rounding), heights equal the env's height sampling, and
    the privileged vector has the simulator's friction and standing contacts. The bridge's
    proprio uses the same ProprioBuilder as QuadrupedVecEnv, so equal inputs give equal
    vectors; comparing inputs pins the topic plumbing (joint order, frames, stamps)."""
    obs = env.reset()
    assert {k: v.shape for k, v in obs.items()} == {
        "proprio": (1, 120),
        "extero": (1, 4, 52),
        "privileged": (1, 50),
    }
    rng = np.random.default_rng(0)
    for _ in range(15):
        action = rng.normal(0.0, 0.1, size=(1, env.action_dim))
        obs, reward, terminated, truncated, info = env.step(action)
        assert all(np.isfinite(v).all() for v in obs.values())
        assert np.isfinite(reward).all() and not terminated.any() and not truncated.any()
        terms = info["reward_terms"]
        total = sum(float(v[0]) for v in terms.values())  # before the clip at zero
        assert reward[0] == pytest.approx(max(total, 0.0), abs=1e-5)
    with sim.lock:  # lockstep: the simulator is idle between steps
        state = sim.robot.state()
        heights, _ = sim.robot.height_samples()
        friction = sim.robot.env.randomizer.foot_friction[0].copy()
    s = proprio_layout(False).slices()
    p = obs["proprio"][0]
    np.testing.assert_allclose(p[s["gravity"]], state.gravity, atol=1e-6)
    np.testing.assert_allclose(p[s["base_lin_vel"]], state.base_lin_vel, atol=1e-5)
    np.testing.assert_allclose(p[s["base_ang_vel"]], state.base_ang_vel, atol=1e-5)
    np.testing.assert_allclose(
        p[s["joint_pos"]], state.joint_pos - env.proprio.default_joint_pos, atol=1e-6
    )
    np.testing.assert_allclose(p[s["joint_vel"]], state.joint_vel, atol=1e-5)
    np.testing.assert_allclose(p[s["joint_target_history"]][:12], env.targets[0], atol=1e-6)
    np.testing.assert_allclose(obs["extero"][0], heights, atol=1e-6)
    q = PRIVILEGED_LAYOUT.slices()
    np.testing.assert_allclose(obs["privileged"][0, q["foot_friction"]], friction, atol=1e-6)
    assert np.all(obs["privileged"][0, q["foot_contact"]] == 1.0)  # standing on four feet
    # Tracking reward from the bridge's command and the simulator's velocity.
    err = np.sum((info["command"][0, :2] - state.base_lin_vel[:2]) ** 2)
    expected = np.exp(-err / SIM.rewards.tracking_sigma) * SIM.control_dt
    assert terms["lin_vel_tracking"][0] == pytest.approx(expected, rel=1e-4)


def test_bridge_terminates_a_fall_and_resets_through_the_service(sim, env):
    env.reset()
    env.step(np.zeros((1, env.action_dim)))
    with sim.lock:  # knock the robot onto its side
        quat = sim.robot.index.qpos_base[0][3:7]
        sim.robot.data.qpos[quat] = [np.cos(np.pi / 4), np.sin(np.pi / 4), 0.0, 0.0]
    obs, _, terminated, truncated, info = env.step(np.zeros((1, env.action_dim)))
    assert terminated[0] and not truncated[0]
    assert info["episode_length"][0] == 2
    g = proprio_layout(False).slices()["gravity"]
    assert info["final_obs"]["proprio"][0, g][2] > -0.5  # the fallen state
    assert obs["proprio"][0, g][2] < -0.95  # the new episode, upright
    assert env.episode_step[0] == 0


class SimLosingResetReplies(SimNode):
    """Resets on every request but its first ``lost`` replies never leave, as when rmw drops
    a reply sent before the simulator has discovered the client's reply reader (seen in CI)."""

    lost = 1

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.replies_sent = 0
        (service,) = [s for s in self.services if s.srv_name.endswith("/reset")]
        send = service.send_response

        def send_unless_lost(response, header) -> None:
            self.replies_sent += 1
            if self.replies_sent > self.lost:
                send(response, header)

        service.send_response = send_unless_lost


class SimLosingAllResetReplies(SimLosingResetReplies):
    lost = 1_000_000


@pytest.mark.parametrize("sim_type", [SimLosingResetReplies, SimLosingAllResetReplies])
def test_bridge_asks_again_when_a_reset_reply_is_lost(sim_type):
    """A lost reset reply costs one retry window, not the step timeout and a crash; a
    simulator that never gets a reply through fails after the step timeout, saying so."""
    background = BackgroundSim(sim_type, namespace="lossy")
    cfg = RosEnvConfig(namespaces=("lossy",), step_timeout=2.0, reset_retry=0.5)
    bridge = RosTopicVecEnv(SIM, cfg, num_envs=1, seed=0)
    try:
        if sim_type is SimLosingAllResetReplies:
            with pytest.raises(SimulatorTimeout, match=r"reset asked \d+ times in 2.0 s"):
                bridge.reset()
            assert background.node.replies_sent >= 2
            return
        obs = bridge.reset()
        assert background.node.replies_sent == 2
        assert np.isfinite(obs["proprio"]).all()
        obs, *_ = bridge.step(np.zeros((1, bridge.action_dim), np.float32))
        assert np.isfinite(obs["proprio"]).all()
    finally:
        bridge.close()
        background.close()


def test_ppo_through_the_bridge_writes_a_checkpoint_and_evaluates(sim, tmp_path):
    cfg = load_config(TrainConfig, REPO / "config/teacher_ros.yaml", TINY)
    runner = train_runner(cfg, run_dir=tmp_path / "run")
    try:
        summary = runner.learn()
    finally:
        runner.env.close()
    assert summary["iterations"] == 2 and summary["env_steps"] == 32
    ckpt_path = tmp_path / "run/checkpoints/latest.pt"
    ckpt = load_checkpoint(ckpt_path)
    assert ckpt["config"]["env"]["kind"] == "ros"
    assert ckpt["config"]["deploy"]["actions"]["mode"] == "joint_residual"
    teacher = teacher_from_checkpoint(ckpt, ckpt_path).eval()

    # A brief evaluation through the bridge: fixed command, deterministic teacher.
    env = RosTopicVecEnv(SIM, RosEnvConfig(), num_envs=1, seed=1)
    try:
        env.set_commands(np.array([0.5, 0.0, 0.0]))
        obs = env.reset()
        errors, returns = [], []
        for _ in range(40):
            with torch.no_grad():
                action = teacher.act_deterministic({k: torch.from_numpy(v) for k, v in obs.items()})
            obs, _, _, _, info = env.step(action.numpy())
            errors.append(np.linalg.norm(info["command"][0, :2] - info["base_lin_vel"][0, :2]))
            returns.append(info["reward_terms"]["lin_vel_tracking"][0])
    finally:
        env.close()
    assert np.all(np.isfinite(errors)) and 0.0 < np.mean(errors) < 2.0
    assert np.all(info["command"][0] == np.array([0.5, 0.0, 0.0], dtype=np.float32))
    assert 0.0 < np.sum(returns) <= 40 * SIM.control_dt


def test_train_node_publishes_progress_saves_and_stops_with_a_checkpoint(ros, sim, tmp_path):
    node = ros.add(
        TrainNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("algorithm", value="ppo"),
                Parameter("config_file", value=str(REPO / "config/teacher_ros.yaml")),
                Parameter("overrides", value=TINY),
                Parameter("iterations", value=1000),
                Parameter("run_dir", value=str(tmp_path / "node_run")),
                Parameter("diagnostics_period", value=0.2),
            ],
        )
    )
    probe = ros.add(Node("probe", context=ros.context))
    progress: list[dict] = []
    probe.create_subscription(
        String, "/train_node/progress", lambda m: progress.append(json.loads(m.data)), 10
    )
    assert ros.spin_until(lambda: len(progress) >= 1, 30.0), node.error
    first = progress[0]
    assert first["iteration"] >= 1 and first["iterations"] == 1000
    assert first["env_steps"] == 16 * first["iteration"] and first["eta_s"] > 0
    assert {"policy_loss", "value_loss", "entropy"} <= set(first["stats"])
    save = probe.create_client(Trigger, "/train_node/save_checkpoint")
    reply = ros.call(save, Trigger.Request(), timeout=30.0, resend_after=30.0)  # not idempotent
    assert reply.success and Path(reply.message).is_file(), reply.message
    stop = probe.create_client(Trigger, "/train_node/stop")
    reply = ros.call(stop, Trigger.Request(), timeout=30.0, resend_after=30.0)
    assert reply.success, reply.message
    assert reply.message.endswith("latest.pt") and Path(reply.message).is_file()
    assert node.finished and node.state == "done"
    assert node.summary["stopped_by"] == "stop service"
    assert node.summary["iterations"] < 1000
    ckpt = load_checkpoint(reply.message)
    assert ckpt["counters"]["iteration"] == node.summary["iterations"]


def test_train_node_reports_a_bad_config_key_and_fails(ros, sim, tmp_path):
    node = ros.add(
        TrainNode(
            context=ros.context,
            parameter_overrides=[
                Parameter("config_file", value=str(REPO / "config/teacher_ros.yaml")),
                Parameter("overrides", value=["ppo.learning_rat=1e-3"]),
                Parameter("run_dir", value=str(tmp_path / "bad")),
            ],
        )
    )
    assert ros.spin_until(lambda: node.finished, 10.0)
    assert node.state == "failed" and "learning_rat" in node.error
