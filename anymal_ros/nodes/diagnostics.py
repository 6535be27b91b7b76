"""Diagnostics of the policy node: latency statistics and the key/values it reports.

Pure python; the node wraps :func:`status_values` into a ``diagnostic_msgs/DiagnosticStatus``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable

import numpy as np

#: diagnostic_msgs/DiagnosticStatus levels.
OK, WARN, ERROR, STALE = 0, 1, 2, 3


class LatencyWindow:
    """The last ``size`` durations (s); p50/p99/max over them in milliseconds."""

    def __init__(self, size: int = 500) -> None:
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}")
        self._values: deque[float] = deque(maxlen=size)
        self.total = 0

    def add(self, seconds: float) -> None:
        self._values.append(seconds)
        self.total += 1

    def summary_ms(self) -> dict[str, float]:
        """``{"p50", "p99", "max"}`` in ms (NaN when empty) and ``count`` (all time)."""
        if not self._values:
            return {"p50": math.nan, "p99": math.nan, "max": math.nan, "count": 0}
        ms = np.asarray(self._values) * 1e3
        p50, p99 = np.percentile(ms, [50, 99])
        return {"p50": float(p50), "p99": float(p99), "max": float(ms.max()), "count": self.total}


def status_values(
    *,
    mode: str,
    ages: dict[str, float],
    rates: dict[str, float],
    rejected: dict[str, int],
    errors: dict[str, str],
    latency: dict[str, float],
    transitions: Iterable[str],
    missing_heights: int,
    ticks: int,
    missed_ticks: int,
    control_latency: dict[str, float] | None = None,
    recent_rejected: dict[str, int] | None = None,
    rate_limited: int | None = None,
) -> list[tuple[str, str]]:
    """Ordered (key, value) strings for one diagnostics message.

    ``latency`` is the policy's inference time; ``control_latency`` (optional) the node's
    whole tick, from the callback that ran it until the targets were published.
    ``rejected`` counts all time, ``recent_rejected`` (optional) over the node's recent
    window, and ``errors`` should hold only recent reasons, so the report clears once inputs
    are clean; ``rate_limited`` (optional) counts WALK ticks whose targets were rate limited."""
    out = [("mode", mode), ("control_ticks", str(ticks)), ("missed_ticks", str(missed_ticks))]
    for name in ages:
        age = ages[name]
        out.append((f"{name}.age_s", "never" if math.isinf(age) else f"{age:.3f}"))
        out.append((f"{name}.rate_hz", f"{rates[name]:.1f}"))
        out.append((f"{name}.rejected", str(rejected.get(name, 0))))
        if recent_rejected is not None:
            out.append((f"{name}.rejected_recent", str(recent_rejected.get(name, 0))))
        if name in errors:
            out.append((f"{name}.last_error", errors[name]))
    out.append(("heights.missing_points", str(missing_heights)))
    if rate_limited is not None:
        out.append(("joint_targets.rate_limited", str(rate_limited)))
    for key in ("p50", "p99", "max"):
        out.append((f"inference_ms.{key}", f"{latency[key]:.3f}"))
    out.append(("inference.count", str(latency["count"])))
    if control_latency is not None:
        for key in ("p50", "p99", "max"):
            out.append((f"control_ms.{key}", f"{control_latency[key]:.3f}"))
    for i, text in enumerate(reversed(list(transitions))):
        out.append((f"transition[-{i + 1}]", text))
    return out


def governor_values(settings, governor) -> list[tuple[str, str]]:
    """The speed governor's key/values: ``settings`` the file's
    (:class:`~anymal_ros.config.sim.SpeedGovernorConfig` or None), ``governor`` the running
    :class:`~anymal_ros.obs.governor.SpeedGovernor` (None: the file has none, or it is off)."""
    if settings is None:
        return [("speed_governor", "none in the policy file")]
    if governor is None:
        return [("speed_governor", "off (parameter speed_governor)")]
    capped = bool(governor.capped[0])
    state = f"capping planar speed to {settings.slow_speed:g} m/s" if capped else "not capping"
    spread = float(governor.spread[0])
    values = [
        ("speed_governor", state),
        ("speed_governor.belief_spread_m", "none yet" if math.isnan(spread) else f"{spread:.3f}"),
        ("speed_governor.spread_threshold_m", f"{settings.spread_threshold:g}"),
    ]
    if settings.stance_threshold is not None:
        stray = float(governor.stance_stray[0])
        values += [
            ("speed_governor.stance_stray_m", "none yet" if math.isnan(stray) else f"{stray:.4f}"),
            ("speed_governor.stance_threshold_m", f"{settings.stance_threshold:g}"),
        ]
    return values + [
        ("speed_governor.hold_s", f"{settings.hold:g}"),
        ("speed_governor.capped_ticks", f"{governor.capped_steps} of {governor.steps}"),
    ]


def status_level(
    mode: str,
    stale: list[str],
    errors: dict[str, str],
    rejecting: Iterable[str] = (),
) -> tuple[int, str]:
    """(level, one-line summary) for the node's status. ``errors``: recent rejection reasons
    by input; ``rejecting``: inputs unusable for rejecting too many messages."""
    rejecting = sorted(rejecting)
    if stale or rejecting:
        # Unusable proprioception is why PASSIVE happens; elsewhere it is a warning.
        parts = [f"stale: {', '.join(stale)}"] if stale else []
        parts += [f"rejecting: {', '.join(rejecting)}"] if rejecting else []
        return (ERROR if mode == "PASSIVE" else WARN), f"{mode}; {'; '.join(parts)}"
    if errors:
        return WARN, f"{mode}; rejected input: {', '.join(sorted(errors))}"
    return OK, mode
