"""grid_map_msgs/GridMap decoding: each grid_map convention pinned with hand-built maps.

The maps are written cell by cell from grid_map's own definitions (cell (i, j) of the
unwrapped buffer is centred at ``centre + (length_x/2 - (i + 0.5) res, length_y/2 - (j + 0.5)
res)``, stored at ``((i + outer) mod rows, (j + inner) mod cols)``, column-major), never with
the decoder's own index arithmetic, so a decoder that flips an axis, transposes, or ignores
the start indices fails here.
"""

from __future__ import annotations

import array
import math

import numpy as np
import pytest

grid_map_msgs = pytest.importorskip("grid_map_msgs.msg", reason="make install builds them")
from grid_map_msgs.msg import GridMap, GridMapInfo  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402
from std_msgs.msg import Float32MultiArray, MultiArrayDimension  # noqa: E402

from anymal_ros.deploy.height_map import ElevationMap  # noqa: E402
from anymal_ros.ros_io.grid_map import (  # noqa: E402
    check_map_frame,
    decode_grid_map,
    grid_map_message,
)
from anymal_ros.ros_io.inputs import InputError  # noqa: E402

RES = 0.07  # not the simulator's 0.04 m (nor its terrain's 0.1 m)
CENTRE = (1.3, -0.4)
ROWS, COLS = 30, 22  # cells along x, along y: a non-square map catches a transpose


def cell_centre(i: int, j: int, rows=ROWS, cols=COLS, res=RES, centre=CENTRE):
    return (
        centre[0] + rows * res / 2 - (i + 0.5) * res,
        centre[1] + cols * res / 2 - (j + 0.5) * res,
    )


def hand_map(
    height,
    rows=ROWS,
    cols=COLS,
    res=RES,
    centre=CENTRE,
    outer=0,
    inner=0,
    layers=("variance", "elevation"),
    row_major=False,
    frame="odom",
) -> GridMap:
    """A GridMap whose ``elevation`` layer holds ``height(x, y)`` at each cell centre (the
    other layer holds -1), stored as grid_map stores it."""
    stored = [[0.0] * cols for _ in range(rows)]
    for i in range(rows):
        for j in range(cols):
            x, y = cell_centre(i, j, rows, cols, res, centre)
            stored[(i + outer) % rows][(j + inner) % cols] = height(x, y)
    if row_major:
        flat = [stored[r][c] for r in range(rows) for c in range(cols)]
        dims = [("row_index", rows, rows * cols), ("column_index", cols, cols)]
    else:
        flat = [stored[r][c] for c in range(cols) for r in range(rows)]
        dims = [("column_index", cols, rows * cols), ("row_index", rows, rows)]
    msg = GridMap()
    msg.header.frame_id = frame
    msg.header.stamp.sec, msg.header.stamp.nanosec = 12, 500_000_000
    msg.info = GridMapInfo(resolution=res, length_x=rows * res, length_y=cols * res)
    msg.info.pose.position.x, msg.info.pose.position.y = centre
    msg.info.pose.position.z = 5.0  # ignored, as grid_map does
    msg.layers = list(layers)
    arrays = []
    for name in layers:
        a = Float32MultiArray()
        a.layout.dim = [MultiArrayDimension(label=lb, size=n, stride=s) for lb, n, s in dims]
        a.data = array.array("f", flat if name == "elevation" else [-1.0] * len(flat))
        arrays.append(a)
    msg.data = arrays
    msg.outer_start_index, msg.inner_start_index = outer, inner
    return msg


def inner_points(n: int = 200, seed: int = 0, margin: float = 0.0) -> np.ndarray:
    """Random points between the outermost cell centres (where bilinear is exact on ramps)."""
    rng = np.random.default_rng(seed)
    x0, _ = cell_centre(ROWS - 1, 0)
    x1, _ = cell_centre(0, 0)
    _, y0 = cell_centre(0, COLS - 1)
    _, y1 = cell_centre(0, 0)
    return np.stack(
        [rng.uniform(x0 + margin, x1 - margin, n), rng.uniform(y0 + margin, y1 - margin, n)], -1
    )


