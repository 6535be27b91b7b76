"""Student: step loop == sequence path, episode resets, hidden device/dtype, shapes, and the
alignment of the belief with the teacher layers it is initialised from."""

import pytest
import torch
from model_helpers import fit_normalizers, random_obs

from anymal_ros.config.models import ActionHeadConfig, StudentConfig
from anymal_ros.models.student import Student, init_student_from_teacher
from anymal_ros.models.teacher import Teacher


def _sequence(B: int, T: int, P: int = 133, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    proprio = torch.randn(B, T, P, generator=g)
    extero = torch.randn(B, T, 4, 52, generator=g) * 0.2
    return proprio, extero


def _step_loop(student, proprio, extero, hidden, starts):
    outs = []
    for t in range(proprio.shape[1]):
        hidden = hidden * (~starts[:, t]).to(hidden.dtype)[None, :, None]
        out, hidden = student.step(proprio[:, t], extero[:, t], hidden)
        outs.append(out)
    return outs, hidden


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_sequence_equals_step_loop_with_resets(dtype):
    torch.manual_seed(0)
    student = Student().to(dtype)
    fit_normalizers(student)
    B, T = 5, 23
    proprio, extero = _sequence(B, T)
    proprio, extero = proprio.to(dtype), extero.to(dtype)
    starts = torch.zeros(B, T, dtype=torch.bool)
    starts[0, 0] = True
    starts[1, 7] = True
    starts[3, 7] = True
    starts[2, 15] = True
    starts[4, 22] = True
    hidden0 = torch.randn(2, B, 50, dtype=dtype)
    with torch.no_grad():
        seq, h_seq = student.forward_sequence(proprio, extero, hidden0, starts)
        loop, h_loop = _step_loop(student, proprio, extero, hidden0, starts)
    tol = {"atol": 1e-12, "rtol": 0} if dtype == torch.float64 else {"atol": 2e-6, "rtol": 0}
    for name in ("deterministic", "belief", "gate", "recon_heights", "recon_privileged"):
        stacked = torch.stack([getattr(o, name) for o in loop], dim=1)
        assert getattr(seq, name).shape == stacked.shape, name
        torch.testing.assert_close(getattr(seq, name), stacked, **tol)
    torch.testing.assert_close(h_seq, h_loop, **tol)


def test_episode_start_resets_hidden():
    torch.manual_seed(1)
    student = Student()
    proprio, extero = _sequence(2, 6)
    starts = torch.zeros(2, 6, dtype=torch.bool)
    starts[0, 3] = True
    hidden0 = torch.randn(2, 2, 50)
    with torch.no_grad():
        seq, _ = student.forward_sequence(proprio, extero, hidden0, starts)
        fresh, _ = student.forward_sequence(
            proprio[:, 3:],
            extero[:, 3:],
            student.initial_hidden(2),
            torch.zeros(2, 3, dtype=torch.bool),
        )
    # row 0 after its reset == a fresh run from zeros; row 1 (no reset) differs
    # (the belief, not the action: a fresh action head is scaled to ~1e-3)
    torch.testing.assert_close(seq.belief[0, 3:], fresh.belief[0], atol=1e-6, rtol=0)
    assert (seq.belief[1, 3:] - fresh.belief[1]).abs().max() > 1e-3
    # before the reset the carried hidden state matters
    assert (seq.belief[0, :3] - fresh.belief[0]).abs().max() > 1e-3


def test_initial_hidden_follows_parameters_dtype_and_device():
    student = Student().double()
    h = student.initial_hidden(3)
    assert h.shape == (2, 3, 50) and h.dtype == torch.float64
    assert h.device == next(student.parameters()).device
    if torch.cuda.is_available():
        h = Student().cuda().initial_hidden(1)
        assert h.device.type == "cuda"


def test_output_shapes_step_and_sequence():
    student = Student()
    B, T = 4, 3
    proprio, extero = _sequence(B, T)
    with torch.no_grad():
        out, h = student.step(proprio[:, 0], extero[:, 0], student.initial_hidden(B))
        seq, h2 = student.forward_sequence(
            proprio, extero, student.initial_hidden(B), torch.zeros(B, T, dtype=torch.bool)
        )
    assert h.shape == h2.shape == (2, B, 50)
    assert out.deterministic.shape == (B, 16)  # default CPG actions: 4 + 12
    assert out.distribution.batch_shape == (B,)
    assert out.distribution.log_prob(out.deterministic).shape == (B,)
    assert out.belief.shape == (B, 120) and out.gate.shape == (B, 96)
    assert out.recon_heights.shape == (B, 4, 52) and out.recon_privileged.shape == (B, 50)
    assert seq.deterministic.shape == (B, T, 16)
    assert seq.distribution.batch_shape == (B, T)
    assert seq.distribution.log_prob(seq.deterministic).shape == (B, T)
    assert seq.recon_heights.shape == (B, T, 4, 52) and seq.recon_privileged.shape == (B, T, 50)
    with pytest.raises(ValueError, match="does not match"):
        seq.distribution.log_prob(seq.deterministic[:, :, None])  # (B,T,1,A) trap


def test_bad_shapes_are_named():
    student = Student()
    proprio, extero = _sequence(2, 3)
    h = student.initial_hidden(2)
    with pytest.raises(ValueError, match="proprio"):
        student.step(proprio[:, 0, :100], extero[:, 0], h)
    with pytest.raises(ValueError, match="extero"):
        student.step(proprio[:, 0], extero[:, 0, :, :50], h)
    with pytest.raises(ValueError, match="hidden"):
        student.step(proprio[:, 0], extero[:, 0], student.initial_hidden(3))
    with pytest.raises(ValueError, match="episode_start"):
        student.forward_sequence(proprio, extero, h, torch.zeros(3, 2, dtype=torch.bool))


def test_reconstruction_targets_use_normalised_units():
    student = Student()
    fit_normalizers(student)
    obs = random_obs(3)
    heights_t, priv_t = student.reconstruction_targets(obs["extero"], obs["privileged"])
    torch.testing.assert_close(heights_t, student.extero_norm(obs["extero"]))
    torch.testing.assert_close(priv_t, student.privileged_norm(obs["privileged"]))
    assert priv_t.abs().max() < 10.5  # raw values are ~30x larger


def _aligned_pair(action: ActionHeadConfig | None = None):
    torch.manual_seed(3)
    from anymal_ros.config.models import TeacherConfig

    action = action or ActionHeadConfig(init_std=0.3)
    teacher = Teacher(TeacherConfig(action=action))
    fit_normalizers(teacher)
    with torch.no_grad():  # a trained-looking head, not the near-zero initial one
        for p in teacher.action_head.parameters():
            p.add_(torch.randn_like(p) * 0.5)
    student = Student(StudentConfig(action=action))
    init_student_from_teacher(student, teacher)
    return teacher, student


def test_init_from_teacher_copies_and_aligns_belief():
    teacher, student = _aligned_pair()
    obs = random_obs(8, gen=torch.Generator().manual_seed(9))
    with torch.no_grad():
        latent = teacher.latent(obs)  # [extero_latent | priv_latent]
        proprio_n, extero_n = student.normalize_inputs(obs["proprio"], obs["extero"])
        torch.testing.assert_close(proprio_n, teacher.normalized(obs)[0])
        # copied height encoder: student's l_e == teacher's extero part of the latent
        torch.testing.assert_close(student.height_encoder(extero_n), latent[:, :96])
        aligned = student.action_head.deterministic(student.policy_features(proprio_n, latent))
        teacher_action = teacher.act_deterministic(obs)
        torch.testing.assert_close(aligned, teacher_action, atol=1e-6, rtol=0)
        misaligned_belief = torch.cat([latent[:, 96:], latent[:, :96]], dim=-1)  # [priv, extero]
        wrong = student.action_head.deterministic(
            student.policy_features(proprio_n, misaligned_belief)
        )
        padded = torch.cat([latent[:, :96], torch.zeros(8, 24)], dim=-1)  # reference's padding
        also_wrong = student.action_head.deterministic(student.policy_features(proprio_n, padded))
    assert (wrong - teacher_action).abs().max() > 1e-2
    assert (also_wrong - teacher_action).abs().max() > 1e-2
    torch.testing.assert_close(student.action_head.log_std, teacher.action_head.log_std)


def test_init_from_teacher_categorical_and_mismatch_errors():
    teacher, student = _aligned_pair(ActionHeadConfig(type="categorical", num_actions=7))
    obs = random_obs(4)
    with torch.no_grad():
        latent = teacher.latent(obs)
        p_n, _ = student.normalize_inputs(obs["proprio"], obs["extero"])
        logits = student.action_head.deterministic(student.policy_features(p_n, latent))
    torch.testing.assert_close(logits.argmax(-1), teacher.act_deterministic(obs))
    with pytest.raises(ValueError, match="policy_mlp"):
        init_student_from_teacher(Student(StudentConfig(policy_mlp=(64, 32))), Teacher())


def test_a_student_without_sizes_takes_every_size_it_shares_with_the_teacher():
    import dataclasses

    from anymal_ros.config.models import SharedNetConfig, TeacherConfig
    from anymal_ros.rl.distill_runner import student_config_for

    teacher_cfg = TeacherConfig(
        proprio_dim=120, num_feet=4, points_per_foot=52, privileged_dim=50,
        height_encoder=(16,), height_latent=4, privileged_latent=6, policy_mlp=(32,),
        activation="elu", action=ActionHeadConfig(num_actions=12, init_std=0.3),
    )  # fmt: skip
    student_cfg = student_config_for(teacher_cfg, None)
    for f in dataclasses.fields(SharedNetConfig):
        assert getattr(student_cfg, f.name) == getattr(teacher_cfg, f.name), f.name
    assert student_cfg.gru_hidden == StudentConfig().gru_hidden  # the recurrent parts: defaults
    init_student_from_teacher(Student(student_cfg), Teacher(teacher_cfg))  # the sizes fit


def test_a_student_section_names_only_what_it_changes_and_a_clash_is_named():
    from anymal_ros.config.models import TeacherConfig
    from anymal_ros.rl.distill_runner import student_config_for

    teacher_cfg = TeacherConfig(
        height_encoder=(16,), policy_mlp=(32,), action=ActionHeadConfig(init_std=0.3)
    )
    # As `--set student.gru_hidden=16` builds it: every other field at its default.
    student_cfg = student_config_for(teacher_cfg, StudentConfig(gru_hidden=16))
    assert student_cfg.gru_hidden == 16
    assert student_cfg.policy_mlp == (32,) and student_cfg.action.init_std == 0.3
    init_student_from_teacher(Student(student_cfg), Teacher(teacher_cfg))
    # A shared size set to neither the default nor the teacher's is an error naming it.
    clash = StudentConfig(policy_mlp=(64,), action=ActionHeadConfig(init_std=0.7))
    with pytest.raises(ValueError, match=r"policy_mlp: .*; action.init_std: student 0.7"):
        student_config_for(teacher_cfg, clash)
