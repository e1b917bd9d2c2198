"""Scene sampling and rasterisation for the shapes world (see ``shapes_world.py``).

A scene is 1-2 textured stuff regions (sky above a wavy horizon, or one or two ground types)
and 1-4 shapes drawn in order, each at its own constant depth, later shapes nearer and
occluding earlier ones. Pixel (i, j) covers [j, j+1) x [i, i+1); a pixel belongs to a shape when
its centre (j + 0.5, i + 0.5) is inside it, so masks are exact and anti-aliasing free.
Everything draws from one ``numpy.random.Generator`` in a fixed order (reproducible).
"""
from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np

__all__ = [
    "SHAPES_CATEGORIES",
    "SHAPE_COLORS",
    "STAR_KEYPOINT_NAMES",
    "STAR_KEYPOINT_FLIP_MAP",
    "STAR_KEYPOINT_SKELETON",
    "STAR_KEYPOINT_CONNECTION_RULES",
    "DEPTH_SCALE",
    "SKY_DEPTH_M",
    "MAX_DEPTH_M",
    "Segment",
    "Scene",
    "sample_scene",
]

# Things first, then stuff. Ids are non-contiguous on purpose (like COCO) so that every
# consumer must go through the dataset-id -> contiguous-id maps.
SHAPES_CATEGORIES: List[Dict[str, object]] = [
    {"id": 1, "name": "circle", "isthing": 1, "color": [220, 20, 60], "supercategory": "shape"},
    {"id": 3, "name": "square", "isthing": 1, "color": [0, 0, 142], "supercategory": "shape"},
    {"id": 4, "name": "triangle", "isthing": 1, "color": [119, 11, 32], "supercategory": "shape"},
    {"id": 7, "name": "ring", "isthing": 1, "color": [0, 128, 128], "supercategory": "shape"},
    {"id": 9, "name": "star", "isthing": 1, "color": [250, 170, 30], "supercategory": "shape"},
    {"id": 102, "name": "sky", "isthing": 0, "color": [70, 130, 180], "supercategory": "sky"},
    {"id": 125, "name": "grass", "isthing": 0, "color": [107, 142, 35], "supercategory": "ground"},
    {"id": 148, "name": "water", "isthing": 0, "color": [0, 90, 140], "supercategory": "water"},
    {"id": 154, "name": "sand", "isthing": 0, "color": [210, 180, 120], "supercategory": "ground"},
]
_CAT_ID = {c["name"]: c["id"] for c in SHAPES_CATEGORIES}
_THING_NAMES = [c["name"] for c in SHAPES_CATEGORIES if c["isthing"]]
_GROUND_NAMES = ("grass", "water", "sand")

# Clear colours that stand out against every background texture (no green: grass).
SHAPE_COLORS: Dict[str, Tuple[int, int, int]] = {
    "red": (215, 35, 35),
    "yellow": (245, 210, 30),
    "blue": (35, 70, 220),
    "purple": (140, 60, 185),
    "black": (25, 25, 25),
}

# Stars are nearly upright (|rotation| <= 18 deg), so each tip keeps its name; a horizontal flip
# swaps left and right tips. Order: clockwise from the top.
STAR_KEYPOINT_NAMES = ("top", "upper_right", "lower_right", "lower_left", "upper_left")
STAR_KEYPOINT_FLIP_MAP = (("upper_right", "upper_left"), ("lower_right", "lower_left"))
STAR_KEYPOINT_SKELETON = ((1, 2), (2, 3), (3, 4), (4, 5), (5, 1))  # 1-based, COCO style
STAR_KEYPOINT_CONNECTION_RULES = [
    (STAR_KEYPOINT_NAMES[a - 1], STAR_KEYPOINT_NAMES[b - 1], color)
    for (a, b), color in zip(
        STAR_KEYPOINT_SKELETON,
        [(255, 128, 0), (51, 153, 255), (153, 255, 153), (255, 102, 204), (255, 255, 77)],
    )
]

DEPTH_SCALE = 1000.0  # depth PNG value / DEPTH_SCALE = metres
SKY_DEPTH_M = 40.0
MAX_DEPTH_M = 50.0  # above every depth in the data (sky is the farthest)
_GROUND_MAX_DEPTH_M = 30.0
_SHAPE_DEPTH_RANGE_M = (1.2, 2.8)  # all nearer than the nearest ground (3 m)

