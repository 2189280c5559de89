"""The embedded synthetic industrial dataset, written in the MVTec AD layout so `MVTecAD` reads it.

Four categories, each a small procedural renderer:
- `fabric`: a plain-weave cloth (two-tone warp and weft, per-thread jitter, wavy threads, random phase and
  a small rotation); defects `hole`, `stain`, `contamination` (a foreign fibre), `thread` (a pulled thread).
- `brushed_metal`: a brushed steel sheet (anisotropic grain, an anisotropic highlight band, mottling);
  defects `scratch`, `crack`, `stain`, `contamination` (dust particles).
- `nut`: a hex nut seen from above on a dark table (chamfers, turned face, threaded bore, shadow), varying
  position and rotation; defects `scratch`, `crack`, `missing` (a chipped-off piece), `stain`.
- `screw`: a pan-head screw seen from the side on a light table (threads, cylinder shading, tip), grey-scale
  like MVTec's screw, with varying position and angle; defects `scratch`, `missing` (broken tip or chipped
  thread), `contamination`, `stain`.

Each image is rendered as layers (background, object shading, object coverage) so that a defect changes a
known set of pixels: the mask is exactly the pixels the defect's alpha (or the removed material) covers.
Defects are graded: size and contrast are drawn per instance, so some are bold and some are subtle.
Normal variation a detector must ignore: illumination gain and gradient, colour cast, sensor noise,
texture phase/rotation/randomness and, for the objects, position and rotation.

Determinism: every image has its own numpy Generator seeded from (seed, category, split, defect, index),
and PNGs are written with fixed settings and no metadata, so the same seed gives byte-identical files.
"""
from __future__ import annotations

import fcntl
import json
import math
import os
import shutil
import tempfile
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.ndimage import gaussian_filter, map_coordinates

GENERATOR_VERSION = 1
# Per category; below it one process renders every category (a spawned process takes ~0.5 s to start, a default
# 128-px category ~2.9 s to render on this VM).
PARALLEL_MIN_PIXELS = 100 * 128 * 128
MARKER = "synthetic.json"
TEXTURES = ("fabric", "brushed_metal")
OBJECTS = ("nut", "screw")
CATEGORIES = TEXTURES + OBJECTS
DEFECTS: dict[str, tuple[str, ...]] = {
    "fabric": ("hole", "stain", "contamination", "thread"),
    "brushed_metal": ("scratch", "crack", "stain", "contamination"),
    "nut": ("scratch", "crack", "missing", "stain"),
    "screw": ("scratch", "missing", "contamination", "stain"),
}
GREY_CATEGORIES = ("screw",)  # written as 8-bit grey PNGs, like MVTec's screw, grid and zipper
DEFAULT_COUNTS = {"n_train": 120, "n_test_good": 30, "n_test_defective": 40}


# ---------------------------------------------------------------------------------------------------
# small drawing primitives (pixel units; X, Y are pixel-centre coordinates)
# ---------------------------------------------------------------------------------------------------
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    c = np.arange(size, dtype=np.float64) + 0.5
    return np.meshgrid(c, c, indexing="xy")  # X[row, col] = col + 0.5


