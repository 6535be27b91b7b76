"""Export to ONNX and run with the real onnxruntime: parity with torch over long recurrent
rollouts, metadata round trip, and a clear error for every kind of bad file or input."""

import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from model_helpers import fit_normalizers

from anymal_ros.config.deploy import DeployConfig
from anymal_ros.config.models import ActionHeadConfig, StudentConfig, TeacherConfig
from anymal_ros.contract import CONTRACT_VERSION, JOINT_NAMES
from anymal_ros.deploy.export import export_student, export_teacher
from anymal_ros.deploy.metadata import PREFIX, PolicyFileError, PolicyMetadata
from anymal_ros.deploy.runtime import ObservationError, OnnxPolicy
from anymal_ros.models.student import Student
from anymal_ros.models.teacher import Teacher


def _trained_looking(model):
    """Non-trivial normalisers and an action head that is not ~0 (a fresh head's outputs
    are ~1e-3, too small for a 1e-5 parity check to mean much)."""
    torch.manual_seed(0)
    fit_normalizers(model)
    with torch.no_grad():
        for p in model.action_head.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    return model.eval()


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    student = _trained_looking(Student())
    path = tmp_path_factory.mktemp("policy") / "student.onnx"
    export_student(
        student, path, DeployConfig(joint_pos_lower=(-1.0,) * 12, joint_pos_upper=(1.0,) * 12)
    )
    return student, path


def test_student_parity_over_long_rollout_with_resets(student_file):
    student, path = student_file
    policy = OnnxPolicy(path)
    rng = np.random.default_rng(0)
    hidden = student.initial_hidden(1)
    worst = 0.0
    for t in range(600):
        if t in (150, 151, 420):  # resets mid-rollout, including two in a row
            policy.reset()
            hidden = student.initial_hidden(1)
        proprio = (rng.normal(size=133) * 2.0).astype(np.float32)
        extero = (rng.normal(size=(4, 52)) * 0.2 - 0.3).astype(np.float32)
        action = policy.step(proprio, extero[None] if t % 2 else extero)
        with torch.no_grad():
            ref, hidden = student.step_deterministic(
                torch.from_numpy(proprio)[None], torch.from_numpy(extero)[None], hidden
            )
        assert action.shape == (16,) and action.dtype  # CPG: 4 + 12 == np.float32
        worst = max(worst, float(np.abs(action - ref[0].numpy()).max()))
    np.testing.assert_allclose(policy.hidden, hidden.numpy(), atol=1e-5, rtol=0)
    assert worst <= 1e-5
    assert np.abs(ref.numpy()).max() > 0.1  # the comparison is not between two near-zeros


def test_hidden_state_is_carried_and_reset(student_file):
    _, path = student_file
    policy = OnnxPolicy(path)
    proprio, extero = np.ones(133, np.float32), np.zeros((4, 52), np.float32)
    first = policy.step(proprio, extero)
    second = policy.step(proprio, extero)
    assert not np.allclose(first, second, atol=1e-6)  # memory changes the answer
    policy.reset()
    np.testing.assert_array_equal(policy.step(proprio, extero), first)
    returned = policy.step(proprio, extero)
    returned += 100.0  # the caller owns the returned array; the policy is unaffected
    policy.reset()
    np.testing.assert_array_equal(policy.step(proprio, extero), first)


def test_metadata_round_trip(student_file):
    _, path = student_file
    meta = OnnxPolicy(path).metadata
    assert meta.kind == "student" and meta.contract_version == CONTRACT_VERSION
    assert meta.proprio_dim == 133 and meta.extero_shape == (4, 52)
    assert meta.hidden_shape == (2, 1, 50) and meta.action_dim == 16
    assert meta.action_type == "cpg"  # default for the 133-term CPG proprio layout
    assert meta.joint_names == JOINT_NAMES and meta.joint_pos_lower == (-1.0,) * 12
    assert meta.control_period == 0.02 and meta.action_scale == 0.5
    assert meta.proprio_layout.dim == 133 and "joint_pos" in meta.proprio_layout.names
    model = onnx.load(path)
    onnx.checker.check_model(model)
    assert PolicyMetadata.from_props({p.key: p.value for p in model.metadata_props}) == meta


