"""The generator behind the offline `shapes` segmentation dataset (numpy only, seeded).

Each scene is a 64x64 RGB image with one to four shapes (circle, square, triangle) painted in
random order over a textured background, and its mask (0 background, 1 circle, 2 square,
3 triangle; a later shape occludes an earlier one). Colour and texture are drawn independently
of the class, so only the outline tells the classes apart; squares and triangles are rotated;
every image gets an illumination gradient and pixel noise. Same seed, same scenes.
"""

from __future__ import annotations

import numpy as np

SHAPE_CLASSES = ("background", "circle", "square", "triangle")
# Half-size of a shape in pixels (circle radius; a square and a triangle of the same area):
# below ~6 pixels a rotated square and a circle are hard to tell apart even for a person.
MIN_RADIUS, MAX_RADIUS = 10.0, 18.0
MAX_SHAPES = 4
# A shape's colour differs from the background's by at least this much (mean absolute
# difference over RGB in [0, 1]), so every labelled pixel is visible.
MIN_CONTRAST = 0.25


def _texture(rng: np.random.Generator, yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """A random brightness pattern in about [-1, 1]: flat, stripes, checks or smooth blotches."""
    kind = rng.integers(4)
    if kind == 0:
        return np.zeros_like(yy)
    if kind == 1:  # stripes at a random angle and period
        angle, period = rng.uniform(0, np.pi), rng.uniform(4, 12)
        return np.sin(2 * np.pi * (xx * np.cos(angle) + yy * np.sin(angle)) / period)
    if kind == 2:  # checks of a random cell size
        cell = rng.integers(3, 9)
        return np.where(((yy // cell) + (xx // cell)) % 2 == 0, 1.0, -1.0)
    # smooth blotches: a sum of a few random low-frequency waves
    pattern = np.zeros_like(yy)
    for _ in range(3):
        fy, fx, phase = rng.uniform(0.05, 0.25), rng.uniform(0.05, 0.25), rng.uniform(0, 2 * np.pi)
        pattern += np.sin(fy * yy + fx * xx + phase)
    return pattern / 3


def _colour_far_from(rng: np.random.Generator, other: np.ndarray) -> np.ndarray:
    """A random RGB colour at least MIN_CONTRAST away from `other`."""
    while True:
        colour = rng.uniform(0.05, 0.95, size=3)
        if np.abs(colour - other).mean() >= MIN_CONTRAST:
            return colour


def _shape_mask(kind: int, cy: float, cx: float, radius: float, angle: float,
                yy: np.ndarray, xx: np.ndarray) -> np.ndarray:
    """Boolean mask of one shape: 1 circle, 2 square, 3 (equilateral) triangle."""
    dy, dx = yy - cy, xx - cx
    if kind == 1:
        return dy * dy + dx * dx <= radius * radius
    # Rotate the pixel offsets into the shape's frame.
    u = dx * np.cos(angle) + dy * np.sin(angle)
    v = -dx * np.sin(angle) + dy * np.cos(angle)
    if kind == 2:
        # Scaled so a square covers about the area of a circle of the same radius.
        half = radius * 0.886
        return (np.abs(u) <= half) & (np.abs(v) <= half)
    # Triangle: inside the three edges, each at distance r/2 from the centre (r: circumradius),
    # with r = 1.55 radius so its area, too, is close to the circle's.
    inside = np.ones_like(u, dtype=bool)
    r = radius * 1.55
    for k in range(3):
        theta = 2 * np.pi * k / 3
        inside &= (u * np.cos(theta) + v * np.sin(theta)) <= r / 2
    return inside


def generate_scene(rng: np.random.Generator, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """One scene: (size, size, 3) uint8 image and (size, size) uint8 mask of class ids."""
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    background = rng.uniform(0.05, 0.95, size=3)
    amplitude = rng.uniform(0.0, 0.25)
    image = background[None, None, :].astype(np.float32) + amplitude * _texture(rng, yy, xx)[..., None]
    mask = np.zeros((size, size), dtype=np.uint8)
    for _ in range(rng.integers(1, MAX_SHAPES + 1)):
        kind = int(rng.integers(1, 4))
        radius = rng.uniform(MIN_RADIUS, MAX_RADIUS)
        # Centres may lie near the border, so shapes are sometimes cut by the frame.
        cy, cx = rng.uniform(4, size - 4, size=2)
        inside = _shape_mask(kind, cy, cx, radius, rng.uniform(0, 2 * np.pi), yy, xx)
        if not inside.any():
            continue
        colour = _colour_far_from(rng, background)
        shade = rng.uniform(0.0, 0.08) * _texture(rng, yy, xx)
        image[inside] = colour[None, :] + shade[inside][:, None]
        mask[inside] = kind
    # Illumination: a linear gradient in a random direction that brightens one side.
    direction = rng.uniform(0, 2 * np.pi)
    ramp = ((xx - size / 2) * np.cos(direction) + (yy - size / 2) * np.sin(direction)) / size
    image = image * (1.0 + rng.uniform(0.0, 0.6) * ramp)[..., None]
    image = image + rng.normal(0.0, rng.uniform(0.02, 0.06), size=image.shape).astype(np.float32)
    return (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8), mask


def generate_scenes(n: int, seed: int, size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """`n` scenes: images (n, 3, size, size) uint8 and masks (n, size, size) uint8."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, 3, size, size), dtype=np.uint8)
    masks = np.empty((n, size, size), dtype=np.uint8)
    for index in range(n):
        image, mask = generate_scene(rng, size)
        images[index] = image.transpose(2, 0, 1)
        masks[index] = mask
    return images, masks