def _cover(sdf: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Coverage from a signed distance in pixels (negative inside): an anti-aliased edge `soft` px wide."""
    return np.clip(0.5 - sdf / soft, 0.0, 1.0)


def _noise(rng: np.random.Generator, size: int, sigma, wrap: bool = True) -> np.ndarray:
    """White noise low-passed by a Gaussian (sigma may be (sy, sx)), rescaled to unit standard deviation."""
    field = gaussian_filter(rng.standard_normal((size, size)), sigma, mode="wrap" if wrap else "reflect")
    return field / (field.std() + 1e-12)


def _sample_wrapped(field: np.ndarray, X: np.ndarray, Y: np.ndarray) -> np.ndarray:
    """Bilinear sample of a tileable field at (X, Y) pixel coordinates: lets a noise field be rotated."""
    return map_coordinates(field, [Y - 0.5, X - 0.5], order=1, mode="grid-wrap")


def _polyline_distance(X: np.ndarray, Y: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Distance from every pixel to a polyline given as [N,2] (x, y) points."""
    best = np.full(X.shape, np.inf)
    for (x0, y0), (x1, y1) in zip(points[:-1], points[1:]):
        dx, dy = x1 - x0, y1 - y0
        t = np.clip(((X - x0) * dx + (Y - y0) * dy) / max(dx * dx + dy * dy, 1e-12), 0.0, 1.0)
        np.minimum(best, np.hypot(X - x0 - t * dx, Y - y0 - t * dy), out=best)
    return best


def _walk(rng: np.random.Generator, start, heading: float, length: float, n: int, turn: float) -> np.ndarray:
    """A random walk of n steps: a scratch (small turn), a crack (large turn) or a fibre (smooth curl)."""
    pts = [np.asarray(start, dtype=np.float64)]
    step = length / n
    for _ in range(n):
        heading += rng.normal(0.0, turn)
        pts.append(pts[-1] + step * np.array([math.cos(heading), math.sin(heading)]))
    return np.stack(pts)


def _jagged(rng: np.random.Generator, start, heading: float, length: float, n: int, jitter: float) -> np.ndarray:
    """A crack: short segments that zigzag about one main direction (each step's turn is independent)."""
    pts = [np.asarray(start, dtype=np.float64)]
    step = length / n
    for _ in range(n):
        h = heading + rng.normal(0.0, jitter)
        pts.append(pts[-1] + step * np.array([math.cos(h), math.sin(h)]))
    return np.stack(pts)


def _line_alpha(X, Y, points, width: float) -> np.ndarray:
    """Anti-aliased stroke of a polyline; `width` in pixels (at least one pixel so the mask is connected)."""
    return _cover(_polyline_distance(X, Y, points) - max(width, 1.0) / 2.0)


def _blob_alpha(rng, X, Y, cx: float, cy: float, radius: float, roughness: float, soft: float = 1.0) -> np.ndarray:
    """An irregular blob: a circle whose radius is perturbed by a few random angular harmonics."""
    dx, dy = X - cx, Y - cy
    theta = np.arctan2(dy, dx)
    r_theta = np.ones_like(theta)
    for k in range(2, 7):
        r_theta += roughness * rng.normal() / k * np.cos(k * theta + rng.uniform(0, 2 * math.pi))
    return _cover(np.hypot(dx, dy) - radius * np.clip(r_theta, 0.3, None), soft)


def _pick_point(rng: np.random.Generator, region: np.ndarray) -> tuple[float, float]:
    """A pixel centre drawn uniformly from where `region` > 0.5."""
    rows, cols = np.nonzero(region > 0.5)
    i = int(rng.integers(len(rows)))
    return cols[i] + 0.5, rows[i] + 0.5


def _grade(rng: np.random.Generator, low: float, high: float) -> float:
    """A value drawn uniformly between low and high (each defect's strength: a range whose low end is subtle)."""
    return low + (high - low) * rng.uniform()


# ---------------------------------------------------------------------------------------------------
# scenes: layers a defect can edit, composed at the end
# ---------------------------------------------------------------------------------------------------
@dataclass
class Scene:
    background: np.ndarray  # [H,W,3]: what shows where there is no material
    surface: np.ndarray  # [H,W,3]: the shaded material
    coverage: np.ndarray  # [H,W] in [0,1]: how much material covers each pixel
    defect_region: np.ndarray  # [H,W]: where a defect may be centred
    size: int
    X: np.ndarray
    Y: np.ndarray
    geometry: dict

    def compose(self) -> np.ndarray:
        c = self.coverage[..., None]
        return self.background * (1.0 - c) + self.surface * c


def _paint(scene: Scene, alpha: np.ndarray, colour, strength: float) -> None:
    """Blend `colour` into the material where alpha is, by `strength` (the defect's contrast)."""
    a = (alpha * strength)[..., None]
    scene.surface = scene.surface * (1.0 - a) + np.asarray(colour, dtype=np.float64) * a


def _shift(scene: Scene, alpha: np.ndarray, delta: float) -> None:
    """Brighten (delta > 0) or darken the material where alpha is."""
    scene.surface = scene.surface + (alpha * delta)[..., None]


# -- fabric -----------------------------------------------------------------------------------------
def _fabric(rng: np.random.Generator, size: int) -> Scene:
    X, Y = _grid(size)
    period = size / 16.0 * rng.uniform(0.97, 1.03)
    angle = math.radians(rng.uniform(-3.0, 3.0))
    ox, oy = rng.uniform(0, 2 * period, 2)
    # threads are not straight: a smooth displacement field bends them by about half a pixel
    wobble = 0.6 * size / 128.0
    xr = math.cos(angle) * X + math.sin(angle) * Y + ox + wobble * _noise(rng, size, size / 10)
    yr = -math.sin(angle) * X + math.cos(angle) * Y + oy + wobble * _noise(rng, size, size / 10)
    i = np.floor(xr / period)
    j = np.floor(yr / period)
    fx, fy = xr / period - i, yr / period - j
    # plain weave: warp i lies over weft j where i + j is even
    over_warp = 0.5 + 0.5 * np.cos(math.pi * (yr / period - 0.5 + i))
    over_weft = 0.5 + 0.5 * np.cos(math.pi * (xr / period - 0.5 + j + 1))
    h_warp = np.sin(math.pi * fx) ** 0.6 * (0.45 + 0.55 * over_warp)
    h_weft = np.sin(math.pi * fy) ** 0.6 * (0.45 + 0.55 * over_weft)
    warp_on_top = h_warp >= h_weft
    height = np.maximum(h_warp, h_weft)
    # per-thread thickness/dye irregularity and fibre texture running along each thread
    jitter_warp = rng.normal(0, 0.05, 64)[(i % 64).astype(int)]
    jitter_weft = rng.normal(0, 0.05, 64)[(j % 64).astype(int)]
    fibre_warp = _noise(rng, size, (2.5 * size / 128, 0.4 * size / 128))
    fibre_weft = _noise(rng, size, (0.4 * size / 128, 2.5 * size / 128))
    warp_colour = np.array([0.66, 0.58, 0.45]) * rng.uniform(0.97, 1.03)
    weft_colour = np.array([0.60, 0.52, 0.40]) * rng.uniform(0.97, 1.03)
    colour = np.where(warp_on_top[..., None], warp_colour * (1 + jitter_warp)[..., None], weft_colour * (1 + jitter_weft)[..., None])
    shade = 0.3 + 0.7 * height + 0.05 * np.where(warp_on_top, fibre_warp, fibre_weft)
    surface = colour * shade[..., None]
    backing = np.full((size, size, 3), 0.07) + 0.02 * _noise(rng, size, 1.5)[..., None]
    ones = np.ones((size, size))
    return Scene(backing, surface, ones.copy(), ones, size, X, Y, {"period": period, "angle": angle})


def _fabric_defect(kind: str, rng: np.random.Generator, s: Scene) -> np.ndarray:
    X, Y, S = s.X, s.Y, s.size
    cx, cy = _pick_point(rng, s.defect_region)
    if kind == "hole":
        radius = _grade(rng, 0.02, 0.08) * S
        alpha = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.6)
        opacity = _grade(rng, 0.55, 1.0)  # a thin, worn spot lets less of the backing through
        s.coverage = s.coverage * (1.0 - alpha * opacity)
        # frayed thread ends poking into the hole, drawn over it
        for _ in range(int(rng.integers(2, 5))):
            ang = rng.uniform(0, 2 * math.pi)
            start = (cx + 1.2 * radius * math.cos(ang), cy + 1.2 * radius * math.sin(ang))
            end = (cx + rng.uniform(0.2, 0.6) * radius * math.cos(ang), cy + rng.uniform(0.2, 0.6) * radius * math.sin(ang))
            fray = _line_alpha(X, Y, np.array([start, end]), 1.0) * alpha
            _paint(s, fray, [0.55, 0.48, 0.36], 1.0)
            s.coverage = np.maximum(s.coverage, fray)
        return alpha > 0.5
    if kind == "stain":
        radius = _grade(rng, 0.04, 0.13) * S
        alpha = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.5, soft=max(1.0, 0.25 * radius))
        colour = [[0.35, 0.22, 0.10], [0.20, 0.20, 0.22], [0.80, 0.78, 0.70]][int(rng.integers(3))]  # rust, oil, bleach
        _paint(s, alpha, colour, _grade(rng, 0.2, 0.7))
        return alpha > 0.5
    if kind == "contamination":
        length = _grade(rng, 0.12, 0.4) * S
        curve = _walk(rng, (cx, cy), rng.uniform(0, 2 * math.pi), length, 14, 0.25)
        alpha = _line_alpha(X, Y, curve, _grade(rng, 1.2, 2.2))
        colour = [[0.08, 0.07, 0.07], [0.55, 0.08, 0.08], [0.10, 0.15, 0.50]][int(rng.integers(3))]
        _paint(s, alpha, colour, _grade(rng, 0.45, 0.95))
        return alpha > 0.3
    if kind == "thread":
        # a pulled thread: a loose, slightly wavy strand lying along the weave, brighter and thicker
        period, angle = s.geometry["period"], s.geometry["angle"]
        along = angle + (0.0 if rng.uniform() < 0.5 else math.pi / 2)
        length = _grade(rng, 0.15, 0.6) * S
        curve = _walk(rng, (cx, cy), along, length, 10, 0.05)
        curve -= (curve[-1] - curve[0]) / 2  # centred on the picked point
        alpha = _line_alpha(X, Y, curve, period * rng.uniform(0.45, 0.8))
        _paint(s, alpha, [0.78, 0.70, 0.56], _grade(rng, 0.35, 0.9))
        return alpha > 0.3
    raise ValueError(kind)