# Shape extent (circumscribed diameter) as a fraction of the image side: 20-46 px at 128 px.
_SIZE_RANGE = (20 / 128, 46 / 128)
_MAX_SHAPES = 4
# A shape hidden below this visible fraction (or area) is removed from the scene entirely.
_MIN_VISIBLE_FRACTION = 0.4
_MIN_VISIBLE_AREA_FRACTION = 24 / 128**2


@dataclass(frozen=True)
class Shape:
    """One drawn thing. Coordinates are continuous pixels (x right, y down)."""

    name: str
    color: str
    center: Tuple[float, float]
    radius: float  # circumscribed radius
    angle: float  # rotation, radians
    depth: float  # metres


@dataclass
class Segment:
    """One panoptic segment. ``mask`` is (H, W) bool; thing fields are ``None`` for stuff."""

    id: int
    category_id: int
    name: str
    mask: np.ndarray
    shape: Optional[Shape] = None
    keypoints: Optional[np.ndarray] = None  # (5, 3): continuous x, y, visibility (stars only)


@dataclass
class Scene:
    """A rendered scene: ``image`` (H, W, 3) uint8, ``segment_map`` (H, W) int64 panoptic ids
    (0 = unlabeled), ``depth`` (H, W) float64 metres; ``segments`` lists things in drawing order
    (back to front), then stuff in category order."""

    image: np.ndarray
    segment_map: np.ndarray
    depth: np.ndarray
    segments: List[Segment]

    @property
    def things(self) -> List[Segment]:
        return [s for s in self.segments if s.shape is not None]

    @property
    def stuff(self) -> List[Segment]:
        return [s for s in self.segments if s.shape is None]


def sample_scene(rng: np.random.Generator, size: int) -> Scene:
    """Sample and render one ``size`` x ``size`` scene."""
    ys = (np.arange(size, dtype=np.float64) + 0.5)[:, None]
    xs = (np.arange(size, dtype=np.float64) + 0.5)[None, :]
    stuff_map, depth = _sample_layout(rng, size, xs, ys)
    image = np.zeros((size, size, 3), dtype=np.float64)
    for name in (c["name"] for c in SHAPES_CATEGORIES if not c["isthing"]):
        region = stuff_map == _CAT_ID[name]
        if region.any():
            image[region] = _texture(name, rng, size, xs, ys)[region]

    shapes = _sample_shapes(rng, size)
    full_masks = [_shape_mask(s, xs, ys) for s in shapes]
    # Back to front would need the future; front to back decides visibility directly: a shape
    # is kept iff enough of it survives the shapes kept in front of it.
    covered = np.zeros((size, size), dtype=bool)
    kept = []
    min_area = _MIN_VISIBLE_AREA_FRACTION * size * size
    for i in reversed(range(len(shapes))):
        visible = full_masks[i] & ~covered
        if visible.sum() >= max(min_area, _MIN_VISIBLE_FRACTION * full_masks[i].sum()):
            kept.append(i)
            covered |= full_masks[i]
    kept.reverse()

    segment_map = np.zeros((size, size), dtype=np.int64)
    instance_count: Dict[int, int] = {}
    things = []
    for i in kept:  # back to front: later shapes overwrite
        shape, mask = shapes[i], full_masks[i]
        image[mask] = _shape_colors(shape, rng, xs, ys)[mask]
        depth[mask] = shape.depth
        cat_id = _CAT_ID[shape.name]
        instance_count[cat_id] = instance_count.get(cat_id, 0) + 1
        seg_id = cat_id * 1000 + instance_count[cat_id]
        segment_map[mask] = seg_id
        things.append(Segment(seg_id, cat_id, shape.name, None, shape, None))
    for seg, i in zip(things, kept):
        seg.mask = segment_map == seg.id
        if seg.name == "star":
            seg.keypoints = _star_keypoints(shapes[i], shapes, full_masks, kept, i, size)

    stuff = []
    for c in SHAPES_CATEGORIES:
        if c["isthing"]:
            continue
        mask = (stuff_map == c["id"]) & (segment_map == 0)
        if mask.any():  # a stuff region entirely hidden by shapes has no segment
            seg_id = c["id"] * 1000 + 1
            segment_map[mask] = seg_id
            stuff.append(Segment(seg_id, c["id"], c["name"], mask))
    image = np.clip(np.round(image), 0, 255).astype(np.uint8)
    return Scene(image=image, segment_map=segment_map, depth=depth, segments=things + stuff)


