"""The student's belief decoder in a policy file: what the robot thinks the ground and its
hidden state are (numpy and onnxruntime only, like the runtime).

The decoder is a **second ONNX graph** stored in the file's metadata (key
``anymal_ros.belief_graph``, the serialized graph in base64) next to a description of it
(``anymal_ros.belief``, JSON: output names, shapes, units, the privileged terms). The control
graph is unchanged, so a control tick never pays for the decoder: onnxruntime runs every node
of a graph whatever outputs a run asks for (``benchmarks/belief_tick.py`` measures it), which
rules out extra outputs on the control graph. The belief graph is run on its own, when a
belief is wanted, from the state the last control step left behind::

    inputs   hidden  [L, 1, H]   the recurrent state after the step (the control graph's
                                 hidden_out; its top layer is the GRU output h_t)
             extero  [1, 4, 52]  the heights fed to that step (m, relative to each sole)
    outputs  belief_heights     [1, 4, 52]  noise-free heights the student believes (m)
             belief_privileged  [1, 50]     privileged state (units per term: PRIVILEGED_UNITS)

A file without these keys (e.g. exported before they existed) is still a valid policy; its
belief is simply unavailable (:attr:`~anymal_ros.deploy.runtime.OnnxPolicy.belief_unavailable`
says why).
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import onnxruntime as ort

from anymal_ros.contract import PRIVILEGED_LAYOUT, PRIVILEGED_UNITS
from anymal_ros.deploy.metadata import PREFIX, PolicyFileError

SPEC_KEY = PREFIX + "belief"
GRAPH_KEY = PREFIX + "belief_graph"
INPUTS = ("hidden", "extero")
HEIGHTS_OUTPUT = "belief_heights"
PRIVILEGED_OUTPUT = "belief_privileged"


def belief_spec(extero_shape: tuple[int, int], hidden_shape: tuple[int, ...]) -> dict[str, Any]:
    """The JSON description written under :data:`SPEC_KEY` (names, shapes, units)."""
    return {
        "inputs": {
            "hidden": {"shape": list(hidden_shape), "meaning": "hidden_out of the control step"},
            "extero": {"shape": [1, *extero_shape], "unit": "m", "meaning": "heights fed to it"},
        },
        "outputs": {
            HEIGHTS_OUTPUT: {
                "shape": [1, *extero_shape],
                "unit": "m",
                "meaning": "believed noise-free terrain height at each sample point, relative "
                "to its foot's sole (the height_rings around each foot)",
            },
            PRIVILEGED_OUTPUT: {
                "shape": [1, PRIVILEGED_LAYOUT.dim],
                "layout": [[t.name, t.size] for t in PRIVILEGED_LAYOUT.terms],
                "units": dict(PRIVILEGED_UNITS),
                "meaning": "believed privileged state (the teacher's inputs)",
            },
        },
    }


@dataclass(frozen=True)
class Belief:
    """One decoded belief, batch dimension dropped."""

    heights: np.ndarray  # [4, 52] float32, m relative to each sole: what the student believes
    measured: np.ndarray  # [4, 52] float32, m: the heights fed to the policy at that step
    privileged: np.ndarray  # [50] float32, PRIVILEGED_LAYOUT order

    def disagreement(self) -> np.ndarray:
        """``[4]`` root-mean-square of belief minus measurement over each foot's samples (m)."""
        return np.sqrt(np.mean((self.heights - self.measured) ** 2, axis=-1))


class BeliefDecoder:
    """The belief graph of a policy file in its own onnxruntime session."""

    def __init__(self, graph: bytes, options: ort.SessionOptions, label: str) -> None:
        try:
            self.session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
        except Exception as err:  # ORT raises InvalidProtobuf, Fail, ... for corrupt graphs
            raise PolicyFileError(f"{label}: belief graph is not loadable: {err}") from err
        outputs = {o.name: tuple(o.shape) for o in self.session.get_outputs()}
        inputs = {i.name for i in self.session.get_inputs()}
        want = {HEIGHTS_OUTPUT, PRIVILEGED_OUTPUT}
        if set(INPUTS) != inputs or not want <= set(outputs):
            raise PolicyFileError(
                f"{label}: belief graph has inputs {sorted(inputs)} and outputs "
                f"{sorted(outputs)}; expected inputs {list(INPUTS)}, outputs {sorted(want)}"
            )
        self._names = [HEIGHTS_OUTPUT, PRIVILEGED_OUTPUT]

    def __call__(self, hidden: np.ndarray, extero: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``hidden [L, 1, H]``, ``extero [1, 4, 52]`` -> ``([1, 4, 52], [1, 50])``."""
        heights, privileged = self.session.run(self._names, {"hidden": hidden, "extero": extero})
        return heights, privileged


def load_belief(
    props: Mapping[str, str], options: ort.SessionOptions, label: str
) -> tuple[BeliefDecoder | None, dict[str, Any] | None, str]:
    """``(decoder, spec, "")`` from a file's metadata, or ``(None, None, why)`` when the file
    carries no belief decoder. A decoder that is present but broken raises PolicyFileError."""
    if GRAPH_KEY not in props:
        return None, None, f"{label} carries no belief decoder (exported without one)"
    try:
        spec = json.loads(props.get(SPEC_KEY, ""))
        graph = base64.b64decode(props[GRAPH_KEY], validate=True)
    except (ValueError, binascii.Error) as err:
        raise PolicyFileError(f"{label}: metadata key {GRAPH_KEY}/{SPEC_KEY}: {err}") from None
    if not isinstance(spec, dict) or "outputs" not in spec:
        raise PolicyFileError(f"{label}: metadata key {SPEC_KEY}: expected a JSON object")
    return BeliefDecoder(graph, options, label), spec, ""


def encode_graph(graph: bytes) -> str:
    """Serialized belief graph -> the metadata value of :data:`GRAPH_KEY`."""
    return base64.b64encode(graph).decode("ascii")
