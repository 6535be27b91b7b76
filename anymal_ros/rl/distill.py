"""Student update of teacher-student distillation (Miki et al. 2022).

Per truncated-BPTT chunk (rows = environments, columns = K consecutive steps)::

    out, h = student.forward_sequence(proprio, noisy extero, h.detach(), episode_start)
    behaviour = MSE(out.deterministic, teacher mean)             Gaussian head
              | KL(teacher || student) or logit MSE              categorical head
    recon     = MSE(out.recon_heights, norm(clean heights)) + MSE(out.recon_privileged,
                                                                   norm(privileged))
    loss      = behaviour + reconstruction_coef * recon           (0.5 in the paper)

Every mean is over valid steps only (offline batches pad short episodes). The hidden state
carried into a chunk is the previous chunk's final state, detached, so gradients flow
through at most K steps while the state itself spans the whole rollout.

The student's normalisers are the teacher's (copied at initialisation) and stay frozen: the
policy MLP copied from the teacher expects the teacher's input scaling.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from anymal_ros.config.distill import DistillLossConfig
from anymal_ros.models.student import Student
from anymal_ros.rl.distill_storage import DistillRollout, TBPTTChunk
from anymal_ros.rl.distributed import SINGLE, Distributed

LOSS_STATS: tuple[str, ...] = (
    "loss",
    "behaviour_loss",
    "recon_heights_loss",
    "recon_privileged_loss",
    "grad_norm",
)


def _masked_mean(per_step: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``per_step [B, K]`` over the valid entries (0 if none)."""
    w = valid.to(per_step.dtype)
    return (per_step * w).sum() / w.sum().clamp_min(1.0)


def behaviour_loss(
    student_out: Tensor, teacher_target: Tensor, head: str, categorical_loss: str = "kl"
) -> Tensor:
    """Per-step behaviour loss ``[...]`` from the student's deterministic output and the
    teacher's label (both ``[..., A]``: means, or logits for a categorical head)."""
    if student_out.shape != teacher_target.shape:
        raise ValueError(
            f"student output {list(student_out.shape)} and teacher target "
            f"{list(teacher_target.shape)} differ"
        )
    if head == "gaussian":
        return (student_out - teacher_target).pow(2).mean(-1)
    log_s = F.log_softmax(student_out, dim=-1)
    log_t = F.log_softmax(teacher_target, dim=-1)
    if categorical_loss == "kl":
        return (log_t.exp() * (log_t - log_s)).sum(-1)
    if categorical_loss == "logit_mse":
        # Logits are defined up to a constant; compare the centred (log-softmax) versions.
        return (log_s - log_t).pow(2).mean(-1)
    raise ValueError(f"unknown categorical_loss {categorical_loss!r}")


class Distiller:
    """Fits a :class:`Student` to teacher labels with truncated BPTT.

    ``update(rollout)`` runs ``num_epochs`` passes; each pass shuffles the environments into
    ``num_minibatches`` groups and, for each group, walks the rollout's chunks in time order
    with one optimiser step per chunk. With ``dist`` (data-parallel ranks, each with its own
    environments) every step averages the gradients over the ranks.
    """

    def __init__(
        self,
        student: Student,
        cfg: DistillLossConfig,
        seed: int = 0,
        dist: Distributed = SINGLE,
    ) -> None:
        self.student = student
        self.cfg = cfg
        self.dist = dist
        self.head = student.cfg.action.type
        self.optimizer = torch.optim.Adam(student.parameters(), lr=cfg.learning_rate)
        self.generator = torch.Generator().manual_seed(seed)

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"student": self.optimizer}

    def chunk_loss(self, chunk: TBPTTChunk, hidden: Tensor) -> tuple[Tensor, dict, Tensor]:
        """Loss of one chunk from ``hidden [L, B, H]``; returns ``(loss, stats, hidden_out)``
        with ``hidden_out`` still attached to the graph (the caller detaches it)."""
        student = self.student
        out, hidden_out = student.forward_sequence(
            chunk.proprio, chunk.extero, hidden, chunk.episode_start
        )
        behaviour = behaviour_loss(
            out.deterministic, chunk.teacher_target, self.head, self.cfg.categorical_loss
        )
        heights_t, privileged_t = student.reconstruction_targets(
            chunk.clean_extero, chunk.privileged
        )
        recon_h = (out.recon_heights - heights_t).pow(2).mean((-2, -1))  # [B, K]
        recon_p = (out.recon_privileged - privileged_t).pow(2).mean(-1)
        b = _masked_mean(behaviour, chunk.valid)
        rh = _masked_mean(recon_h, chunk.valid)
        rp = _masked_mean(recon_p, chunk.valid)
        loss = b + self.cfg.reconstruction_coef * (rh + rp)
        stats = {
            "behaviour_loss": b.item(),
            "recon_heights_loss": rh.item(),
            "recon_privileged_loss": rp.item(),
        }
        return loss, stats, hidden_out

    def env_groups(self, num_envs: int) -> Iterator[Tensor]:
        """A random partition of ``range(num_envs)`` into ``num_minibatches`` groups."""
        groups = min(self.cfg.num_minibatches, num_envs)
        perm = torch.randperm(num_envs, generator=self.generator)
        yield from perm.tensor_split(groups)

    def update(self, rollout: DistillRollout) -> dict[str, float]:
        """Train on a full rollout; returns the mean of each statistic over the chunks."""
        totals: dict[str, float] = dict.fromkeys(LOSS_STATS, 0.0)
        n = 0
        self.student.train()
        for _ in range(self.cfg.num_epochs):
            for group in self.env_groups(rollout.N):
                group = group.to(rollout.device)
                hidden = rollout.hidden0[:, group]
                for chunk in rollout.chunks(self.cfg.tbptt_steps, group):
                    # All padding: nothing to learn, hidden stays as is (ranks step together,
                    # so a rank with only padding joins while another has data).
                    (learn,) = self.dist.any_rank(bool(chunk.valid.any()))
                    if not learn:
                        continue
                    loss, stats, hidden = self.chunk_loss(chunk, hidden)
                    self.optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    self.dist.average_gradients(self.student.parameters())
                    grad_norm = torch.nn.utils.clip_grad_norm_(
                        self.student.parameters(), self.cfg.max_grad_norm
                    )
                    self.optimizer.step()
                    # Truncation: the next chunk starts from this state but does not
                    # back-propagate into it.
                    hidden = hidden.detach()
                    if not torch.isfinite(loss):
                        raise FloatingPointError(f"distillation loss is {loss.item()}")
                    stats.update(loss=loss.item(), grad_norm=float(grad_norm))
                    for k in LOSS_STATS:
                        totals[k] += stats[k]
                    n += 1
        return {k: v / max(n, 1) for k, v in totals.items()}

    @torch.no_grad()
    def evaluate(self, rollout: DistillRollout) -> dict[str, float]:
        """The same losses without training (over all environments, chunk by chunk)."""
        totals: dict[str, float] = dict.fromkeys(LOSS_STATS[:-1], 0.0)
        n = 0
        ids = torch.arange(rollout.N, device=rollout.device)
        hidden = rollout.hidden0
        for chunk in rollout.chunks(self.cfg.tbptt_steps, ids):
            loss, stats, hidden = self.chunk_loss(chunk, hidden)
            stats["loss"] = loss.item()
            for k in totals:
                totals[k] += stats[k]
            n += 1
        return {k: v / max(n, 1) for k, v in totals.items()}

    def state_dict(self) -> dict[str, Any]:
        return {"generator": self.generator.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