# -- brushed metal ----------------------------------------------------------------------------------
def _brushed_metal(rng: np.random.Generator, size: int) -> Scene:
    X, Y = _grid(size)
    angle = math.radians(rng.uniform(-4.0, 4.0))
    k = size / 128.0
    u = math.cos(angle) * X + math.sin(angle) * Y
    v = -math.sin(angle) * X + math.cos(angle) * Y
    brush = _sample_wrapped(_noise(rng, size, (0.5 * k, 16 * k)), u, v)
    grain = _sample_wrapped(_noise(rng, size, (0.7 * k, 4 * k)), u, v)
    mottle = _noise(rng, size, size / 5)
    # brushed metal reflects a light as a band across the brushing direction
    band_at = rng.uniform(0.1, 0.9) * size
    band = 0.06 * np.exp(-(((u - band_at) / (0.25 * size)) ** 2))
    grey = rng.uniform(0.50, 0.58) + 0.045 * brush + 0.02 * grain + 0.02 * mottle + band
    tint = np.array([0.97, 1.0, 1.04])
    surface = grey[..., None] * tint
    ones = np.ones((size, size))
    return Scene(np.zeros_like(surface), surface, ones.copy(), ones, size, X, Y, {"angle": angle})


def _metal_defect(kind: str, rng: np.random.Generator, s: Scene) -> np.ndarray:
    X, Y, S = s.X, s.Y, s.size
    cx, cy = _pick_point(rng, s.defect_region)
    if kind == "scratch":
        length = _grade(rng, 0.12, 0.55) * S
        path = _walk(rng, (cx, cy), s.geometry["angle"] + rng.uniform(0.3, math.pi - 0.3), length, 6, 0.04)
        path -= (path[-1] - path[0]) / 2
        alpha = _line_alpha(X, Y, path, _grade(rng, 1.0, 2.0))
        _shift(s, alpha, (1 if rng.uniform() < 0.6 else -1) * _grade(rng, 0.06, 0.35))
        return alpha > 0.3
    if kind == "crack":
        length = _grade(rng, 0.1, 0.35) * S
        heading = rng.uniform(0, 2 * math.pi)
        main = _jagged(rng, (cx, cy), heading, length, 14, 0.7)
        alpha = _line_alpha(X, Y, main, _grade(rng, 1.0, 1.4))
        for _ in range(int(rng.integers(0, 3))):  # side branches
            at = main[int(rng.integers(2, len(main) - 1))]
            branch = _jagged(rng, at, heading + rng.choice([-1, 1]) * rng.uniform(0.5, 1.2), length * rng.uniform(0.2, 0.45), 5, 0.7)
            alpha = np.maximum(alpha, _line_alpha(X, Y, branch, 1.0))
        _paint(s, alpha, [0.08, 0.08, 0.09], _grade(rng, 0.3, 0.8))
        return alpha > 0.3
    if kind == "stain":
        radius = _grade(rng, 0.04, 0.14) * S
        alpha = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.5, soft=max(1.0, 0.25 * radius))
        colour = [[0.45, 0.28, 0.14], [0.30, 0.30, 0.34], [0.62, 0.55, 0.40]][int(rng.integers(3))]  # rust, oil film, residue
        _paint(s, alpha, colour, _grade(rng, 0.2, 0.7))
        return alpha > 0.5
    if kind == "contamination":
        alpha = np.zeros_like(X)
        spread = _grade(rng, 0.02, 0.08) * S
        for _ in range(int(rng.integers(3, 9))):
            px, py = cx + rng.normal(0, spread), cy + rng.normal(0, spread)
            alpha = np.maximum(alpha, _blob_alpha(rng, X, Y, px, py, rng.uniform(0.8, 2.6) * S / 128, roughness=0.4))
        _paint(s, alpha, [0.12, 0.11, 0.10], _grade(rng, 0.35, 0.9))
        return alpha > 0.3
    raise ValueError(kind)


