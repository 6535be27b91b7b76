"""Configuration errors name the key at fault; overrides and nesting work."""

from dataclasses import dataclass, field

import pytest

from anymal_ros.config import ConfigError, apply_overrides, from_dict, load_config, to_dict
from anymal_ros.config.models import StudentConfig, TeacherConfig


def test_defaults_are_the_papers_sizes():
    t = TeacherConfig()
    assert (t.proprio_dim, t.privileged_dim, t.policy_mlp) == (133, 50, (256, 160, 128))
    s = StudentConfig()
    assert (s.gru_layers, s.gru_hidden, s.belief_dim, s.extero_latent_dim) == (2, 50, 120, 96)


def test_unknown_key_is_named_with_suggestion():
    with pytest.raises(ConfigError, match=r"action\.num_actons: unknown key.*num_actions"):
        from_dict(TeacherConfig, {"action": {"num_actons": 3}})


def test_wrong_type_is_named():
    with pytest.raises(ConfigError, match=r"policy_mlp\[1\]: expected an integer"):
        from_dict(TeacherConfig, {"policy_mlp": [256, "wide"]})
    with pytest.raises(ConfigError, match=r"action\.type: 'beta' is not one of"):
        from_dict(TeacherConfig, {"action": {"type": "beta"}})
    with pytest.raises(ConfigError, match="expected true/false"):

        @dataclass(frozen=True)
        class Flag:
            on: bool = False

        from_dict(Flag, {"on": "yes"})


def test_post_init_validation_is_a_config_error():
    with pytest.raises(ConfigError, match="log_std_range"):
        from_dict(TeacherConfig, {"action": {"log_std_range": [1.0, -1.0]}})


def test_overrides_and_round_trip(tmp_path):
    path = tmp_path / "t.yaml"
    path.write_text("action:\n  type: categorical\n  num_actions: 4\n")
    cfg = load_config(TeacherConfig, path, ["policy_mlp=[64, 64]", "action.init_std=0.5"])
    assert cfg.policy_mlp == (64, 64) and cfg.action.type == "categorical"
    assert cfg.action.init_std == 0.5
    assert from_dict(TeacherConfig, to_dict(cfg)) == cfg
    with pytest.raises(ConfigError, match="expected key.path=value"):
        apply_overrides({}, ["oops"])


def test_exponents_without_a_dot_are_numbers(tmp_path):
    """PyYAML alone reads ``1e-4`` as a string (YAML 1.1 wants ``1.0e-4``); in a file and
    on the command line it is the number a user means. A quoted one stays a string."""
    path = tmp_path / "t.yaml"
    path.write_text("action:\n  init_std: 5e-1\n")
    cfg = load_config(TeacherConfig, path, ["action.log_std_range=[-2E+0, 1e0]"])
    assert cfg.action.init_std == 0.5 and cfg.action.log_std_range == (-2.0, 1.0)
    assert apply_overrides({}, ["a=1e-4", "b=.5e2", "c='1e-4'", "d=1e4x"]) == {
        "a": 1e-4,
        "b": 50.0,
        "c": "1e-4",
        "d": "1e4x",
    }


def test_missing_file_and_bad_yaml(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(TeacherConfig, tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    with pytest.raises(ConfigError, match="top level must be a mapping"):
        load_config(TeacherConfig, bad)


def test_a_config_file_extends_another(tmp_path):
    """``extends`` loads the named file (relative to this one) and merges this one into it
    section by section; a chain works, a loop and a bad name are errors naming the file."""
    (tmp_path / "base.yaml").write_text(
        "policy_mlp: [64, 32]\naction: {num_actions: 4, init_std: 0.5}\n"
    )
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "variant.yaml").write_text(
        "extends: ../base.yaml\naction: {init_std: 0.2}\n"
    )
    (tmp_path / "leaf.yaml").write_text("extends: sub/variant.yaml\nactivation: tanh\n")
    cfg = load_config(TeacherConfig, tmp_path / "leaf.yaml", ["action.num_actions=6"])
    assert cfg.policy_mlp == (64, 32) and cfg.activation == "tanh"
    assert (cfg.action.num_actions, cfg.action.init_std) == (6, 0.2)
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match=r"extends loops: .*a\.yaml -> .*b\.yaml -> .*a\.yaml"):
        load_config(TeacherConfig, tmp_path / "a.yaml")
    (tmp_path / "bad.yaml").write_text("extends: [base.yaml]\n")
    with pytest.raises(ConfigError, match="bad.yaml: extends must name a YAML file"):
        load_config(TeacherConfig, tmp_path / "bad.yaml")
    (tmp_path / "gone.yaml").write_text("extends: missing.yaml\n")
    with pytest.raises(ConfigError, match="config file not found: .*missing.yaml"):
        load_config(TeacherConfig, tmp_path / "gone.yaml")


def test_required_fields_are_reported():
    @dataclass(frozen=True)
    class Needs:
        path: str
        extra: list[int] = field(default_factory=list)

    with pytest.raises(ConfigError, match=r"missing required keys \['path'\]"):
        from_dict(Needs, {})


def test_joint_mapping_is_by_name():
    import numpy as np

    from anymal_ros.contract import JOINT_NAMES, index_by_name

    shuffled = list(reversed(JOINT_NAMES)) + ["arm_joint"]
    values = np.array([JOINT_NAMES.index(n) if n in JOINT_NAMES else -1 for n in shuffled])
    np.testing.assert_array_equal(values[index_by_name(shuffled)], np.arange(12))
    with pytest.raises(KeyError, match="LF_KFE"):
        index_by_name([n for n in JOINT_NAMES if n != "LF_KFE"])