# ------------------------------------------------------------------------------------------
# Stuff: layout, depth planes and textures
# ------------------------------------------------------------------------------------------
def _wavy_line(rng, size, xs, lo, hi) -> np.ndarray:
    """(1, W) row positions of a gently waving boundary with mean in [lo, hi) * size."""
    mean = rng.uniform(lo, hi) * size
    amplitude = rng.uniform(0.0, 0.04) * size
    period = rng.uniform(0.6, 1.5) * size
    return mean + amplitude * np.sin(2 * np.pi * xs / period + rng.uniform(0, 2 * np.pi))


def _sample_layout(rng, size, xs, ys) -> Tuple[np.ndarray, np.ndarray]:
    """Stuff category map (H, W) and stuff depth (H, W) in metres."""
    layout = rng.choice(["sky", "single", "shore"], p=[0.6, 0.15, 0.25])
    grounds = rng.permutation(len(_GROUND_NAMES))
    ground, other = _CAT_ID[_GROUND_NAMES[grounds[0]]], _CAT_ID[_GROUND_NAMES[grounds[1]]]
    if layout == "sky":
        horizon = _wavy_line(rng, size, xs, 0.3, 0.55)
        stuff_map = np.where(ys < horizon, _CAT_ID["sky"], ground)
        # A camera above a ground plane sees depth ~ 1 / (rows below the horizon); 3 m at the
        # bottom row, clipped before the horizon so that the ground stays nearer than the sky.
        below = np.maximum(ys - horizon, 1e-6)
        ground_depth = np.minimum(3.0 * (size - horizon) / below, _GROUND_MAX_DEPTH_M)
        depth = np.where(stuff_map == _CAT_ID["sky"], SKY_DEPTH_M, ground_depth)
        return stuff_map, depth
    if layout == "single":
        stuff_map = np.full((size, size), ground)
    else:
        boundary = _wavy_line(rng, size, xs, 0.35, 0.65)
        stuff_map = np.where(ys < boundary, other, ground)
    # Looking down on a tilted ground plane: depth falls linearly from the top row to the bottom.
    near, far = rng.uniform(3.0, 4.0), rng.uniform(6.0, 10.0)
    depth = np.broadcast_to(far + (near - far) * ys / size, (size, size)).copy()
    return stuff_map, depth