# -- hex nut ----------------------------------------------------------------------------------------
def _nut(rng: np.random.Generator, size: int) -> Scene:
    X, Y = _grid(size)
    cx = size / 2 + rng.normal(0, 0.01 * size)
    cy = size / 2 + rng.normal(0, 0.01 * size)
    theta = math.radians(rng.uniform(-10.0, 10.0))
    apothem = 0.34 * size * rng.uniform(0.98, 1.02)
    dx, dy = X - cx, Y - cy
    r = np.hypot(dx, dy)
    phi = np.arctan2(dy, dx)
    hex_sdf = np.max([np.abs(dx * math.cos(theta + k * math.pi / 3) + dy * math.sin(theta + k * math.pi / 3)) for k in range(3)], axis=0) - apothem
    r_face, r_bore = 0.95 * apothem, 0.52 * apothem
    r_hole, r_bevel = 0.82 * r_bore, 1.15 * r_bore
    light = rng.uniform(-2.6, -2.0)  # light from the upper left, varying a little
    steel = np.array([0.62, 0.62, 0.64]) * rng.uniform(0.96, 1.04)
    turning = 0.025 * np.cos(2 * math.pi * r / (0.022 * size) + 0.5 * _noise(rng, size, 3))
    face = 0.72 + 0.07 * (np.cos(light) * dx + np.sin(light) * dy) / apothem + turning + 0.015 * _noise(rng, size, 1.0)
    chamfer = 0.48 + 0.28 * np.cos(phi - light)
    bevel = 0.46 - 0.22 * np.cos(phi - light)
    thread = 0.20 + 0.10 * (0.5 + 0.5 * np.cos(2 * math.pi * (r - r_hole) / (0.03 * size) + phi))
    # zones blended over one pixel, so their circular borders are anti-aliased like the outline
    shade = thread
    for zone, inner_radius in ((bevel, r_bore), (face, r_bevel), (chamfer, r_face)):
        w = _cover(inner_radius - r)
        shade = shade * (1 - w) + zone * w
    surface = shade[..., None] * steel
    body = _cover(hex_sdf)
    coverage = body * _cover(r_hole - r)
    # dark table with a soft shadow cast away from the light
    table = 0.13 + 0.015 * _noise(rng, size, 2.0)
    sx, sy = -3 * math.cos(light) * size / 128, -3 * math.sin(light) * size / 128
    shadow = gaussian_filter(_cover(np.max([np.abs((dx - sx) * math.cos(theta + k * math.pi / 3) + (dy - sy) * math.sin(theta + k * math.pi / 3)) for k in range(3)], axis=0) - apothem), 2.5 * size / 128)
    background = (table * (1 - 0.5 * shadow))[..., None] * np.ones(3)
    region = (body > 0.5) & (r > r_bevel + 1) & (hex_sdf < -2)
    geometry = {"cx": cx, "cy": cy, "theta": theta, "apothem": apothem, "r_bore": r_bore, "r_bevel": r_bevel}
    return Scene(background, surface, coverage, region.astype(np.float64), size, X, Y, geometry)


