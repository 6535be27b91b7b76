"""Recurrent belief-state student (Miki et al. 2022): proprioception + noisy height samples.

Per step::

    p_n = norm(proprio) [B, P]         e_n = norm(extero) [B, 4, 52]
    l_e = height_encoder(e_n) [B, 96]                     (same architecture as the teacher's)
    h_t = GRU([p_n, l_e]) [B, 50]                         (2 layers x 50, top layer's output)
    alpha = sigmoid(g_a(h_t)) [B, 96]                     (attention gate over exteroception)
    b = g_b(h_t) [B, 120]
    belief = [b[:96] + alpha * l_e, b[96:]] [B, 120]      (laid out as the teacher's latent
                                                           [extero_latent | priv_latent])
    action <- action_head(policy_mlp([p_n, belief]))      (copied from the teacher)

Belief decoder (reconstruction loss during distillation), also from ``h_t``::

    beta = sigmoid(d_gate(h_t)) [B, 4, 52]
    recon_heights = d_heights(h_t) + beta * e_n           (noise-free heights)
    recon_privileged = d_privileged(h_t)                  (privileged state)

Reconstructions are in **normalised units**: heights in the units of ``extero_norm`` and
privileged state in the units of ``privileged_norm`` (both copied from the teacher). Use
:meth:`Student.reconstruction_targets` to turn raw clean heights / privileged state into the
matching targets; raw units would let contact forces (hundreds of newtons) swamp the loss.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from anymal_ros.config.models import StudentConfig
from anymal_ros.models.encoders import HeightEncoder
from anymal_ros.models.heads import ActionDistribution, make_action_head
from anymal_ros.models.mlp import make_mlp
from anymal_ros.models.normalizer import RunningNormalizer
from anymal_ros.models.teacher import Teacher, require_obs


@dataclass
class StudentOutput:
    """Per-step outputs; ``...`` is ``[B]`` for :meth:`Student.step` and ``[B, T]`` for
    :meth:`Student.forward_sequence`.

    ``deterministic`` is the deployment action: the Gaussian mean ``[..., A]``, or the
    logits ``[..., K]`` of a categorical head (the action is their argmax).
    """

    distribution: ActionDistribution  # batch shape ...
    deterministic: Tensor  # [..., A] mean or [..., K] logits
    belief: Tensor  # [..., 120] = [extero part 96 | privileged part 24]
    extero_latent: Tensor  # [..., 96] l_e
    gate: Tensor  # [..., 96] alpha
    recon_heights: Tensor  # [..., 4, 52] normalised units
    recon_privileged: Tensor  # [..., 50] normalised units


class Student(nn.Module):
    """Recurrent student. Hidden state is ``[layers, B, H]`` (``nn.GRU`` layout)."""

    def __init__(self, cfg: StudentConfig | None = None) -> None:
        super().__init__()
        cfg = cfg or StudentConfig()
        self.cfg = cfg
        self.extero_shape = (cfg.num_feet, cfg.points_per_foot)
        act = cfg.activation
        self.proprio_norm = RunningNormalizer(cfg.proprio_dim)
        self.extero_norm = RunningNormalizer(self.extero_shape)
        self.privileged_norm = RunningNormalizer(cfg.privileged_dim)  # reconstruction targets

        self.height_encoder = HeightEncoder(
            cfg.num_feet, cfg.points_per_foot, cfg.height_encoder, cfg.height_latent, act
        )
        latent = cfg.extero_latent_dim
        self.gru = nn.GRU(
            cfg.proprio_dim + latent, cfg.gru_hidden, num_layers=cfg.gru_layers, batch_first=True
        )
        self.gate_encoder = make_mlp(cfg.gru_hidden, cfg.gate_encoder, latent, act)
        self.belief_encoder = make_mlp(cfg.gru_hidden, cfg.belief_encoder, cfg.belief_dim, act)

        n_heights = cfg.num_feet * cfg.points_per_foot
        self.decoder_gate = make_mlp(cfg.gru_hidden, cfg.belief_decoder, n_heights, act)
        self.heights_decoder = make_mlp(cfg.gru_hidden, cfg.belief_decoder, n_heights, act)
        self.privileged_decoder = make_mlp(
            cfg.gru_hidden, cfg.belief_decoder, cfg.privileged_dim, act
        )

        policy_in = cfg.proprio_dim + cfg.belief_dim
        self.policy_mlp = make_mlp(policy_in, cfg.policy_mlp, activation=act)
        features = cfg.policy_mlp[-1] if cfg.policy_mlp else policy_in
        self.action_head = make_action_head(features, cfg.action)

    # --- hidden state --------------------------------------------------------------------
    @property
    def hidden_shape(self) -> tuple[int, int]:
        """``(layers, H)``; the full state is ``[layers, B, H]``."""
        return (self.cfg.gru_layers, self.cfg.gru_hidden)

    def initial_hidden(self, batch_size: int) -> Tensor:
        """Zeros ``[layers, B, H]`` on the parameters' device and dtype."""
        p = next(self.parameters())
        return torch.zeros(
            self.cfg.gru_layers, batch_size, self.cfg.gru_hidden, device=p.device, dtype=p.dtype
        )

    # --- pieces --------------------------------------------------------------------------
    def normalize_inputs(self, proprio: Tensor, extero: Tensor) -> tuple[Tensor, Tensor]:
        """``proprio [..., P], extero [..., 4, 52]`` -> normalised, same shapes."""
        return self.proprio_norm(proprio), self.extero_norm(extero)

    def belief_from_hidden(self, h: Tensor, extero_latent: Tensor) -> tuple[Tensor, Tensor]:
        """``h [..., H]``, ``l_e [..., 96]`` -> ``(belief [..., 120], gate [..., 96])``."""
        n = self.cfg.extero_latent_dim
        gate = torch.sigmoid(self.gate_encoder(h))
        b = self.belief_encoder(h)
        belief = torch.cat([b[..., :n] + gate * extero_latent, b[..., n:]], dim=-1)
        return belief, gate

    def policy_features(self, proprio_n: Tensor, belief: Tensor) -> Tensor:
        """``[..., P] + [..., 120] -> [..., 128]`` (the teacher's policy MLP, same columns)."""
        return self.policy_mlp(torch.cat([proprio_n, belief], dim=-1))

    def decode(self, h: Tensor, extero_n: Tensor) -> tuple[Tensor, Tensor]:
        """Belief decoder: ``h [..., H]``, noisy ``e_n [..., 4, 52]`` ->
        ``(heights [..., 4, 52], privileged [..., 50])`` in normalised units."""
        beta = torch.sigmoid(self.decoder_gate(h)).unflatten(-1, self.extero_shape)
        heights = self.heights_decoder(h).unflatten(-1, self.extero_shape) + beta * extero_n
        return heights, self.privileged_decoder(h)

    def decode_in_units(self, h: Tensor, extero: Tensor) -> tuple[Tensor, Tensor]:
        """Belief decoder in raw units: ``h [..., H]``, raw noisy ``extero [..., 4, 52]`` ->
        ``(heights [..., 4, 52] m relative to each foot's sole, privileged [..., 50])`` in the
        units of :data:`~anymal_ros.contract.PRIVILEGED_UNITS` (what the ONNX belief graph
        computes)."""
        heights, privileged = self.decode(h, self.extero_norm(extero))
        return self.extero_norm.denormalize(heights), self.privileged_norm.denormalize(privileged)

    def reconstruction_targets(
        self, clean_extero: Tensor, privileged: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Raw noise-free heights ``[..., 4, 52]`` and privileged state ``[..., 50]`` in the
        normalised units the decoder predicts."""
        return self.extero_norm(clean_extero), self.privileged_norm(privileged)

    def update_normalizers(self, obs: Mapping[str, Tensor]) -> None:
        """Fold raw ``proprio``/``extero`` (and ``privileged`` if present) into the stats."""
        self.proprio_norm.update(require_obs(obs, "proprio", (self.cfg.proprio_dim,)))
        self.extero_norm.update(require_obs(obs, "extero", self.extero_shape))
        if "privileged" in obs:
            self.privileged_norm.update(require_obs(obs, "privileged", (self.cfg.privileged_dim,)))

    # --- running -------------------------------------------------------------------------
    def _check_inputs(self, proprio: Tensor, extero: Tensor, lead: int) -> None:
        P = self.cfg.proprio_dim
        F, N = self.extero_shape
        if proprio.dim() != lead + 1 or proprio.shape[-1] != P:
            raise ValueError(f"proprio must be [{'B, T' if lead == 2 else 'B'}, {P}], "
                             f"got {tuple(proprio.shape)}")  # fmt: skip
        if extero.dim() != lead + 2 or tuple(extero.shape[-2:]) != (F, N):
            raise ValueError(f"extero must be [{'B, T' if lead == 2 else 'B'}, {F}, {N}], "
                             f"got {tuple(extero.shape)}")  # fmt: skip
        if proprio.shape[:lead] != extero.shape[:lead]:
            raise ValueError(
                f"proprio {tuple(proprio.shape)} and extero {tuple(extero.shape)} disagree on "
                "the leading dims"
            )

    def _check_hidden(self, hidden: Tensor, batch: int) -> None:
        want = (self.cfg.gru_layers, batch, self.cfg.gru_hidden)
        if tuple(hidden.shape) != want:
            raise ValueError(
                f"hidden must be [layers, B, H] = {list(want)}, got {tuple(hidden.shape)}"
            )

    def _heads(self, h: Tensor, proprio_n: Tensor, extero_n: Tensor, l_e: Tensor) -> StudentOutput:
        belief, gate = self.belief_from_hidden(h, l_e)
        features = self.policy_features(proprio_n, belief)
        heights, privileged = self.decode(h, extero_n)
        return StudentOutput(
            distribution=self.action_head(features),
            deterministic=self.action_head.deterministic(features),
            belief=belief,
            extero_latent=l_e,
            gate=gate,
            recon_heights=heights,
            recon_privileged=privileged,
        )

    def step(self, proprio: Tensor, extero: Tensor, hidden: Tensor) -> tuple[StudentOutput, Tensor]:
        """One control step: ``proprio [B, P]``, ``extero [B, 4, 52]``, ``hidden [L, B, H]``
        -> (outputs with leading ``[B]``, next hidden ``[L, B, H]``)."""
        self._check_inputs(proprio, extero, lead=1)
        self._check_hidden(hidden, proprio.shape[0])
        proprio_n, extero_n = self.normalize_inputs(proprio, extero)
        l_e = self.height_encoder(extero_n)
        out, next_hidden = self.gru(torch.cat([proprio_n, l_e], dim=-1).unsqueeze(1), hidden)
        return self._heads(out[:, 0], proprio_n, extero_n, l_e), next_hidden

    def step_deterministic(
        self, proprio: Tensor, extero: Tensor, hidden: Tensor
    ) -> tuple[Tensor, Tensor]:
        """Deployment path (exported to ONNX): ``(mean [B, A] or logits [B, K], hidden)``.
        Skips the decoder and the distribution objects."""
        proprio_n, extero_n = self.normalize_inputs(proprio, extero)
        l_e = self.height_encoder(extero_n)
        out, next_hidden = self.gru(torch.cat([proprio_n, l_e], dim=-1).unsqueeze(1), hidden)
        belief, _ = self.belief_from_hidden(out[:, 0], l_e)
        return self.action_head.deterministic(self.policy_features(proprio_n, belief)), next_hidden

    def forward_sequence(
        self, proprio: Tensor, extero: Tensor, hidden0: Tensor, episode_start: Tensor
    ) -> tuple[StudentOutput, Tensor]:
        """Run ``T`` steps: ``proprio [B, T, P]``, ``extero [B, T, 4, 52]``,
        ``hidden0 [L, B, H]``, ``episode_start [B, T]`` bool.

        The hidden state of row ``b`` is zeroed before step ``t`` wherever
        ``episode_start[b, t]``. Returns outputs with leading ``[B, T]`` and the hidden state
        after the last step ``[L, B, H]``; identical to calling :meth:`step` in a loop.
        """
        self._check_inputs(proprio, extero, lead=2)
        B, T = proprio.shape[:2]
        self._check_hidden(hidden0, B)
        if tuple(episode_start.shape) != (B, T):
            raise ValueError(
                f"episode_start must be [B, T] = {[B, T]}, got {tuple(episode_start.shape)}"
            )
        proprio_n, extero_n = self.normalize_inputs(proprio, extero)
        l_e = self.height_encoder(extero_n)  # [B, T, 96]
        out, hidden = self._gru_with_resets(
            torch.cat([proprio_n, l_e], dim=-1), hidden0, episode_start.bool()
        )
        return self._heads(out, proprio_n, extero_n, l_e), hidden

    def _gru_with_resets(self, x: Tensor, hidden: Tensor, starts: Tensor) -> tuple[Tensor, Tensor]:
        """GRU over ``x [B, T, I]`` in segments between the time steps where any row resets:
        one cuDNN/oneDNN call per segment instead of one per step."""
        T = x.shape[1]
        cut = set(torch.nonzero(starts.any(0)).flatten().tolist())  # columns with a reset
        bounds = sorted({0, T} | cut)
        outs = []
        for a, b in zip(bounds[:-1], bounds[1:], strict=True):
            if a in cut:
                keep = (~starts[:, a]).to(hidden.dtype)  # [B]
                hidden = hidden * keep[None, :, None]
            out, hidden = self.gru(x[:, a:b], hidden)
            outs.append(out)
        return torch.cat(outs, dim=1), hidden


def init_student_from_teacher(student: Student, teacher: Teacher) -> None:
    """Copy normalisers, height encoder, policy MLP and action head (incl. log-std).

    The student's belief has the teacher latent's layout ``[extero_latent | priv_latent]``,
    so the copied first policy layer sees every column in the position it was trained on.
    Raises ``ValueError`` listing every architecture mismatch.
    """
    s, t = student.cfg, teacher.cfg
    pairs = {
        "proprio_dim": (s.proprio_dim, t.proprio_dim),
        "num_feet": (s.num_feet, t.num_feet),
        "points_per_foot": (s.points_per_foot, t.points_per_foot),
        "privileged_dim": (s.privileged_dim, t.privileged_dim),
        "height_encoder": (tuple(s.height_encoder), tuple(t.height_encoder)),
        "height_latent": (s.height_latent, t.height_latent),
        "privileged_latent": (s.privileged_latent, t.privileged_latent),
        "policy_mlp": (tuple(s.policy_mlp), tuple(t.policy_mlp)),
        "activation": (s.activation, t.activation),
        "action": (s.action, t.action),
    }
    bad = [f"{k}: student {a!r} vs teacher {b!r}" for k, (a, b) in pairs.items() if a != b]
    if bad:
        raise ValueError("student and teacher architectures differ: " + "; ".join(bad))
    with torch.no_grad():
        student.proprio_norm.load_state_dict(teacher.proprio_norm.state_dict())
        student.extero_norm.load_state_dict(teacher.extero_norm.state_dict())
        student.privileged_norm.load_state_dict(teacher.privileged_norm.state_dict())
        student.height_encoder.load_state_dict(teacher.height_encoder.state_dict())
        student.policy_mlp.load_state_dict(teacher.policy_mlp.state_dict())
        student.action_head.load_state_dict(teacher.action_head.state_dict())