def _smooth_noise(rng, size, cells_y: int, cells_x: int) -> np.ndarray:
    """(H, W) bilinear interpolation of a (cells_y+1, cells_x+1) standard normal grid."""
    grid = rng.standard_normal((cells_y + 1, cells_x + 1))
    gy = (np.arange(size) + 0.5) / size * cells_y
    gx = (np.arange(size) + 0.5) / size * cells_x
    y0 = np.minimum(gy.astype(int), cells_y - 1)
    x0 = np.minimum(gx.astype(int), cells_x - 1)
    fy, fx = (gy - y0)[:, None], (gx - x0)[None, :]
    top = grid[y0][:, x0] * (1 - fx) + grid[y0][:, x0 + 1] * fx
    bottom = grid[y0 + 1][:, x0] * (1 - fx) + grid[y0 + 1][:, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy


def _texture(name: str, rng, size, xs, ys) -> np.ndarray:
    """(H, W, 3) float texture of a stuff class over the whole image; seeded, never flat."""
    speckle = rng.standard_normal((size, size))
    if name == "sky":  # deep blue at the top to pale near the horizon, with soft clouds
        t = (ys / size)[..., None]
        base = np.array([70, 130, 215]) * (1 - t) + np.array([175, 210, 245]) * t
        clouds = np.clip(_smooth_noise(rng, size, 3, 4), 0, None)[..., None]
        return base + 25 * clouds + 2 * speckle[..., None]
    if name == "grass":  # vertical blades: noise that varies fast along x, slowly along y
        blades = _smooth_noise(rng, size, 3, max(4, size // 5))
        return np.array([70, 150, 55]) * (1 + 0.18 * blades + 0.06 * speckle)[..., None]
    if name == "water":  # horizontal ripples with a slowly varying phase
        phase = _smooth_noise(rng, size, 4, 4)
        ripples = np.sin(2 * np.pi * (ys / max(4.0, size / 24) + 0.25 * phase))
        return np.array([30, 125, 150]) + (18 * ripples + 3 * speckle)[..., None]
    if name == "sand":  # dunes plus grain
        dunes = _smooth_noise(rng, size, 5, 5)
        return np.array([214, 188, 128]) + (10 * dunes + 12 * speckle)[..., None]
    raise ValueError(f"No texture for stuff class {name!r}")


# ------------------------------------------------------------------------------------------
# Things
# ------------------------------------------------------------------------------------------
def _sample_shapes(rng, size) -> List[Shape]:
    num = int(rng.integers(1, _MAX_SHAPES + 1))
    lo, hi = _SHAPE_DEPTH_RANGE_M
    # Strictly decreasing depths in drawing order: every occluder is nearer than what it hides.
    depths = hi - (hi - lo) * (np.arange(num) + rng.uniform(0.1, 0.9, num)) / _MAX_SHAPES
    colors = list(SHAPE_COLORS)
    shapes = []
    for k in range(num):
        name = _THING_NAMES[int(rng.integers(len(_THING_NAMES)))]
        color = colors[int(rng.integers(len(colors)))]
        radius = rng.uniform(*_SIZE_RANGE) * size / 2
        # Whole shape inside the image, so every star tip is in view.
        cx, cy = rng.uniform(radius + 1, size - radius - 1, 2)
        max_angle = {"square": np.pi / 2, "triangle": 2 * np.pi / 3, "star": np.pi / 10}
        angle = rng.uniform(-1, 1) * max_angle.get(name, 0.0)
        shapes.append(Shape(name, color, (float(cx), float(cy)), float(radius), float(angle),
                            float(depths[k])))
    return shapes


def _polygon(shape: Shape) -> Optional[np.ndarray]:
    """(K, 2) polygon vertices, or ``None`` for round shapes."""
    if shape.name == "square":
        radii, start, count = [1.0], np.pi / 4, 4
    elif shape.name == "triangle":
        radii, start, count = [1.0], -np.pi / 2, 3
    elif shape.name == "star":  # alternating outer tips and inner notches, tip 0 at the top
        radii, start, count = [1.0, 0.45], -np.pi / 2, 10
    else:
        return None
    angles = start + shape.angle + 2 * np.pi * np.arange(count) / count
    r = shape.radius * np.resize(radii, count)
    return np.stack([shape.center[0] + r * np.cos(angles), shape.center[1] + r * np.sin(angles)], 1)


def _star_tips(shape: Shape) -> np.ndarray:
    """(5, 2) tip coordinates in ``STAR_KEYPOINT_NAMES`` order (clockwise from the top)."""
    return _polygon(shape)[::2]


def _shape_mask(shape: Shape, xs, ys) -> np.ndarray:
    """(H, W) bool: pixels whose centre lies inside the shape."""
    dist2 = (xs - shape.center[0]) ** 2 + (ys - shape.center[1]) ** 2
    if shape.name == "circle":
        return np.broadcast_to(dist2 <= shape.radius**2, dist2.shape).copy()
    if shape.name == "ring":
        return (dist2 <= shape.radius**2) & (dist2 >= (0.55 * shape.radius) ** 2)
    # Even-odd rule (valid for the concave star): count edge crossings of a ray towards +x.
    verts = _polygon(shape)
    inside = np.zeros(np.broadcast(xs, ys).shape, dtype=bool)
    for (x0, y0), (x1, y1) in zip(verts, np.roll(verts, -1, axis=0)):
        if y0 == y1:
            continue
        straddles = (y0 > ys) != (y1 > ys)
        x_cross = x0 + (ys - y0) * (x1 - x0) / (y1 - y0)
        inside ^= straddles & (xs < x_cross)
    return inside


def _shape_colors(shape: Shape, rng, xs, ys) -> np.ndarray:
    """(H, W, 3) shape colour with soft shading (light from the top left) and grain."""
    base = np.array(SHAPE_COLORS[shape.color], dtype=np.float64)
    toward_light = ((shape.center[0] - xs) + (shape.center[1] - ys)) / (2 * shape.radius)
    grain = rng.standard_normal(np.broadcast(xs, ys).shape)
    return base * (1 + 0.12 * toward_light)[..., None] + 4 * grain[..., None]


def _star_keypoints(star, shapes, full_masks, kept, index, size) -> np.ndarray:
    """(5, 3) continuous (x, y) of each tip and COCO visibility: 2 visible, 1 occluded (the tip
    pixel is covered by a kept shape drawn later, i.e. nearer)."""
    tips = _star_tips(star)
    px = np.clip(np.floor(tips).astype(int), 0, size - 1)
    in_front = [j for j in kept if j > index]
    vis = np.array(
        [1 if any(full_masks[j][y, x] for j in in_front) else 2 for x, y in px], dtype=np.float64
    )
    return np.concatenate([tips, vis[:, None]], axis=1)