def test_message_definitions_match_upstream_grid_map():
    assert GridMapInfo.get_fields_and_field_types() == {
        "resolution": "double",
        "length_x": "double",
        "length_y": "double",
        "pose": "geometry_msgs/Pose",
    }
    assert GridMap.get_fields_and_field_types() == {
        "header": "std_msgs/Header",
        "info": "grid_map_msgs/GridMapInfo",
        "layers": "sequence<string>",
        "basic_layers": "sequence<string>",
        "data": "sequence<std_msgs/Float32MultiArray>",
        "outer_start_index": "uint16",
        "inner_start_index": "uint16",
    }


@pytest.mark.parametrize("axis", [0, 1], ids=["ramp_x", "ramp_y"])
def test_ramps_give_the_coordinate_back(axis):
    """A ramp along x (or y) reads back its own coordinate: pins the centre, the -x/-y index
    direction, the length/resolution geometry and column-major storage."""
    m = decode_grid_map(hand_map(lambda x, y: (x, y)[axis]))
    assert m.frame_id == "odom" and m.resolution == RES
    assert m.shape == (COLS, ROWS)  # rows of the decoded grid run along y
    assert m.stamp == pytest.approx(12.5)
    xy = inner_points()
    np.testing.assert_allclose(m.heights(xy), xy[:, axis], atol=2e-5)


def test_a_plane_in_both_axes_and_the_exact_cell_centres():
    plane = lambda x, y: 0.3 * x - 0.7 * y + 0.05  # noqa: E731
    m = decode_grid_map(hand_map(plane))
    for i, j in [(0, 0), (ROWS - 1, 0), (0, COLS - 1), (7, 13)]:
        x, y = cell_centre(i, j)
        assert m.heights(np.array([x, y]))[()] == pytest.approx(plane(x, y), abs=2e-5)


@pytest.mark.parametrize("outer,inner", [(0, 5), (11, 0), (29, 21), (4, 17)])
def test_circular_buffer_start_indices_are_undone(outer, inner):
    plane = lambda x, y: 0.3 * x - 0.7 * y  # noqa: E731
    m = decode_grid_map(hand_map(plane, outer=outer, inner=inner))
    reference = decode_grid_map(hand_map(plane))
    np.testing.assert_array_equal(m.grid, reference.grid)
    xy = inner_points()
    np.testing.assert_allclose(m.heights(xy), plane(xy[:, 0], xy[:, 1]), atol=2e-5)


def test_row_major_storage_by_its_labels():
    plane = lambda x, y: x + 2 * y  # noqa: E731
    m = decode_grid_map(hand_map(plane, row_major=True, outer=3, inner=2))
    xy = inner_points()
    np.testing.assert_allclose(m.heights(xy), plane(xy[:, 0], xy[:, 1]), atol=2e-5)


def test_nan_holes_and_points_off_the_map_are_missing():
    hole_i, hole_j = 10, 8
    hx, hy = cell_centre(hole_i, hole_j)

    def height(x, y):
        return math.nan if (x, y) == (hx, hy) else 0.25

    m = decode_grid_map(hand_map(height))
    # Within one cell of the hole: a corner of the bilinear stencil has no data.
    near = np.array([[hx, hy], [hx + 0.6 * RES, hy], [hx, hy - 0.9 * RES]])
    assert np.isnan(m.heights(near)).all()
    far = np.array([[hx + 1.5 * RES, hy], [hx, hy + 2.2 * RES]])
    np.testing.assert_allclose(m.heights(far), 0.25)
    # The map spans its outer cell edges; beyond them a point is off the map.
    x_lo = CENTRE[0] - ROWS * RES / 2
    y_hi = CENTRE[1] + COLS * RES / 2
    edge = np.array([[x_lo + 0.01, CENTRE[1]], [CENTRE[0], y_hi - 0.01]])
    np.testing.assert_allclose(m.heights(edge), 0.25)
    off = np.array([[x_lo - 0.01, CENTRE[1]], [CENTRE[0], y_hi + 0.01], [9.0, 9.0]])
    assert np.isnan(m.heights(off)).all()


