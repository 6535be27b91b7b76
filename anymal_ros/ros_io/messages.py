"""numpy arrays -> ROS messages, for the nodes that publish robot state (the simulator node,
tests, benchmarks). The inverse direction, with validation, is :mod:`anymal_ros.ros_io.inputs`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sensor_msgs.msg import PointCloud2, PointField

from anymal_ros.contract import PRIVILEGED_LAYOUT
from anymal_ros.ros_io.inputs import POINTFIELD_FLOAT32

#: Names of the 50 privileged values in ``~/privileged`` (a sensor_msgs/JointState used as a
#: stamped, named vector: ``name[i]`` = ``"<term>[<k>]"`` of PRIVILEGED_LAYOUT, value in
#: ``position[i]``), e.g. ``foot_contact[0]`` ... ``foot_air_time[3]``.
PRIVILEGED_NAMES: tuple[str, ...] = tuple(
    f"{term.name}[{k}]" for term in PRIVILEGED_LAYOUT.terms for k in range(term.size)
)

_CLOUD_FIELDS = ("x", "y", "z", "height")


def height_cloud(
    heights: np.ndarray,
    points: np.ndarray | None,
    frame_id: str,
    stamp=None,
) -> PointCloud2:
    """Height samples as the ``/height_samples`` cloud (layout: :mod:`anymal_ros.ros_io.inputs`).

    Args:
        heights: ``[4, 52]`` terrain height relative to each foot's sole (m), NaN = missing.
        points: ``[4, 52, 3]`` sample positions in ``frame_id`` (visualisation), or None
            (zeros).
        frame_id: frame of ``points``.
        stamp: ``builtin_interfaces/Time`` for the header (left zero if None).
    """
    heights = np.asarray(heights, dtype=np.float32)
    count = heights.size
    data = np.zeros((count, len(_CLOUD_FIELDS)), dtype="<f4")
    if points is not None:
        data[:, :3] = np.asarray(points, dtype=np.float32).reshape(count, 3)
    data[:, 3] = heights.reshape(count)
    dense = not bool(np.isnan(heights).any())
    return float32_cloud(data, _CLOUD_FIELDS, frame_id, stamp, is_dense=dense)


def float32_cloud(
    data: np.ndarray, fields: tuple[str, ...], frame_id: str, stamp=None, is_dense: bool = True
) -> PointCloud2:
    """An unordered little-endian cloud of float32 ``fields`` from ``data [count, fields]``."""
    count = data.shape[0]
    msg = PointCloud2()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.height, msg.width = 1, count
    msg.fields = [
        PointField(name=name, offset=4 * i, datatype=POINTFIELD_FLOAT32, count=1)
        for i, name in enumerate(fields)
    ]
    msg.is_bigendian = False
    msg.point_step = 4 * len(fields)
    msg.row_step = msg.point_step * count
    msg.is_dense = is_dense
    msg.data = np.ascontiguousarray(data, dtype="<f4").tobytes()
    return msg


def fill_joint_state(
    msg, names: Sequence[str], pos: np.ndarray, vel: np.ndarray, effort: np.ndarray | None = None
) -> None:
    """Write names, positions, velocities and optionally efforts (``[J]`` each) into a
    ``sensor_msgs/JointState``."""
    msg.name = list(names)
    msg.position = [float(v) for v in pos]
    msg.velocity = [float(v) for v in vel]
    if effort is not None:
        msg.effort = [float(v) for v in effort]
