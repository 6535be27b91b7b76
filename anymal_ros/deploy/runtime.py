"""Run an exported policy with onnxruntime: numpy and onnxruntime only (no torch, no onnx),
so an onboard computer needs nothing else.

``OnnxPolicy.step`` is the hot path of the control loop. It copies the observation into
pre-allocated input buffers that onnxruntime reads in place (IO binding), writes the action
and next hidden state into pre-allocated outputs, and carries the recurrent state by swapping
between two bindings (``hidden`` of one is ``hidden_out`` of the other) instead of copying it.

A student file may carry its belief decoder as a second graph (:mod:`anymal_ros.deploy.belief`):
:meth:`OnnxPolicy.belief` runs it on demand, outside ``step``, from the state the last step
left behind, so the control step costs the same with or without it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from anymal_ros.deploy.belief import Belief, load_belief
from anymal_ros.deploy.metadata import PolicyFileError, PolicyMetadata


class ObservationError(ValueError):
    """An observation given to :meth:`OnnxPolicy.step` has the wrong shape or is not finite."""


def _session_options(intra_op_threads: int) -> ort.SessionOptions:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    opts.log_severity_level = 3  # errors only: the control loop's log is not for ORT chatter
    return opts


class OnnxPolicy:
    """A student (recurrent) or teacher policy file, ready to step at the control rate.

    ``step(proprio, extero[, privileged])`` returns the action ``[A]`` float32 (a fresh
    array): the Gaussian mean, or for ``metadata.action_head == "categorical"`` the logits
    (take the argmax). A student carries its hidden state across calls; :meth:`reset` zeroes
    it at the start of an episode. A teacher needs ``privileged``; a student ignores it.
    """

    def __init__(self, path: str | Path, intra_op_threads: int = 1) -> None:
        self.path = Path(path)
        if not self.path.is_file():
            raise PolicyFileError(f"policy file not found: {self.path}")
        options = _session_options(intra_op_threads)
        try:
            self.session = ort.InferenceSession(
                str(self.path),
                options,
                providers=["CPUExecutionProvider"],
            )
        except Exception as err:  # ORT raises InvalidProtobuf, Fail, ... for corrupt files
            raise PolicyFileError(
                f"{self.path}: not a loadable ONNX model (corrupt or truncated?): {err}"
            ) from err
        props = self.session.get_modelmeta().custom_metadata_map
        try:
            self.metadata = PolicyMetadata.from_props(props)
        except PolicyFileError as err:
            raise PolicyFileError(f"{self.path}: {err}") from err
        m = self.metadata
        self._shapes: dict[str, tuple[int, ...]] = {
            "proprio": (1, m.proprio_dim),
            "extero": (1, *m.extero_shape),
        }
        if m.kind == "teacher":
            self._shapes["privileged"] = (1, m.privileged_dim)
        else:
            self._shapes["hidden"] = tuple(m.hidden_shape)
        out_shapes = {"action": (1, m.action_dim)}
        if m.recurrent:
            out_shapes["hidden_out"] = tuple(m.hidden_shape)
        self._check_graph(self._shapes, out_shapes)

        # Pre-allocated buffers that onnxruntime reads/writes in place.
        self._buf = {k: np.zeros(s, dtype=np.float32) for k, s in self._shapes.items()}
        self._action = np.zeros((1, m.action_dim), dtype=np.float32)
        self._flat_proprio = self._buf["proprio"].reshape(-1)
        self._flat_extero = self._buf["extero"].reshape(-1)
        self._flat_privileged = (
            self._buf["privileged"].reshape(-1) if "privileged" in self._buf else None
        )
        self._bindings = self._make_bindings()
        self._which = 0
        #: Control steps run so far (never reset): tells a caller whether a step happened.
        self.steps = 0
        #: The belief graph (None: unavailable, ``belief_unavailable`` says why) and its
        #: description (names, shapes, units) from the metadata.
        self.belief_decoder, self.belief_spec, self.belief_unavailable = None, None, ""
        if m.recurrent:
            self.belief_decoder, self.belief_spec, self.belief_unavailable = load_belief(
                props, options, str(self.path)
            )
        else:
            self.belief_unavailable = f"{self.path} is a teacher: it has no belief"

    # --- set-up --------------------------------------------------------------------------
    def _check_graph(
        self, inputs: dict[str, tuple[int, ...]], outputs: dict[str, tuple[int, ...]]
    ) -> None:
        def describe(args) -> dict[str, tuple]:
            return {a.name: (tuple(a.shape), a.type) for a in args}

        for what, want, have in (
            ("inputs", inputs, describe(self.session.get_inputs())),
            ("outputs", outputs, describe(self.session.get_outputs())),
        ):
            if set(want) != set(have):
                raise PolicyFileError(
                    f"{self.path}: graph {what} {sorted(have)} disagree with its metadata "
                    f"(kind {self.metadata.kind!r} needs {sorted(want)})"
                )
            for name, shape in want.items():
                got_shape, got_type = have[name]
                if got_shape != shape or got_type != "tensor(float)":
                    raise PolicyFileError(
                        f"{self.path}: graph {what[:-1]} {name!r} is {got_type} {list(got_shape)} "
                        f"but the metadata implies tensor(float) {list(shape)}"
                    )

    def _make_bindings(self) -> list[ort.IOBinding]:
        """One binding, or for a student two that swap hidden/hidden_out buffers."""
        values = {k: ort.OrtValue.ortvalue_from_numpy(v) for k, v in self._buf.items()}
        action = ort.OrtValue.ortvalue_from_numpy(self._action)
        hidden_pair = []
        if self.metadata.recurrent:
            self._hidden_other = np.zeros_like(self._buf["hidden"])
            hidden_pair = [values["hidden"], ort.OrtValue.ortvalue_from_numpy(self._hidden_other)]
            self._hidden_arrays = [self._buf["hidden"], self._hidden_other]
        bindings = []
        for i in range(2 if hidden_pair else 1):
            b = self.session.io_binding()
            for name, value in values.items():
                if name != "hidden":
                    b.bind_ortvalue_input(name, value)
            b.bind_ortvalue_output("action", action)
            if hidden_pair:
                b.bind_ortvalue_input("hidden", hidden_pair[i])
                b.bind_ortvalue_output("hidden_out", hidden_pair[1 - i])
            bindings.append(b)
        return bindings

    # --- running -------------------------------------------------------------------------
    def reset(self) -> None:
        """Zero the recurrent state (start of an episode)."""
        if self.metadata.recurrent:
            for h in self._hidden_arrays:
                h.fill(0.0)
            self._which = 0

    @property
    def hidden(self) -> np.ndarray | None:
        """Current recurrent state ``[L, 1, H]`` (a copy), or ``None`` for a teacher."""
        return self._hidden_arrays[self._which].copy() if self.metadata.recurrent else None

    def step(
        self, proprio: np.ndarray, extero: np.ndarray, privileged: np.ndarray | None = None
    ) -> np.ndarray:
        """One control step. ``proprio [P]`` or ``[1, P]``, ``extero [F, N]`` or
        ``[1, F, N]`` (``privileged [D]`` or ``[1, D]`` for a teacher) -> action ``[A]``."""
        self._load("proprio", proprio, self._flat_proprio)
        self._load("extero", extero, self._flat_extero)
        if self._flat_privileged is not None:
            if privileged is None:
                raise ObservationError("privileged: a teacher policy needs the privileged state")
            self._load("privileged", privileged, self._flat_privileged)
        self.session.run_with_iobinding(self._bindings[self._which])
        if len(self._bindings) == 2:
            self._which ^= 1  # the output hidden buffer is the next step's input
        self.steps += 1
        return self._action[0].copy()

    def belief(self) -> Belief | None:
        """What the student believes after its last :meth:`step` (decoded from the hidden
        state that step produced and the heights it was fed), or None when the file has no
        belief decoder. Costs one run of the small belief graph; never called by ``step``."""
        if self.belief_decoder is None:
            return None
        measured = self._buf["extero"]
        heights, privileged = self.belief_decoder(self._hidden_arrays[self._which], measured)
        return Belief(heights=heights[0], measured=measured[0].copy(), privileged=privileged[0])

    def _load(self, name: str, value: np.ndarray, flat: np.ndarray) -> None:
        """Copy ``value`` into the input buffer, checking shape and finiteness."""
        shape = np.shape(value)
        full = self._shapes[name]
        if shape != full and shape != full[1:]:
            raise ObservationError(
                f"{name}: expected shape {list(full[1:])} or {list(full)}, got {list(shape)}"
            )
        try:
            np.copyto(flat, np.ravel(value), casting="same_kind")
        except TypeError as err:
            raise ObservationError(f"{name}: expected real numbers: {err}") from None
        # One reduction instead of isfinite().all(): NaN and inf both propagate into the sum.
        if not np.isfinite(flat.sum()):
            bad = np.flatnonzero(~np.isfinite(flat))
            if bad.size == 0:
                raise ObservationError(f"{name}: values too large (their sum overflows float32)")
            raise ObservationError(
                f"{name}: {bad.size} non-finite value(s) (NaN/inf), first at flat index "
                f"{int(bad[0])} = {flat[bad[0]]}"
            )