def _nut_defect(kind: str, rng: np.random.Generator, s: Scene) -> np.ndarray:
    X, Y, S, g = s.X, s.Y, s.size, s.geometry
    on_part = s.coverage > 0.5
    if kind == "scratch":
        cx, cy = _pick_point(rng, s.defect_region)
        length = _grade(rng, 0.08, 0.3) * S
        path = _walk(rng, (cx, cy), rng.uniform(0, 2 * math.pi), length, 5, 0.08)
        path -= (path[-1] - path[0]) / 2
        alpha = _line_alpha(X, Y, path, _grade(rng, 1.0, 1.8)) * s.coverage
        _shift(s, alpha, (1 if rng.uniform() < 0.5 else -1) * _grade(rng, 0.08, 0.35))
        return (alpha > 0.3) & on_part
    if kind == "crack":
        ang = rng.uniform(0, 2 * math.pi)
        start = (g["cx"] + g["r_bore"] * 1.02 * math.cos(ang), g["cy"] + g["r_bore"] * 1.02 * math.sin(ang))
        length = _grade(rng, 0.35, 1.0) * (g["apothem"] - g["r_bore"])
        path = _jagged(rng, start, ang, length, 10, 0.6)
        alpha = _line_alpha(X, Y, path, _grade(rng, 1.0, 1.4)) * s.coverage
        _paint(s, alpha, [0.05, 0.05, 0.05], _grade(rng, 0.35, 0.85))
        return (alpha > 0.3) & on_part
    if kind == "missing":
        # a piece chipped off the rim: centre the cut just outside the hexagon, near a corner or a flat
        ang = g["theta"] + rng.uniform(0, 2 * math.pi)
        reach = g["apothem"] * rng.uniform(1.0, 1.12)
        cx, cy = g["cx"] + reach * math.cos(ang), g["cy"] + reach * math.sin(ang)
        radius = _grade(rng, 0.06, 0.22) * g["apothem"] + 2
        cut = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.35)
        before = s.coverage
        s.coverage = s.coverage * (1 - cut)
        # the fracture face is rough and catches less light
        edge = np.clip(gaussian_filter(cut, 1.0) - cut, 0, 1) * 3
        _paint(s, np.clip(edge, 0, 1), [0.25, 0.25, 0.26], 0.6)
        return (cut > 0.5) & (before > 0.5)
    if kind == "stain":
        cx, cy = _pick_point(rng, s.defect_region)
        radius = _grade(rng, 0.04, 0.12) * S
        alpha = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.5, soft=max(1.0, 0.25 * radius)) * s.coverage
        colour = [[0.50, 0.32, 0.15], [0.25, 0.30, 0.45], [0.30, 0.30, 0.30]][int(rng.integers(3))]  # rust, heat tint, grime
        _paint(s, alpha, colour, _grade(rng, 0.25, 0.7))
        return (alpha > 0.5) & on_part
    raise ValueError(kind)


