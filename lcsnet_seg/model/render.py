"""A tiny perspective renderer for textured planar quads (numpy + OpenCV).

World frame: x right, y up, z forward (metres). A quad is an origin and two edge vectors; its
texture is an image laid across the quad. Each quad is drawn with a homography computed from
the camera matrix (perspective-correct texture), clipped against the near plane, into both a
colour image and a label image with exactly the same pixel mask. Occlusion is by draw order
(painter's algorithm), which the scene builder arranges.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

NEAR = 0.05  # metres; geometry nearer than this is clipped
_SHIFT = 4  # fixed-point bits for cv2.fillPoly vertices


@dataclass
class Camera:
    """Pinhole camera: position (3,), rotation rows right/down/forward (3, 3), focal px, image size."""

    position: np.ndarray
    rotation: np.ndarray
    focal: float
    width: int
    height: int

    @classmethod
    def looking(cls, position, yaw: float, pitch: float, roll: float, hfov: float, width: int, height: int):
        """yaw about +y (0 looks along +z), pitch up positive, roll about the view axis; radians."""
        f = np.array([np.sin(yaw) * np.cos(pitch), np.sin(pitch), np.cos(yaw) * np.cos(pitch)])
        r = np.array([np.cos(yaw), 0.0, -np.sin(yaw)])
        d = np.cross(r, f)
        r, d = np.cos(roll) * r + np.sin(roll) * d, -np.sin(roll) * r + np.cos(roll) * d
        focal = 0.5 * width / np.tan(0.5 * hfov)
        return cls(np.asarray(position, float), np.stack([r, d, f]), focal, width, height)

    def to_camera(self, points: np.ndarray) -> np.ndarray:
        return (np.asarray(points, float) - self.position) @ self.rotation.T

    def project(self, cam_points: np.ndarray) -> np.ndarray:
        z = cam_points[:, 2:3]
        return cam_points[:, :2] * self.focal / z + np.array([self.width / 2, self.height / 2])

    @property
    def intrinsics(self) -> np.ndarray:
        return np.array([[self.focal, 0, self.width / 2], [0, self.focal, self.height / 2], [0, 0, 1.0]])


@dataclass
class Quad:
    """A planar rectangle: corners origin, origin+u, origin+u+v, origin+v; texture spans u (x) and v (y)."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    label: int
    texture: np.ndarray  # H x W x 3 uint8, RGB; texture row 0 lies along v = 0
    shade: float = 1.0

    def corners(self) -> np.ndarray:
        o, u, v = self.origin, self.u, self.v
        return np.stack([o, o + u, o + u + v, o + v])

    def centre(self) -> np.ndarray:
        return self.origin + 0.5 * (self.u + self.v)

    def normal(self) -> np.ndarray:
        (a1, a2, a3), (b1, b2, b3) = self.u, self.v  # np.cross is slow for single 3-vectors
        n = np.array([a2 * b3 - a3 * b2, a3 * b1 - a1 * b3, a1 * b2 - a2 * b1])
        return n / (np.sqrt(n @ n) + 1e-12)


def clip_near(points: np.ndarray) -> np.ndarray:
    """Sutherland-Hodgman clip of a camera-frame polygon (N, 3) against z >= NEAR."""
    out = []
    n = len(points)
    for i in range(n):
        a, b = points[i], points[(i + 1) % n]
        a_in, b_in = a[2] >= NEAR, b[2] >= NEAR
        if a_in:
            out.append(a)
        if a_in != b_in:
            t = (NEAR - a[2]) / (b[2] - a[2])
            out.append(a + t * (b - a))
    return np.array(out).reshape(-1, 3)


class Canvas:
    """Colour (RGB uint8) and label (uint8) images drawn together."""

    def __init__(self, camera: Camera, background_label: int) -> None:
        self.camera = camera
        self.image = np.zeros((camera.height, camera.width, 3), np.uint8)
        self.labels = np.full((camera.height, camera.width), background_label, np.uint8)

    def faces_camera(self, quad: Quad) -> bool:
        return float(quad.normal() @ (self.camera.position - quad.centre())) > 0

    def draw(self, quad: Quad, cull_back: bool = False) -> None:
        cam = self.camera
        if cull_back and not self.faces_camera(quad):
            return
        poly = clip_near(cam.to_camera(quad.corners()))
        if len(poly) < 3:
            return
        px = cam.project(poly)
        x0, y0 = np.floor(px.min(0)).astype(int)
        x1, y1 = np.ceil(px.max(0)).astype(int)
        x0, y0 = max(x0, 0), max(y0, 0)
        x1, y1 = min(x1, cam.width), min(y1, cam.height)
        if x1 <= x0 or y1 <= y0:
            return
        mask = np.zeros((y1 - y0, x1 - x0), np.uint8)
        pts = np.round((px - [x0, y0]) * (1 << _SHIFT)).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1, lineType=cv2.LINE_8, shift=_SHIFT)
        sel = mask.astype(bool)
        if not sel.any():
            return
        # Homography texture pixel (s, t) -> image pixel: K [R(u/W) R(v/H) R(o - c)], then the bbox shift.
        th, tw = quad.texture.shape[:2]
        rot = cam.rotation
        m = np.stack([rot @ quad.u / tw, rot @ quad.v / th, rot @ (quad.origin - cam.position)], axis=1)
        h = np.array([[1, 0, -x0], [0, 1, -y0], [0, 0, 1.0]]) @ cam.intrinsics @ m
        warped = cv2.warpPerspective(
            quad.texture, h, (x1 - x0, y1 - y0), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT
        )
        if quad.shade != 1.0:
            warped = cv2.convertScaleAbs(warped, alpha=quad.shade)
        np.copyto(self.image[y0:y1, x0:x1], warped, where=sel[..., None])
        np.copyto(self.labels[y0:y1, x0:x1], quad.label, where=sel, casting="unsafe")


def box_quads(centre, size, yaw: float, label: int, textures, shade_of) -> list[Quad]:
    """Six outward-facing quads of an axis-aligned-in-yaw cuboid. centre: bottom-centre (x, y, z).

    textures: one texture for all faces or a dict with keys top, side; shade_of(normal) -> factor.
    """
    sx, sy, sz = size
    c, s = np.cos(yaw), np.sin(yaw)
    ex, ez, ey = np.array([c, 0, -s]) * sx, np.array([s, 0, c]) * sz, np.array([0, sy, 0.0])
    base = np.asarray(centre, float) - 0.5 * ex - 0.5 * ez
    top = textures["top"] if isinstance(textures, dict) else textures
    side = textures["side"] if isinstance(textures, dict) else textures
    faces = [
        (base + ey, ez, ex, top),  # top, normal +y
        (base, ex, ez, side),  # bottom, normal -y
        (base, ey, ex, side),  # front (-z side)
        (base + ez, ex, ey, side),  # back
        (base, ez, ey, side),  # left
        (base + ex, ey, ez, side),  # right
    ]
    quads = []
    for o, u, v, tex in faces:
        q = Quad(o, u, v, label, tex)
        q.shade = shade_of(q.normal())
        quads.append(q)
    return quads
