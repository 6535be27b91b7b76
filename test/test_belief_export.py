"""The belief decoder in the policy file: parity with torch, names and units in the metadata,
and files without it (the bundled student) still load with the belief unavailable."""

from __future__ import annotations

import json

import numpy as np
import onnx
import pytest
import torch
from model_helpers import fit_normalizers

from anymal_ros.contract import PRIVILEGED_LAYOUT, PRIVILEGED_UNITS
from anymal_ros.deploy import belief as belief_graph
from anymal_ros.deploy.export import export_student
from anymal_ros.deploy.metadata import PolicyFileError
from anymal_ros.deploy.runtime import OnnxPolicy
from anymal_ros.models.student import Student
from anymal_ros.nodes.policy_node import bundled_policy_path


@pytest.fixture(scope="module")
def student_file(tmp_path_factory):
    """A student whose decoder outputs are far from zero (a fresh decoder's are ~0, which
    would make a 1e-5 check meaningless) and whose normalisers are non-trivial."""
    torch.manual_seed(0)
    student = Student()
    fit_normalizers(student)  # privileged values ~30: the un-normalisation is exercised
    with torch.no_grad():
        for head in (student.heights_decoder, student.privileged_decoder, student.decoder_gate):
            for p in head.parameters():
                p.add_(torch.randn_like(p) * 0.3)
    student.eval()
    path = tmp_path_factory.mktemp("belief") / "student.onnx"
    export_student(student, path)
    return student, path


def test_exported_decoder_equals_torch_over_500_steps_with_resets(student_file):
    student, path = student_file
    policy = OnnxPolicy(path)
    assert policy.belief_decoder is not None, policy.belief_unavailable
    rng = np.random.default_rng(1)
    hidden = student.initial_hidden(1)
    privileged_std = (student.privileged_norm.var + student.privileged_norm.eps).sqrt().numpy()
    worst = {"action": 0.0, "heights": 0.0, "privileged": 0.0}
    for t in range(500):
        if t in (100, 101, 333):  # resets mid-sequence, two in a row
            policy.reset()
            hidden = student.initial_hidden(1)
        proprio = (rng.normal(size=133) * 2.0).astype(np.float32)
        extero = (rng.normal(size=(4, 52)) * 0.2 - 0.3).astype(np.float32)
        action = policy.step(proprio, extero)
        belief = policy.belief()
        with torch.no_grad():
            out, hidden = student.step(
                torch.from_numpy(proprio)[None], torch.from_numpy(extero)[None], hidden
            )
            # Reference straight from the training-time outputs (normalised units).
            heights = student.extero_norm.denormalize(out.recon_heights)[0].numpy()
            privileged = student.privileged_norm.denormalize(out.recon_privileged)[0].numpy()
        np.testing.assert_array_equal(belief.measured, extero)
        worst["action"] = max(worst["action"], np.abs(action - out.deterministic[0].numpy()).max())
        worst["heights"] = max(worst["heights"], np.abs(belief.heights - heights).max())
        # Privileged values spread ~30 (N): float32 rounding of the un-normalisation alone is
        # ~1e-5 there, so compare in the decoder's own units (divided by the spread).
        worst["privileged"] = max(
            worst["privileged"], (np.abs(belief.privileged - privileged) / privileged_std).max()
        )
    assert max(worst.values()) <= 1e-5, worst
    # The comparison is not between near-zeros, and the belief is not the input echoed back.
    assert np.abs(heights).max() > 0.1 and np.abs(privileged).max() > 1.0
    assert np.abs(belief.heights - belief.measured).max() > 0.01


def test_the_file_names_the_outputs_and_their_units(student_file):
    _, path = student_file
    props = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    spec = json.loads(props[belief_graph.SPEC_KEY])
    heights = spec["outputs"][belief_graph.HEIGHTS_OUTPUT]
    privileged = spec["outputs"][belief_graph.PRIVILEGED_OUTPUT]
    assert heights["shape"] == [1, 4, 52] and heights["unit"] == "m"
    assert privileged["shape"] == [1, 50]
    assert privileged["layout"] == [[t.name, t.size] for t in PRIVILEGED_LAYOUT.terms]
    assert privileged["units"] == PRIVILEGED_UNITS
    assert OnnxPolicy(path).belief_spec == spec


def test_the_control_graph_is_the_same_with_and_without_the_decoder(student_file, tmp_path):
    """The decoder is a separate graph: the control step runs exactly the same nodes."""
    student, path = student_file
    plain = export_student(student, tmp_path / "plain.onnx", belief=False)
    with_decoder, without = onnx.load(str(path)).graph, onnx.load(str(plain)).graph
    assert [o.name for o in with_decoder.output] == ["action", "hidden_out"]
    assert len(with_decoder.node) == len(without.node)
    assert [n.op_type for n in with_decoder.node] == [n.op_type for n in without.node]


def test_a_file_without_the_decoder_loads_and_says_the_belief_is_unavailable(
    student_file, tmp_path
):
    student, _ = student_file
    for path in (export_student(student, tmp_path / "plain.onnx", belief=False),
                 bundled_policy_path()):  # fmt: skip
        policy = OnnxPolicy(path)
        policy.step(np.zeros(policy.metadata.proprio_dim, np.float32), np.zeros((4, 52)))
        assert policy.belief() is None
        assert "no belief decoder" in policy.belief_unavailable


def test_a_broken_belief_graph_is_refused_with_the_reason(student_file, tmp_path):
    """A decoder that is there but unreadable is an error, not a silently missing belief."""
    _, path = student_file
    model = onnx.load(str(path))
    for prop in model.metadata_props:
        if prop.key == belief_graph.GRAPH_KEY:
            prop.value = belief_graph.encode_graph(b"not an onnx graph")
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(model.SerializeToString())
    with pytest.raises(PolicyFileError, match="belief graph is not loadable"):
        OnnxPolicy(broken)