# -- screw ------------------------------------------------------------------------------------------
def _screw(rng: np.random.Generator, size: int) -> Scene:
    X, Y = _grid(size)
    cx = size / 2 + rng.normal(0, 0.02 * size)
    cy = size / 2 + rng.normal(0, 0.02 * size)
    theta = math.radians(rng.uniform(-10.0, 10.0))
    k = size / 128.0
    length = 96 * k * rng.uniform(0.98, 1.02)
    r_shaft, depth, pitch = 6.0 * k, 1.6 * k, 4.4 * k
    r_head, head_len, tip_len = 12.0 * k, 12.0 * k, 10.0 * k
    u = (X - cx) * math.cos(theta) + (Y - cy) * math.sin(theta)  # along the axis, head at -length/2
    v = -(X - cx) * math.sin(theta) + (Y - cy) * math.cos(theta)
    u0 = -length / 2
    t_head = np.clip((u - u0) / head_len, 0, 1)
    head_half = r_head * (1 - (1 - t_head) ** 4) ** 0.25  # pan head: domed end, flat underside
    phase = (u + 0.25 * v) / pitch  # slanted thread ridges
    tooth = 2 * np.abs(phase - np.floor(phase) - 0.5)
    shaft_half = r_shaft + depth * tooth
    tip_start = length / 2 - tip_len
    shaft_half = np.where(u > tip_start, shaft_half * np.clip((length / 2 - u) / tip_len, 0, 1) ** 0.8, shaft_half)
    in_head = u < u0 + head_len
    half = np.where(in_head, head_half, shaft_half)
    sdf = np.maximum(np.abs(v) - half, np.maximum(u0 - u, u - length / 2))
    body = _cover(sdf)
    across = np.clip(v / np.maximum(half, 1e-6), -1, 1)
    # cylinder shading of polished steel: dim flanks, a highlight stripe above the axis
    cylinder = 0.30 + 0.25 * np.sqrt(1 - across**2) + 0.35 * np.exp(-(((across + 0.35) / 0.2) ** 2))
    ridges = np.where(in_head, 1.0, 0.72 + 0.28 * np.cos(2 * math.pi * phase))
    grey = cylinder * ridges + 0.012 * _noise(rng, size, 1.0)
    surface = grey[..., None] * np.ones(3)
    table = 0.78 + 0.03 * _noise(rng, size, size / 4, wrap=False)
    shadow = gaussian_filter(np.roll(body, (int(round(3 * k)), int(round(2 * k))), axis=(0, 1)), 2.5 * k)
    background = (table * (1 - 0.35 * shadow))[..., None] * np.ones(3)
    region = (sdf < -1.5).astype(np.float64)
    geometry = {"cx": cx, "cy": cy, "theta": theta, "length": length, "r_shaft": r_shaft, "tip_start": tip_start, "u": u, "v": v, "half": half}
    return Scene(background, surface, body, region, size, X, Y, geometry)


def _screw_defect(kind: str, rng: np.random.Generator, s: Scene) -> np.ndarray:
    X, Y, S, g = s.X, s.Y, s.size, s.geometry
    on_part = s.coverage > 0.5
    if kind == "scratch":
        cx, cy = _pick_point(rng, s.defect_region)
        length = _grade(rng, 0.06, 0.2) * S
        path = _walk(rng, (cx, cy), g["theta"] + rng.normal(0, 0.5), length, 4, 0.08)
        path -= (path[-1] - path[0]) / 2
        alpha = _line_alpha(X, Y, path, _grade(rng, 1.0, 1.6)) * s.coverage
        _shift(s, alpha, (1 if rng.uniform() < 0.5 else -1) * _grade(rng, 0.1, 0.4))
        return (alpha > 0.3) & on_part
    if kind == "missing":
        u, v = g["u"], g["v"]
        before = s.coverage
        if rng.uniform() < 0.5:  # broken tip
            cut_at = g["tip_start"] - _grade(rng, -0.5, 1.0) * 0.12 * g["length"]
            cut = _cover(cut_at - u + 0.3 * v * rng.normal())
        else:  # chipped thread on one flank
            side = rng.choice([-1.0, 1.0])
            along = rng.uniform(-0.25, 0.35) * g["length"]
            px = g["cx"] + along * math.cos(g["theta"]) - side * g["r_shaft"] * 1.2 * math.sin(g["theta"])
            py = g["cy"] + along * math.sin(g["theta"]) + side * g["r_shaft"] * 1.2 * math.cos(g["theta"])
            cut = _blob_alpha(rng, X, Y, px, py, _grade(rng, 2.0, 6.0) * S / 128, roughness=0.3)
        s.coverage = s.coverage * (1 - cut)
        return (cut > 0.5) & (before > 0.5)
    if kind == "contamination":
        cx, cy = _pick_point(rng, s.defect_region)
        if rng.uniform() < 0.5:
            curve = _walk(rng, (cx, cy), rng.uniform(0, 2 * math.pi), _grade(rng, 0.08, 0.25) * S, 10, 0.3)
            alpha = _line_alpha(X, Y, curve, _grade(rng, 1.0, 1.5))
        else:
            alpha = np.zeros_like(X)
            for _ in range(int(rng.integers(2, 6))):
                alpha = np.maximum(alpha, _blob_alpha(rng, X, Y, cx + rng.normal(0, 3), cy + rng.normal(0, 3), rng.uniform(0.8, 2.2) * S / 128, 0.4))
        # dirt lies on top of part and table alike: paint it into both layers
        strength = _grade(rng, 0.4, 0.9)
        _paint(s, alpha, [0.06, 0.06, 0.06], strength)
        a = (alpha * strength)[..., None]
        s.background = s.background * (1 - a) + 0.06 * a
        return alpha > 0.3
    if kind == "stain":
        cx, cy = _pick_point(rng, s.defect_region)
        radius = _grade(rng, 0.03, 0.08) * S
        alpha = _blob_alpha(rng, X, Y, cx, cy, radius, roughness=0.5, soft=max(1.0, 0.25 * radius)) * s.coverage
        _paint(s, alpha, [0.18, 0.18, 0.18] if rng.uniform() < 0.6 else [0.7, 0.7, 0.7], _grade(rng, 0.2, 0.65))
        return (alpha > 0.5) & on_part
    raise ValueError(kind)