def test_infinite_cells_count_as_missing():
    m = decode_grid_map(hand_map(lambda x, y: math.inf if x > CENTRE[0] else 0.0))
    assert np.isnan(m.grid).sum() == (ROWS // 2) * COLS and not np.isinf(m.grid).any()


@pytest.mark.parametrize(
    "change, expected",
    [
        (lambda m: setattr(m.header, "frame_id", ""), "frame_id is empty"),
        (lambda m: setattr(m, "layers", ["variance", "height"]), "no layer 'elevation'"),
        (lambda m: setattr(m, "data", m.data[:1]), "2 layer names but 1 data arrays"),
        (lambda m: setattr(m.info, "length_x", 0.0), "length_x must be a positive"),
        (lambda m: setattr(m.info, "length_y", 0.01), "empty map"),
        (lambda m: setattr(m.info, "resolution", 0.0), "resolution must be a positive"),
        (lambda m: setattr(m.info, "length_x", 20 * RES), "disagree with the geometry"),
        (lambda m: setattr(m.data[1].layout.dim[0], "label", "x"), "dimension labels"),
        (lambda m: setattr(m.data[1], "data", m.data[1].data[:-1]), "expected 660"),
        (lambda m: setattr(m, "outer_start_index", ROWS), "outside the 30 x 22 circular"),
    ],
    ids=[
        "no_frame",
        "missing_layer",
        "missing_array",
        "zero_length",
        "empty",
        "zero_resolution",
        "dims_vs_geometry",
        "labels",
        "data_size",
        "start_index",
    ],
)
def test_malformed_maps_are_rejected_naming_the_problem(change, expected):
    msg = hand_map(lambda x, y: 0.0)
    change(msg)
    with pytest.raises(InputError, match="elevation_map: .*" + expected):
        decode_grid_map(msg)


def test_a_map_too_small_for_the_rings_is_rejected():
    msg = hand_map(lambda x, y: 0.0)  # 2.1 x 1.54 m
    decode_grid_map(msg, min_length=1.5)
    with pytest.raises(InputError, match="too small for the height rings.*1.60 m"):
        decode_grid_map(msg, min_length=1.6)


def test_another_layer_by_name():
    m = decode_grid_map(hand_map(lambda x, y: 1.0), layer="variance")
    assert (m.grid == -1.0).all()


def test_frame_check_names_both_frames():
    check_map_frame("odom", "odom")
    check_map_frame("map", "odom", fixed_frame="map")
    with pytest.raises(InputError, match="map frame 'map' is not the odometry frame 'odom'"):
        check_map_frame("map", "odom")
    with pytest.raises(InputError, match="'world'.*'odom' or the fixed frame 'map'"):
        check_map_frame("world", "odom", fixed_frame="map")


def test_writer_round_trips_through_serialization_with_a_rotated_buffer():
    rng = np.random.default_rng(3)
    grid = rng.normal(size=(17, 25)).astype(np.float32)  # [y, x]
    grid[4, 9] = np.nan
    msg = grid_map_message(grid, (0.5, -2.0), 0.04, "odom", layer="elevation", start_index=(7, 3))
    back = deserialize_message(serialize_message(msg), GridMap)
    assert (back.outer_start_index, back.inner_start_index) == (7, 3)
    m = decode_grid_map(back)
    np.testing.assert_array_equal(m.grid, grid)
    assert m.origin == pytest.approx((0.5 - 12 * 0.04, -2.0 - 8 * 0.04))


def test_elevation_map_heights_match_the_cells_it_was_built_from():
    grid = np.arange(12, dtype=np.float32).reshape(3, 4)  # rows y, cols x
    m = ElevationMap(grid, (1.0, 2.0), 0.5, "odom", 0.0)
    assert m.heights(np.array([1.5, 2.0]))[()] == 1.0  # column 1, row 0
    assert m.heights(np.array([1.0, 2.5]))[()] == 4.0  # column 0, row 1
