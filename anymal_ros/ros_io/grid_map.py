"""``grid_map_msgs/msg/GridMap`` <-> :class:`~anymal_ros.deploy.height_map.ElevationMap`.

The conventions of ANYbotics' grid_map (what elevation_mapping and elevation_mapping_cupy
publish), honoured exactly:

* ``info.pose.position`` is the map's centre in ``header.frame_id``; the grid's axes are the
  frame's axes (grid_map ignores ``info.pose.orientation``, and so do we).
* ``info.length_x``/``length_y`` and ``info.resolution`` give the size: ``round(length /
  resolution)`` cells along x (the matrix's rows) and along y (its columns).
* Each layer is a ``std_msgs/Float32MultiArray``; ``layout.dim`` labels say the storage:
  ``[column_index, row_index]`` is column-major (Eigen's default, what grid_map writes),
  ``[row_index, column_index]`` row-major; ``layout.data_offset`` elements are skipped.
* The cell index grows towards -x (row) and -y (column): unwrapped cell ``(i, j)`` is centred
  at ``centre + (length_x / 2 - (i + 0.5) res, length_y / 2 - (j + 0.5) res)``.
* ``outer_start_index`` (rows) and ``inner_start_index`` (columns) are circular-buffer
  offsets: stored cell ``(b_i, b_j)`` is unwrapped cell ``((b_i - outer) mod rows,
  (b_j - inner) mod cols)``.
* NaN marks a cell without data (elevation_mapping_cupy's unobserved cells); infinities are
  treated alike.

:func:`decode_grid_map` reads a message object (fields by name, so tests hand-build them) and
rejects, with :class:`~anymal_ros.ros_io.inputs.InputError` naming the problem, a map without
frame, without the layer, empty, with dimensions that disagree with its geometry, or smaller
than the rings around the feet need. Whether its frame is one the controller can use is the
caller's check (:func:`check_map_frame`). :func:`grid_map_message` writes a map (simulator).
"""

from __future__ import annotations

import array
import math

import numpy as np

from anymal_ros.deploy.height_map import ElevationMap
from anymal_ros.ros_io.inputs import InputError

COLUMN_INDEX, ROW_INDEX = "column_index", "row_index"
NAME = "elevation_map"


def _fail(why: str) -> InputError:
    return InputError(f"{NAME}: {why}")


def _cells(length: float, resolution: float, axis: str) -> int:
    if not (math.isfinite(length) and length > 0):
        raise _fail(f"info.length_{axis} must be a positive number of metres, got {length}")
    return int(round(length / resolution))


def decode_grid_map(msg, layer: str = "elevation", min_length: float = 0.0) -> ElevationMap:
    """One layer of a ``grid_map_msgs/GridMap`` as an :class:`ElevationMap` in the message's
    frame (float32 grid, rows along +y, columns along +x, circular buffer undone).

    Args:
        msg: the message (or anything with its fields).
        layer: name of the elevation layer.
        min_length: m; the shorter side must be at least this (the rings' span).
    """
    frame = str(msg.header.frame_id)
    if not frame:
        raise _fail("header.frame_id is empty: the map's frame is unknown")
    info = msg.info
    res = float(info.resolution)
    if not (math.isfinite(res) and res > 0):
        raise _fail(f"info.resolution must be a positive number of metres, got {res}")
    rows = _cells(float(info.length_x), res, "x")  # along x
    cols = _cells(float(info.length_y), res, "y")  # along y
    layers = list(msg.layers)
    if layer not in layers:
        raise _fail(f"no layer {layer!r} (layers: {layers})")
    if len(msg.data) != len(layers):
        raise _fail(f"{len(layers)} layer names but {len(msg.data)} data arrays")
    if rows == 0 or cols == 0:
        raise _fail(f"empty map ({info.length_x} x {info.length_y} m at {res} m)")
    side = min(rows, cols) * res
    if side < min_length:
        raise _fail(
            f"map of {rows * res:.2f} x {cols * res:.2f} m is too small for the height rings, "
            f"which span {min_length:.2f} m around the robot"
        )
    data = msg.data[layers.index(layer)]
    dims = list(data.layout.dim)
    labels = tuple(d.label for d in dims)
    if labels == (COLUMN_INDEX, ROW_INDEX):
        column_major = True
    elif labels == (ROW_INDEX, COLUMN_INDEX):
        column_major = False
    else:
        raise _fail(
            f"layer {layer!r}: dimension labels {list(labels)}, expected "
            f"['{COLUMN_INDEX}', '{ROW_INDEX}'] (column-major) or the reverse (row-major)"
        )
    sizes = (cols, rows) if column_major else (rows, cols)
    got = tuple(int(d.size) for d in dims)
    if got != sizes:
        raise _fail(
            f"layer {layer!r}: dimension sizes {dict(zip(labels, got, strict=True))} disagree "
            f"with the geometry ({info.length_x} x {info.length_y} m at {res} m = {rows} x "
            f"{cols} cells)"
        )
    values = np.asarray(data.data, dtype=np.float32)
    offset = int(data.layout.data_offset)
    if values.ndim != 1 or values.size - offset != rows * cols:
        raise _fail(
            f"layer {layer!r}: {values.size} values after data_offset {offset}, expected "
            f"{rows * cols} ({rows} x {cols})"
        )
    outer, inner = int(msg.outer_start_index), int(msg.inner_start_index)
    if outer >= rows or inner >= cols:
        raise _fail(f"start index ({outer}, {inner}) outside the {rows} x {cols} circular buffer")
    stored = values[offset:].reshape(sizes)
    if not column_major:
        stored = stored.T
    # stored[b_j, b_i]: y index first, as the sampling layout. Unwrapped cell (i, j) sits at
    # ((i + outer) mod rows, (j + inner) mod cols) and its index grows towards -x/-y, so the
    # sampling layout's grid[r, c] is unwrapped (rows - 1 - c, cols - 1 - r): flip both axes,
    # then turn the circular buffer back, one copy in all (for column-major storage, which is
    # what grid_map writes, a sequential one: this runs in the executor at the map's rate).
    grid = np.roll(stored[::-1, ::-1], (inner, outer), axis=(0, 1))
    infinite = np.isinf(grid)
    if infinite.any():
        grid[infinite] = np.nan
    position = info.pose.position
    origin = (
        float(position.x) - 0.5 * rows * res + 0.5 * res,
        float(position.y) - 0.5 * cols * res + 0.5 * res,
    )
    stamp = msg.header.stamp
    return ElevationMap(
        grid=grid,
        origin=origin,
        resolution=res,
        frame_id=frame,
        stamp=stamp.sec + stamp.nanosec * 1e-9,
    )