RENDERERS = {
    "fabric": (_fabric, _fabric_defect),
    "brushed_metal": (_brushed_metal, _metal_defect),
    "nut": (_nut, _nut_defect),
    "screw": (_screw, _screw_defect),
}


# ---------------------------------------------------------------------------------------------------
# one image, then the whole tree
# ---------------------------------------------------------------------------------------------------
def _image_rng(seed: int, category: str, split: str, defect: str, index: int) -> np.random.Generator:
    # names are hashed (crc32, stable across runs) so that a subset of categories gives the same images
    key = [int(seed), zlib.crc32(category.encode()), zlib.crc32(split.encode()), zlib.crc32(defect.encode()), int(index)]
    return np.random.default_rng(np.random.SeedSequence(key))


def render_sample(category: str, defect: str, rng: np.random.Generator, size: int) -> tuple[np.ndarray, np.ndarray]:
    """One image (uint8 [H,W,3]) and its mask (bool [H,W]); defect `good` gives an all-false mask."""
    normal, add_defect = RENDERERS[category]
    scene = normal(rng, size)
    mask = np.zeros((size, size), dtype=bool)
    if defect != "good":
        for _ in range(8):  # a defect drawn entirely off the part (rare) is drawn again
            mask = add_defect(defect, rng, scene)
            if mask.sum() >= 3:
                break
    image = scene.compose()
    # illumination: global gain, a linear gradient, a slight colour cast; then sensor noise and 8-bit quantisation
    gain = rng.uniform(0.97, 1.03)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = ((scene.X - size / 2) * math.cos(direction) + (scene.Y - size / 2) * math.sin(direction)) / size
    image = image * (gain * (1 + rng.uniform(0.0, 0.08) * ramp))[..., None] * rng.normal(1.0, 0.015, 3)
    image = image + rng.normal(0.0, rng.uniform(0.006, 0.016), image.shape)
    pixels = np.clip(np.rint(image * 255.0), 0, 255).astype(np.uint8)
    return pixels, mask


def _write_png(path: Path, array: np.ndarray) -> None:
    # fixed settings, no metadata: byte-identical output for identical pixels
    Image.fromarray(array).save(path, format="PNG", compress_level=6, optimize=False)


def split_counts(category: str, n_test_defective: int) -> dict[str, int]:
    """Defective test images per defect type: an even share, the remainder to the first types."""
    kinds = DEFECTS[category]
    base, extra = divmod(n_test_defective, len(kinds))
    return {kind: base + (1 if i < extra else 0) for i, kind in enumerate(kinds)}


def generate_synthetic(
    out: str | Path,
    size: int = 128,
    seed: int = 0,
    categories: list[str] | tuple[str, ...] | None = None,
    n_train: int = DEFAULT_COUNTS["n_train"],
    n_test_good: int = DEFAULT_COUNTS["n_test_good"],
    n_test_defective: int = DEFAULT_COUNTS["n_test_defective"],
    workers: int | None = None,
) -> Path:
    """Write the MVTec-layout tree under `out` (one folder per category, replaced if present) and its marker.

    `workers`: processes rendering categories at once (None: one per core when a category has at least
    `PARALLEL_MIN_PIXELS` to render); the files are byte-identical whatever it is."""
    from datasets.common import DatasetError

    categories = list(categories or CATEGORIES)
    unknown = [c for c in categories if c not in RENDERERS]
    if unknown:
        raise DatasetError(f"unknown synthetic category {unknown[0]!r}; available: {', '.join(CATEGORIES)}")
    if size < 32:
        raise DatasetError(f"--size must be at least 32 pixels; got {size}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    counts = (n_train, n_test_good, n_test_defective)
    if workers is None:  # a small tree renders faster than a process starts
        workers = (os.cpu_count() or 1) if sum(counts) * size * size >= PARALLEL_MIN_PIXELS else 1
    processes = max(1, min(len(categories), int(workers)))
    if processes <= 1:
        for category in categories:
            _write_category(out, category, size, seed, counts)
    else:
        # Categories are independent (each image has its own generator), so they render on every core: the
        # first `bench run` waits for this (four categories at 128 px on this 2-core VM: 11.3-11.7 s in one
        # process, 7.7-8.9 s in two). Spawned, not forked: the driver may already hold torch's thread pools.
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        with ProcessPoolExecutor(processes, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_one_thread) as pool:
            for done in [pool.submit(_write_category, out, c, size, seed, counts) for c in categories]:
                done.result()
    params = synthetic_params(size, seed, categories, n_train, n_test_good, n_test_defective)
    (out / MARKER).write_text(json.dumps(params, sort_keys=True, indent=1) + "\n")
    return out


def _one_thread() -> None:
    """A rendering process keeps to its core: numpy's BLAS pool would start a thread per core in each."""
    import scipy.ndimage  # noqa: F401  (loaded first, so that the limit below reaches their pools)
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)


