"""The torque a joint's motor can give at its present speed (``physics.actuator``).

``ideal_pd``: MuJoCo's position actuator clamped at the robot's ``torque_limit`` whatever the
joint's speed, so a simulated joint can outrun the real one. ``dc_motor``: the envelope of an
electric motor behind a gearbox. Driving the joint in the direction it already turns, the
motor's torque falls linearly with speed, from ``saturation_torque`` at rest to zero at
``joint_velocity_limit``; braking (torque against the motion) it has the whole
``torque_limit``; both are capped at ``torque_limit``. For ANYmal C's drives (120 N*m at
stall, 80 N*m cap, 7.5 rad/s) the cap binds up to 2.5 rad/s, and at 5 rad/s 40 N*m are left
to accelerate a joint further.

MuJoCo clamps an actuator's force to its ``forcerange``; the simulator sets that range from
the joints' velocities before every physics step (:meth:`DcMotorEnvelope.force_range`).
"""

from __future__ import annotations

import numpy as np

from anymal_ros.config.robot import RobotDescription


class DcMotorEnvelope:
    """``[.., 2]`` MuJoCo force ranges of a DC motor at given joint velocities.

    Args:
        robot: needs ``saturation_torque``, ``torque_limit`` and ``joint_velocity_limit``.
    """

    def __init__(self, robot: RobotDescription):
        if robot.saturation_torque is None:
            raise ValueError(
                f"physics.actuator 'dc_motor' needs the robot's saturation_torque (its motors' "
                f"torque at stall); robot {robot.name!r} has none: add it to the robot YAML or "
                "use 'ideal_pd'"
            )
        self.saturation = float(robot.saturation_torque)
        self.limit = float(robot.torque_limit)
        self.speed_limit = float(robot.joint_velocity_limit)

    def force_range(self, joint_vel: np.ndarray, strength: np.ndarray | float = 1.0) -> np.ndarray:
        """``[..., 2]`` (lowest, highest) torque at ``joint_vel`` (rad/s); ``strength`` scales
        both torques (motor-strength randomisation), broadcast against ``joint_vel``."""
        speed = np.asarray(joint_vel) / self.speed_limit  # fraction of the limit, signed
        stall, cap = self.saturation * strength, self.limit * strength
        # Turning forwards, the forward torque fades with speed and the backward one is
        # capped (braking); turning backwards the other way round.
        high = np.clip(stall * (1.0 - speed), 0.0, cap)
        low = np.clip(stall * (-1.0 - speed), -cap, 0.0)
        return np.stack([low, high], axis=-1)