def test_runtime_does_not_import_torch(student_file):
    _, path = student_file
    code = (
        "import sys\n"
        "from anymal_ros.deploy.runtime import OnnxPolicy\n"
        "import numpy as np\n"
        f"p = OnnxPolicy({str(path)!r})\n"
        "p.step(np.zeros(133, np.float32), np.zeros((4, 52), np.float32))\n"
        "bad = [m for m in ('torch', 'onnx', 'mujoco', 'rclpy') if m in sys.modules]\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=str(_repo_root()))


def _repo_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[1]


def test_bad_observations_are_named(student_file):
    _, path = student_file
    policy = OnnxPolicy(path)
    proprio, extero = np.zeros(133, np.float32), np.zeros((4, 52), np.float32)
    with pytest.raises(ObservationError, match=r"proprio: expected shape \[133\]"):
        policy.step(np.zeros(120, np.float32), extero)
    with pytest.raises(ObservationError, match="extero: expected shape"):
        policy.step(proprio, np.zeros(208, np.float32))
    with pytest.raises(ObservationError, match="extero: expected shape"):
        policy.step(proprio, np.zeros((2, 4, 52), np.float32))
    bad = proprio.copy()
    bad[17] = np.nan
    with pytest.raises(ObservationError, match="proprio: 1 non-finite value.*index 17"):
        policy.step(bad, extero)
    bad_e = extero.copy()
    bad_e[3, 5] = np.inf
    with pytest.raises(ObservationError, match="extero: 1 non-finite"):
        policy.step(proprio, bad_e)
    with pytest.raises(ValueError):  # ObservationError is a ValueError
        policy.step(proprio, np.full((4, 52), "x"))
    policy.step(proprio.astype(np.float64), extero)  # float64 input is accepted


def test_corrupt_files_are_refused(tmp_path, student_file):
    _, path = student_file
    data = path.read_bytes()
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(np.random.default_rng(0).bytes(4096))
    with pytest.raises(PolicyFileError, match="not a loadable ONNX model"):
        OnnxPolicy(junk)
    truncated = tmp_path / "truncated.onnx"
    truncated.write_bytes(data[: len(data) // 2])
    with pytest.raises(PolicyFileError, match="truncated"):
        OnnxPolicy(truncated)
    with pytest.raises(PolicyFileError, match="not found"):
        OnnxPolicy(tmp_path / "missing.onnx")


def _rewrite(path, dst, edit):
    model = onnx.load(path)
    props = {p.key: p.value for p in model.metadata_props}
    edit(props)
    del model.metadata_props[:]
    for k, v in props.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = k, v
    onnx.save(model, dst)
    return dst


def test_bad_metadata_is_refused(tmp_path, student_file):
    _, path = student_file
    cases = [
        (lambda p: p.clear(), "missing key 'anymal_ros.contract_version'.*no anymal_ros metadata"),
        (lambda p: p.pop(PREFIX + "joint_names"), "missing key 'anymal_ros.joint_names'"),
        (lambda p: p.update({PREFIX + "contract_version": "99"}), "unsupported contract version"),
        (lambda p: p.update({PREFIX + "proprio_dim": "abc"}), "proprio_dim: expected an integer"),
        (lambda p: p.update({PREFIX + "proprio_dim": "120"}), "proprio_layout: terms add up"),
        (lambda p: p.update({PREFIX + "kind": "robot"}), "kind: 'robot' is not one of"),
        (lambda p: p.update({PREFIX + "hidden_shape": "[2, 1, 64]"}), "'hidden' is tensor.*64"),
        (lambda p: p.update({PREFIX + "kind": "teacher", PREFIX + "hidden_shape": "[]",
                             PREFIX + "privileged_dim": "50"}), "graph inputs.*disagree"),
        (lambda p: p.update({PREFIX + "default_joint_pos": "[0.0]"}), "default_joint_pos: has 1"),
        (lambda p: p.update({PREFIX + "control_period": "-1"}), "control_period: must be a pos"),
        (lambda p: p.update({PREFIX + "training_physics": '{"cone": "round"}'}),
         "training_physics.cone: 'round' is not one of"),
        (lambda p: p.update({PREFIX + "training_physics": '{"dtt": 0.01}'}),
         "training_physics.*dtt"),
        (lambda p: p.update({PREFIX + "training_randomization": '{"com_offset": [0.1, -0.1]}'}),
         "training_randomization: com_offset"),
        (lambda p: p.update({PREFIX + "training_randomization": '[1, 2]'}),
         "training_randomization: expected a JSON object of RandomizationConfig fields"),
        (lambda p: p.update({PREFIX + "speed_governor": '{"slow_speed": -0.4}'}),
         "speed_governor: slow_speed must be a finite number >= 0, got -0.4"),
        (lambda p: p.update({PREFIX + "speed_governor": '{"spread": 0.1}'}),
         r"speed_governor.spread: unknown key; known keys: \['hold', 'slow_speed'"),
        (lambda p: p.update({PREFIX + "kind": "teacher", PREFIX + "hidden_shape": "[]",
                             PREFIX + "privileged_dim": "50", PREFIX + "speed_governor": "{}"}),
         "speed_governor: only a student has the belief"),
    ]  # fmt: skip
    for i, (edit, message) in enumerate(cases):
        dst = _rewrite(path, tmp_path / f"bad{i}.onnx", edit)
        with pytest.raises(PolicyFileError, match=message):
            OnnxPolicy(dst)


def test_categorical_student_export(tmp_path):
    cfg = StudentConfig(action=ActionHeadConfig(type="categorical", num_actions=5))
    student = _trained_looking(Student(cfg))
    path = export_student(student, tmp_path / "cat.onnx")
    policy = OnnxPolicy(path)
    assert policy.metadata.action_head == "categorical"
    assert policy.metadata.action_output == "logits" and policy.metadata.action_dim == 5
    hidden = student.initial_hidden(1)
    rng = np.random.default_rng(1)
    for _ in range(20):
        proprio = rng.normal(size=133).astype(np.float32)
        extero = rng.normal(size=(4, 52)).astype(np.float32)
        logits = policy.step(proprio, extero)
        with torch.no_grad():
            ref, hidden = student.step_deterministic(
                torch.from_numpy(proprio)[None], torch.from_numpy(extero)[None], hidden
            )
        np.testing.assert_allclose(logits, ref[0].numpy(), atol=1e-5, rtol=0)
        assert logits.shape == (5,)


def test_teacher_export_parity(tmp_path):
    teacher = _trained_looking(
        Teacher(TeacherConfig(proprio_dim=120, action=ActionHeadConfig(num_actions=12)))
    )
    path = export_teacher(teacher, tmp_path / "teacher.onnx")
    policy = OnnxPolicy(path)
    meta = policy.metadata
    assert meta.kind == "teacher" and not meta.recurrent and meta.privileged_dim == 50
    assert meta.action_type == "joint_residual"  # 120-term proprio: no CPG
    assert policy.hidden is None
    g = torch.Generator().manual_seed(2)
    for _ in range(50):
        obs = {
            "proprio": torch.randn(1, 120, generator=g),
            "extero": torch.randn(1, 4, 52, generator=g),
            "privileged": torch.randn(1, 50, generator=g) * 20,
        }
        action = policy.step(*(obs[k][0].numpy() for k in ("proprio", "extero", "privileged")))
        with torch.no_grad():
            ref = teacher.act_deterministic(obs)[0].numpy()
        np.testing.assert_allclose(action, ref, atol=1e-5, rtol=0)
    with pytest.raises(ObservationError, match="privileged"):
        policy.step(obs["proprio"][0].numpy(), obs["extero"][0].numpy())


def test_export_writes_atomically(tmp_path, student_file):
    student, _ = student_file
    target = tmp_path / "policy.onnx"
    target.write_bytes(b"previous")
    export_student(student, target)
    assert OnnxPolicy(target).metadata.kind == "student"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["policy.onnx"]  # no temp files left


def test_every_action_setting_travels_in_the_file(tmp_path):
    import dataclasses

    from anymal_ros.config.models import sized_for_action_mode
    from anymal_ros.config.sim import ActionConfig

    # Every field differs from its default, so a setting the file dropped would show.
    actions = ActionConfig(
        mode="joint_residual", scale=0.3, clip=5.0, base_frequency=1.5, frequency_scale=0.8,
        max_frequency=3.0, swing_height=0.1,
    )  # fmt: skip
    default = ActionConfig()
    assert all(
        getattr(actions, f.name) != getattr(default, f.name)
        for f in dataclasses.fields(ActionConfig)
    ), "give the new ActionConfig field a non-default value here"
    student = Student(sized_for_action_mode(StudentConfig(), "joint_residual")).eval()
    path = tmp_path / "student.onnx"
    export_student(student, path, DeployConfig(actions=actions), belief=False)
    assert OnnxPolicy(path).metadata.action_config() == actions


def test_the_training_physics_and_robots_travel_in_the_file_and_evaluations_simulate_them(
    tmp_path, capsys
):
    from anymal_ros.commands._policy_sim import resolve_sim_config
    from anymal_ros.config.sim import PhysicsConfig, RandomizationConfig

    physics = PhysicsConfig(cone="elliptic", impratio=10.0, actuator="dc_motor")
    robots = RandomizationConfig(added_base_mass=(-2.0, 2.0), com_offset=(-0.02, 0.02),
                                 contact_timeconst=(0.01, 0.03))  # fmt: skip
    student = Student().eval()
    stored = export_student(student, tmp_path / "s.onnx", belief=False, physics=physics,
                            randomization=robots)  # fmt: skip
    meta = OnnxPolicy(stored).metadata
    assert meta.training_physics == physics and meta.training_randomization == robots
    sim = resolve_sim_config(stored, None, [])
    assert sim.physics == physics and sim.randomization == robots
    assert "no training randomisation" not in capsys.readouterr().out
    # An override still wins, and a file without the keys (exported before they existed)
    # is simulated with the defaults, and says so for the robots (wider than ours trained on).
    assert resolve_sim_config(stored, None, ["physics.cone=pyramidal"]).physics.cone == "pyramidal"
    legacy = _rewrite(stored, tmp_path / "legacy.onnx", lambda p: (
        p.pop(PREFIX + "training_physics"), p.pop(PREFIX + "training_randomization")))  # fmt: skip
    assert OnnxPolicy(legacy).metadata.training_physics is None
    assert OnnxPolicy(legacy).metadata.training_randomization is None
    sim = resolve_sim_config(legacy, None, [])
    assert sim.physics == PhysicsConfig() and sim.randomization == RandomizationConfig()
    assert "legacy.onnx stores no training randomisation" in capsys.readouterr().out