def _write_category(out: Path, category: str, size: int, seed: int, counts: tuple[int, int, int]) -> None:
    n_train, n_test_good, n_test_defective = counts
    target = out / category
    if target.exists():
        shutil.rmtree(target)
    grey = category in GREY_CATEGORIES
    jobs = [("train", "good", i) for i in range(n_train)] + [("test", "good", i) for i in range(n_test_good)]
    for defect, count in split_counts(category, n_test_defective).items():
        jobs += [("test", defect, i) for i in range(count)]
    for split, defect, index in jobs:
        pixels, mask = render_sample(category, defect, _image_rng(seed, category, split, defect, index), size)
        folder = target / split / defect
        folder.mkdir(parents=True, exist_ok=True)
        _write_png(folder / f"{index:03d}.png", pixels.mean(axis=2).round().astype(np.uint8) if grey else pixels)
        if defect != "good":
            gt = target / "ground_truth" / defect
            gt.mkdir(parents=True, exist_ok=True)
            _write_png(gt / f"{index:03d}_mask.png", mask.astype(np.uint8) * 255)


def synthetic_params(size, seed, categories, n_train, n_test_good, n_test_defective) -> dict:
    return {
        "generator_version": GENERATOR_VERSION,
        "size": int(size),
        "seed": int(seed),
        "categories": sorted(categories),
        "n_train": int(n_train),
        "n_test_good": int(n_test_good),
        "n_test_defective": int(n_test_defective),
    }


def read_marker(root: str | Path) -> dict | None:
    marker = Path(root) / MARKER
    if not marker.is_file():
        return None
    try:
        return json.loads(marker.read_text())
    except (OSError, ValueError):
        return None


def expected_counts(params: dict, category: str) -> tuple[int, int, int]:
    """(train good, test good, test defective) that the generator wrote, for `bench data check`."""
    return params["n_train"], params["n_test_good"], params["n_test_defective"]


def default_cache_dir() -> Path:
    """Where the synthetic set is generated when no --data-root is given: `$DEFECTBENCH_CACHE/synthetic`,
    `.cache/synthetic` under the working directory by default. One place for `bench run` and `bench data`."""
    return Path(os.environ.get("DEFECTBENCH_CACHE", ".cache")) / "synthetic"


def ensure_synthetic(
    cache_dir: str | Path,
    size: int = 128,
    seed: int = 0,
    categories: list[str] | tuple[str, ...] | None = None,
    n_train: int = DEFAULT_COUNTS["n_train"],
    n_test_good: int = DEFAULT_COUNTS["n_test_good"],
    n_test_defective: int = DEFAULT_COUNTS["n_test_defective"],
) -> Path:
    """Generate the set into `cache_dir/synthetic_<size>px_seed<seed>` once; returns that root.

    The marker file records the generation parameters (and the generator's version); when they differ
    from the ones asked for, the tree is generated again. Generation goes to a temporary folder that is
    renamed into place, so an interrupted run never leaves a half-written tree behind a valid marker.
    """
    cache_dir = Path(cache_dir)
    root = cache_dir / f"synthetic_{int(size)}px_seed{int(seed)}"
    categories = list(categories or CATEGORIES)
    wanted = synthetic_params(size, seed, categories, n_train, n_test_good, n_test_defective)
    if read_marker(root) == wanted:
        return root
    cache_dir.mkdir(parents=True, exist_ok=True)
    # Two runs started at once (two learning curves on a 2-core machine) would both generate, and one would
    # delete the tree the other is reading: the check and the generation happen under one lock per cache.
    with open(cache_dir / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if read_marker(root) == wanted:  # the other run made it while we waited
            return root
        staging = Path(tempfile.mkdtemp(prefix=".synthetic-", dir=cache_dir))
        try:
            generate_synthetic(staging, size, seed, categories, n_train, n_test_good, n_test_defective)
            if root.exists():
                shutil.rmtree(root)
            staging.rename(root)
        finally:
            if staging.exists():
                shutil.rmtree(staging, ignore_errors=True)
    return root