def check_map_frame(map_frame: str, odom_frame: str, fixed_frame: str = "") -> None:
    """The map must be in the odometry frame, or in ``fixed_frame`` (a frame the node was
    given a fixed transform to); anything else is rejected naming both frames."""
    if map_frame == odom_frame or (fixed_frame and map_frame == fixed_frame):
        return
    extra = f" or the fixed frame '{fixed_frame}'" if fixed_frame else ""
    raise _fail(
        f"map frame '{map_frame}' is not the odometry frame '{odom_frame}'{extra}; publish the "
        "map in the odometry frame or give its fixed transform (elevation_map_frame, "
        "elevation_map_transform)"
    )


def grid_map_message(
    grid: np.ndarray,
    centre: tuple[float, float],
    resolution: float,
    frame_id: str,
    stamp=None,
    layer: str = "elevation",
    start_index: tuple[int, int] = (0, 0),
):
    """A ``grid_map_msgs/GridMap`` with one layer.

    Args:
        grid: ``[rows (y), cols (x)]`` heights, the :class:`ElevationMap` layout (NaN = no
            data); the message holds them in grid_map's order (column-major, index towards
            -x/-y), rotated in the circular buffer by ``start_index`` (outer, inner).
        centre: (x, y) of the map's centre in ``frame_id`` (m).
        resolution: m per cell.
        stamp: ``builtin_interfaces/Time`` (left zero if None).
    """
    from grid_map_msgs.msg import GridMap
    from std_msgs.msg import Float32MultiArray, MultiArrayDimension

    ny, nx = grid.shape
    unwrapped = np.asarray(grid, dtype=np.float32).T[::-1, ::-1]  # [rows (x), cols (y)]
    outer, inner = start_index
    stored = np.roll(unwrapped, (outer, inner), axis=(0, 1))
    msg = GridMap()
    msg.header.frame_id = frame_id
    if stamp is not None:
        msg.header.stamp = stamp
    msg.info.resolution = float(resolution)
    msg.info.length_x = nx * float(resolution)
    msg.info.length_y = ny * float(resolution)
    msg.info.pose.position.x, msg.info.pose.position.y = float(centre[0]), float(centre[1])
    msg.info.pose.orientation.w = 1.0
    msg.layers = [layer]
    data = Float32MultiArray()
    data.layout.dim = [
        MultiArrayDimension(label=COLUMN_INDEX, size=ny, stride=nx * ny),
        MultiArrayDimension(label=ROW_INDEX, size=nx, stride=nx),
    ]
    # array.array: rclpy copies it in C instead of checking 40k Python floats.
    data.data = array.array("f", np.asfortranarray(stored).tobytes(order="F"))
    msg.data = [data]
    msg.outer_start_index, msg.inner_start_index = int(outer), int(inner)
    return msg
