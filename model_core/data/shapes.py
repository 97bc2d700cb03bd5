"""Shape outlines and an anti-aliased rasteriser for the synthetic action dataset.

Every shape is star-shaped around its centre, so its outline is a function of the polar angle: a
circle, or a polygon whose vertices are sorted by angle. That lets one vectorised routine render any
shape at any rotation with sub-pixel edges, for a whole chunk of frames at once.

Coordinates follow the image: x to the right, y down. Angles are measured with ``arctan2(y, x)`` in
that frame, so a growing angle turns *clockwise on screen*.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["EXTRA_SHAPE_NAMES", "SHAPE_NAMES", "Shape", "draw_shapes", "get_shape"]


@dataclass(frozen=True, eq=False)
class Shape:
    """A star-shaped outline with circumradius 1.

    Build one with ``Shape.make``. For a polygon, edge ``i`` runs from vertex ``i`` to ``i + 1``
    and a ray from the centre in direction ``u`` meets it at distance
    ``cross(P_i, P_i+1) / cross(u, P_i+1 - P_i)``; the per-edge terms are precomputed.

    Attributes:
        name: Plain name of the shape.
        vertices: ``(V, 2)`` polygon vertices sorted by angle, or ``None`` for a circle.
        angles: ``(V,)`` angle of each vertex (empty for a circle).
        cross: ``(V,)`` ``cross(P_i, P_i+1)`` per edge.
        edges: ``(V, 2)`` ``P_i+1 - P_i`` per edge.
    """

    name: str
    vertices: np.ndarray | None
    angles: np.ndarray = field(repr=False)
    cross: np.ndarray = field(repr=False)
    edges: np.ndarray = field(repr=False)

    @classmethod
    def make(cls, name: str, points: np.ndarray | None) -> Shape:
        """Build a shape from polygon points around the origin (any order, any scale).

        Args:
            name: Plain name of the shape.
            points: ``(V, 2)`` vertices of a polygon that is star-shaped around the origin, or
                ``None`` for a circle.

        Returns:
            The shape, scaled to circumradius 1.
        """
        if points is None:
            empty = np.zeros((0,), np.float32)
            return cls(name, None, empty, empty, np.zeros((0, 2), np.float32))
        points = points[np.argsort(np.arctan2(points[:, 1], points[:, 0]))]
        points = points / np.hypot(points[:, 0], points[:, 1]).max()
        nxt = np.roll(points, -1, axis=0)
        return cls(
            name,
            points,
            np.arctan2(points[:, 1], points[:, 0]).astype(np.float32),
            (points[:, 0] * nxt[:, 1] - points[:, 1] * nxt[:, 0]).astype(np.float32),
            (nxt - points).astype(np.float32),
        )

    @property
    def symmetry_order(self) -> int:
        """How many rotations of the outline map it onto itself (1: none but the full turn; 0:
        every rotation, a circle). The outline alone shows the orientation only modulo
        ``360 / symmetry_order`` degrees; the marker disc shows the rest."""
        if self.vertices is None:
            return 0
        count = len(self.vertices)
        for order in range(count, 1, -1):
            if count % order:
                continue
            turn = 2 * np.pi / order
            c, s = np.cos(turn), np.sin(turn)
            turned = self.vertices @ np.array([[c, s], [-s, c]], dtype=self.vertices.dtype)
            # Every turned vertex must land on some vertex of the original outline.
            gaps = np.linalg.norm(turned[:, None] - self.vertices[None], axis=-1).min(axis=1)
            if gaps.max() < 1e-4:
                return order
        return 1

    def radius_at(self, ux: np.ndarray, uy: np.ndarray) -> np.ndarray:
        """Distance from the centre to the outline along unit directions ``(ux, uy)``.

        Args:
            ux: x components of unit vectors in the shape's own frame.
            uy: y components, same shape as ``ux``.

        Returns:
            The outline radius per direction (1 at the vertices farthest out).
        """
        if self.vertices is None:
            return np.ones_like(ux)
        # Index of the edge whose angular wedge holds each direction; -1 wraps to the last edge.
        idx = np.searchsorted(self.angles, np.arctan2(uy, ux), side="right") - 1
        idx %= len(self.angles)
        denom = ux * self.edges[idx, 1] - uy * self.edges[idx, 0]
        # At the exact centre the direction is (0, 0): any large radius is right there.
        return self.cross[idx] / np.maximum(denom, np.float32(1e-6))


def _regular(n: int, radii: tuple[float, ...] = (1.0,)) -> np.ndarray:
    """Polygon with ``n * len(radii)`` vertices evenly spaced, cycling through ``radii``."""
    count = n * len(radii)
    t = np.arange(count) * (2 * np.pi / count)
    r = np.resize(np.asarray(radii), count)
    return np.stack([r * np.cos(t), r * np.sin(t)], axis=1)


def _build_shapes() -> dict[str, Shape]:
    w = 0.35  # half-width of the cross's arms
    cross = np.array(
        [[1, -w], [1, w], [w, w], [w, 1], [-w, 1], [-w, w], [-1, w], [-1, -w], [-w, -w], [-w, -1],
         [w, -1], [w, -w]],
        dtype=np.float64,
    )  # fmt: skip
    t = np.linspace(0, 2 * np.pi, 32, endpoint=False)
    table: dict[str, np.ndarray | None] = {
        "circle": None,
        "ellipse": np.stack([np.cos(t), 0.6 * np.sin(t)], axis=1),
        "square": _regular(4),
        "rectangle": np.array([[1, 0.5], [-1, 0.5], [-1, -0.5], [1, -0.5]], dtype=np.float64),
        "diamond": np.array([[1, 0], [0, 0.55], [-1, 0], [0, -0.55]], dtype=np.float64),
        "triangle": _regular(3),
        "pentagon": _regular(5),
        "hexagon": _regular(6),
        "star": _regular(5, (1.0, 0.45)),
        "cross": cross,
    }
    return {name: Shape.make(name, points) for name, points in table.items()}


def _build_extra_shapes() -> dict[str, Shape]:
    """Thin and lopsided outlines, drawn only by the varied scene (model_core.data.variety)."""
    table = {
        "kite": np.array([[1, 0], [-0.1, 0.6], [-0.7, 0], [-0.1, -0.6]], dtype=np.float64),
        "wedge": np.array([[1, 0], [-0.8, 0.7], [-0.8, -0.7]], dtype=np.float64),
        "bar": np.array([[1, 0.3], [-1, 0.3], [-1, -0.3], [1, -0.3]], dtype=np.float64),
        "arrow": np.array(
            [[1, 0], [0.2, 0.55], [0.2, 0.2], [-0.9, 0.2], [-0.9, -0.2], [0.2, -0.2], [0.2, -0.55]],
            dtype=np.float64,
        ),
    }
    return {name: Shape.make(name, points) for name, points in table.items()}


_SHAPES = _build_shapes()
# The classic scene draws from SHAPE_NAMES only, so its seeds keep their shapes.
SHAPE_NAMES: tuple[str, ...] = tuple(_SHAPES)
_EXTRA_SHAPES = _build_extra_shapes()
EXTRA_SHAPE_NAMES: tuple[str, ...] = tuple(_EXTRA_SHAPES)


def get_shape(name: str) -> Shape:
    """Look up a shape by name.

    Args:
        name: One of ``SHAPE_NAMES`` or ``EXTRA_SHAPE_NAMES``.

    Returns:
        The shape.
    """
    shape = _SHAPES.get(name) or _EXTRA_SHAPES.get(name)
    if shape is None:
        known = SHAPE_NAMES + EXTRA_SHAPE_NAMES
        raise ValueError(f"unknown shape {name!r}; expected one of {known}")
    return shape


def draw_shapes(
    canvas: np.ndarray,
    shape: Shape,
    colour: np.ndarray,
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
    angle: np.ndarray,
    opacity: np.ndarray,
    marker_colour: np.ndarray | None = None,
    marker_offset: float = 0.5,
    marker_radius: float = 0.24,
) -> None:
    """Composite one shape onto every frame of a chunk, in place, with anti-aliased edges.

    Only the box that holds the shape in some frame of the chunk is touched, so the cost follows
    the shape's size and motion, not the frame size.

    Args:
        canvas: ``(N, H, W, 3)`` float32 frames, modified in place.
        shape: The outline to draw.
        colour: RGB fill colour, 0-255.
        cx: ``(N,)`` centre x per frame, in pixels.
        cy: ``(N,)`` centre y per frame, in pixels.
        radius: ``(N,)`` circumradius per frame, in pixels.
        angle: ``(N,)`` orientation per frame, in radians, clockwise on screen.
        opacity: ``(N,)`` opacity per frame in [0, 1].
        marker_colour: RGB of a disc drawn inside the shape on its local +x axis, which makes the
            orientation of any shape (a circle included) visible; ``None`` draws no marker.
        marker_offset: Distance of the marker's centre from the shape's centre, in circumradii.
        marker_radius: Radius of the marker, in circumradii.
    """
    _, height, width, _ = canvas.shape
    reach = radius + 1.0  # one pixel of anti-aliasing fringe
    x0 = max(int(np.floor((cx - reach).min())), 0)
    x1 = min(int(np.ceil((cx + reach).max())) + 1, width)
    y0 = max(int(np.floor((cy - reach).min())), 0)
    y1 = min(int(np.ceil((cy + reach).max())) + 1, height)
    visible = opacity > 0
    if x0 >= x1 or y0 >= y1 or not visible.any():
        return

    f32 = np.float32
    # Pixel centres relative to the shape's centre, per frame.
    dx = (np.arange(x0, x1, dtype=f32) + f32(0.5))[None, None, :] - cx.astype(f32)[:, None, None]
    dy = (np.arange(y0, y1, dtype=f32) + f32(0.5))[None, :, None] - cy.astype(f32)[:, None, None]
    cos_a = np.cos(angle).astype(f32)[:, None, None]
    sin_a = np.sin(angle).astype(f32)[:, None, None]
    # Rotate into the shape's own frame: its local +x axis points along `angle` on screen.
    lx = dx * cos_a + dy * sin_a  # (N, h, w)
    ly = dy * cos_a - dx * sin_a  # (N, h, w)
    dist = np.hypot(lx, ly)
    rad = radius.astype(f32)[:, None, None]
    if shape.vertices is None:
        edge = rad
    else:
        safe = np.maximum(dist, f32(1e-3))
        edge = shape.radius_at(lx / safe, ly / safe) * rad
    # Coverage: a linear ramp one pixel wide across the outline.
    cover = np.clip(edge - dist + f32(0.5), 0.0, 1.0)
    cover *= opacity.astype(f32)[:, None, None]

    fill = np.asarray(colour, dtype=f32)
    if marker_colour is None:
        paint: np.ndarray = np.broadcast_to(fill, (*cover.shape, 3))
    else:
        mdist = np.hypot(lx - rad * f32(marker_offset), ly)
        mcover = np.clip(rad * f32(marker_radius) - mdist + f32(0.5), 0.0, 1.0)
        paint = fill + (np.asarray(marker_colour, dtype=f32) - fill) * mcover[..., None]
    region = canvas[:, y0:y1, x0:x1]
    region += (paint - region) * cover[..., None]
