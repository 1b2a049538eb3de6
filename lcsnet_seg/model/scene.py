"""Procedural indoor scenes with pixel-exact ground truth, for demo training and evaluation.

A perspective room (floor, walls, ceiling) with whiteboards, a projection screen, tables, chairs,
computers (monitors, keyboards, towers) and clutter labelled ``other`` (doors, posters, cabinets,
plants, boxes, the ceiling), with random textures, lighting, noise and camera pose. Deterministic
for a given seed. Class ids follow config/classes.yaml.
"""

from __future__ import annotations

import cv2
import numpy as np

from lcsnet_seg.model.render import Camera, Canvas, Quad, box_quads

WALL, FLOOR, WHITEBOARD, SCREEN, TABLE, CHAIR, COMPUTER, OTHER = range(8)
PX_PER_M = 64  # texture resolution


# ---------------------------------------------------------------- textures (RGB uint8, plane coords)
def _size(w_m: float, h_m: float, cap: int = 256) -> tuple[int, int]:
    return max(4, min(cap, int(h_m * PX_PER_M))), max(4, min(cap, int(w_m * PX_PER_M)))


def _noise(rng, h, w, scale: float, amp: float) -> np.ndarray:
    """Smooth value noise of std ~amp at feature size ~scale pixels."""
    gh, gw = max(2, int(h / scale) + 2), max(2, int(w / scale) + 2)
    grid = rng.normal(0, amp, (gh, gw)).astype(np.float32)
    return cv2.resize(grid, (w, h), interpolation=cv2.INTER_CUBIC)


def _finish(base: np.ndarray) -> np.ndarray:
    return np.clip(base, 0, 255).astype(np.uint8)


def plain(rng, w_m, h_m, colour, grain=6.0, blotch=10.0) -> np.ndarray:
    h, w = _size(w_m, h_m)
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    img += _noise(rng, h, w, 40, blotch)[..., None]
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * grain
    return _finish(img)


def wood(rng, w_m, h_m, colour=None) -> np.ndarray:
    colour = colour if colour is not None else rng.uniform([110, 70, 35], [200, 150, 100])
    h, w = _size(w_m, h_m)
    img = np.empty((h, w, 3), np.float32)
    img[:] = colour
    rows = np.arange(h, dtype=np.float32)[:, None]
    grain = np.sin(rows * rng.uniform(0.3, 0.8) + _noise(rng, h, w, 30, 3.0)) * rng.uniform(6, 16)
    img += grain[..., None]
    planks = np.arange(h) % max(8, int(rng.uniform(0.12, 0.25) * PX_PER_M)) == 0
    img[planks] *= 0.6
    return _finish(img)


def tiles(rng, w_m, h_m, colour, line_colour, pitch_m) -> np.ndarray:
    img = plain(rng, w_m, h_m, colour, grain=4, blotch=6).astype(np.float32)
    step = max(4, int(pitch_m * PX_PER_M))
    img[::step] = line_colour
    img[:, ::step] = line_colour
    return _finish(img)


def carpet(rng, w_m, h_m, colour) -> np.ndarray:
    return plain(rng, w_m, h_m, colour, grain=18, blotch=8)


def whiteboard_tex(rng, w_m, h_m) -> np.ndarray:
    h, w = _size(w_m, h_m)
    img = np.full((h, w, 3), rng.uniform(228, 250), np.float32)
    img += _noise(rng, h, w, 60, 4)[..., None]
    img = _finish(img)
    ink = [(20, 40, 160), (20, 20, 20), (180, 30, 30), (20, 120, 40)]
    for _ in range(rng.integers(2, 12)):  # handwriting-like strokes
        colour = ink[rng.integers(len(ink))]
        x, y = rng.uniform(0.08, 0.7) * w, rng.uniform(0.1, 0.85) * h
        pts = np.cumsum(rng.normal(0, 3, (rng.integers(8, 40), 2)) + [rng.uniform(1.5, 4), 0], 0) + [x, y]
        cv2.polylines(img, [pts.astype(np.int32)], False, colour, 1 + int(rng.integers(2)), cv2.LINE_AA)
    frame = max(2, int(0.025 * PX_PER_M))
    img[:frame], img[-frame:], img[:, :frame], img[:, -frame:] = 175, 175, 175, 175  # aluminium frame
    return img


def screen_tex(rng, w_m, h_m) -> np.ndarray:
    h, w = _size(w_m, h_m)
    img = np.full((h, w, 3), rng.uniform(200, 235), np.float32)
    img += np.linspace(0, rng.uniform(-20, 20), w, dtype=np.float32)[None, :, None]
    img = _finish(img)
    if rng.random() < 0.7:  # a projected slide
        x0, y0 = int(0.08 * w), int(0.1 * h)
        slide = img[y0 : h - y0, x0 : w - x0]
        slide[:] = np.clip(slide.astype(int) + rng.integers(0, 30, 3), 0, 255).astype(np.uint8)
        for _ in range(rng.integers(1, 5)):
            a = (int(rng.uniform(0, slide.shape[1])), int(rng.uniform(0, slide.shape[0])))
            b = (a[0] + int(rng.uniform(10, 60)), a[1] + int(rng.uniform(5, 30)))
            cv2.rectangle(slide, a, b, rng.integers(30, 220, 3).tolist(), -1)
        for k in range(rng.integers(2, 7)):
            y = int((0.2 + 0.1 * k) * slide.shape[0])
            cv2.line(slide, (8, y), (int(rng.uniform(0.3, 0.9) * slide.shape[1]), y), (40, 40, 40), 2)
    border = max(3, int(0.05 * PX_PER_M))
    img[:border] = 25  # roller case along the top
    img[:, :2], img[:, -2:] = 60, 60
    return img


def monitor_tex(rng, w_m, h_m) -> np.ndarray:
    h, w = _size(w_m, h_m)
    img = np.full((h, w, 3), rng.uniform(10, 40), np.float32)
    bezel = max(2, int(0.015 * PX_PER_M))
    if rng.random() < 0.85:  # switched on
        inner = img[bezel : h - bezel, bezel : w - bezel]
        top, bottom = rng.uniform(20, 200, 3), rng.uniform(20, 200, 3)
        inner[:] = np.linspace(top, bottom, inner.shape[0], dtype=np.float32)[:, None, :]
        for _ in range(rng.integers(0, 4)):
            x, y = int(rng.uniform(0, inner.shape[1] * 0.7)), int(rng.uniform(0, inner.shape[0] * 0.7))
            inner[y : y + int(rng.uniform(4, 30)), x : x + int(rng.uniform(6, 40))] = rng.uniform(150, 255)
    return _finish(img)


def poster_tex(rng, w_m, h_m) -> np.ndarray:
    h, w = _size(w_m, h_m)
    img = np.empty((h, w, 3), np.float32)
    img[:] = rng.uniform(0, 255, 3)
    for _ in range(rng.integers(2, 8)):
        c = (int(rng.uniform(0, w)), int(rng.uniform(0, h)))
        cv2.circle(img, c, int(rng.uniform(3, max(4, w / 3))), rng.uniform(0, 255, 3).tolist(), -1)
    return _finish(img + rng.standard_normal((h, w, 1), dtype=np.float32) * 5)


def leaves_tex(rng, w_m, h_m) -> np.ndarray:
    h, w = _size(w_m, h_m)
    base = rng.uniform([20, 70, 20], [70, 140, 60])
    img = np.empty((h, w, 3), np.float32)
    img[:] = base
    img += rng.standard_normal((h, w, 1), dtype=np.float32) * 25
    return _finish(img)


def random_colour(rng, lo=30, hi=230) -> np.ndarray:
    return rng.uniform(lo, hi, 3)


# ---------------------------------------------------------------- scene layout
def _wall_item(origin, along, down, width, height, label, tex, shade) -> Quad:
    """A rectangle on a wall: origin = top-left corner, texture row 0 at the top."""
    return Quad(np.asarray(origin, float), along * width, down * height, label, tex, shade)


def generate_scene(seed: int, height: int = 480, width: int = 640) -> tuple[np.ndarray, np.ndarray]:
    """One random indoor scene.

    Returns (image, labels): image H x W x 3 uint8 in RGB order; labels H x W uint8 class ids.
    """
    rng = np.random.default_rng(seed)
    room_w, room_d, room_h = rng.uniform(4.5, 10), rng.uniform(5, 11), rng.uniform(2.6, 3.4)
    light = rng.normal(size=3) * [1, 0, 1] + [0, 2.5, 0]
    light /= np.linalg.norm(light)
    ambient = rng.uniform(0.45, 0.7)

    def shade_of(normal) -> float:
        return ambient + (1 - ambient) * abs(float(np.dot(normal, light)))

    hw, d, h = room_w / 2, room_d, room_h
    ex, ey, ez = np.eye(3)
    wall_colour = rng.uniform([150, 140, 130], [245, 240, 235]) if rng.random() < 0.8 else random_colour(rng, 90)
    floor_kind = rng.integers(3)
    if floor_kind == 0:
        floor_tex = wood(rng, room_w, room_d)
    elif floor_kind == 1:
        floor_tex = carpet(rng, room_w, room_d, random_colour(rng, 40, 170))
    else:
        floor_tex = tiles(
            rng, room_w, room_d, random_colour(rng, 120, 220), random_colour(rng, 60, 150), rng.uniform(0.3, 0.6)
        )
    wall_tex = plain(rng, room_w, room_h, wall_colour)
    side_tex = plain(rng, room_d, room_h, wall_colour * rng.uniform(0.93, 1.02))
    quads: list[Quad] = [
        Quad(np.array([-hw, 0, 0]), ez * d, ex * room_w, FLOOR, floor_tex, shade_of(ey)),
        Quad(
            np.array([-hw, h, 0]),
            ex * room_w,
            ez * d,
            OTHER,
            tiles(rng, room_w, room_d, [225, 225, 220], [170, 170, 170], 0.6),
            shade_of(-ey),
        ),
        Quad(np.array([-hw, h, d]), ex * room_w, -ey * h, WALL, wall_tex, shade_of(-ez)),  # back
        Quad(np.array([-hw, h, 0]), ez * d, -ey * h, WALL, side_tex, shade_of(ex)),  # left
        Quad(np.array([hw, h, d]), -ez * d, -ey * h, WALL, side_tex, shade_of(-ex)),  # right
        Quad(np.array([hw, h, 0]), -ex * room_w, -ey * h, WALL, wall_tex, shade_of(ez)),  # behind camera
    ]
    # Wall-mounted items, 1 cm proud of the wall: (origin of the wall's top-left, along, down, inward, length)
    walls = [
        (np.array([-hw, 0, d]), ex, -ez, room_w),
        (np.array([-hw, 0, 0]), ez, ex, d),
        (np.array([hw, 0, d]), -ez, -ex, d),
    ]
    occupied: dict[int, list[tuple[float, float]]] = {0: [], 1: [], 2: []}

    def place_on_wall(width_m, height_m, top_m, label, tex, wall_index=None):
        idx = int(rng.integers(3)) if wall_index is None else wall_index
        start, along, inward, length = walls[idx]
        if width_m > length - 0.4:
            return
        for _ in range(6):
            a = rng.uniform(0.2, length - width_m - 0.2)
            if all(a + width_m < lo or a > hi for lo, hi in occupied[idx]):
                occupied[idx].append((a - 0.1, a + width_m + 0.1))
                origin = start + along * a + ey * top_m + inward * 0.01
                normal = inward
                quads.append(_wall_item(origin, along, -ey, width_m, height_m, label, tex, shade_of(normal)))
                return

    if rng.random() < 0.7:
        sw = rng.uniform(1.8, 3.2)
        sh = sw * rng.choice([0.5625, 0.75])
        place_on_wall(sw, sh, min(h - 0.05, sh + rng.uniform(1.0, 1.4)), SCREEN, screen_tex(rng, sw, sh), 0)
    for _ in range(rng.choice([0, 1, 1, 2])):
        bw, bh = rng.uniform(1.2, 3.0), rng.uniform(0.9, 1.3)
        place_on_wall(bw, bh, rng.uniform(1.8, 2.1), WHITEBOARD, whiteboard_tex(rng, bw, bh))
    for _ in range(rng.integers(0, 4)):
        kind = rng.integers(3)
        if kind == 0:  # door
            place_on_wall(0.9, 2.05, 2.05, OTHER, wood(rng, 0.9, 2.05))
        elif kind == 1:  # poster / picture
            pw, ph = rng.uniform(0.4, 1.0), rng.uniform(0.4, 1.0)
            place_on_wall(pw, ph, rng.uniform(1.4, 2.1), OTHER, poster_tex(rng, pw, ph))
        else:  # window
            ww = rng.uniform(0.8, 1.8)
            place_on_wall(ww, 1.2, 2.2, OTHER, plain(rng, ww, 1.2, rng.uniform(170, 250, 3), blotch=20))

    # Furniture on the floor, kept away from the camera's start position.
    objects: list[tuple[np.ndarray, list[Quad]]] = []
    metal = plain(rng, 0.1, 1, [150, 150, 155], grain=4, blotch=4)
    table_top = wood(rng, 2, 1) if rng.random() < 0.6 else plain(rng, 2, 1, random_colour(rng, 150, 240))
    fabric = random_colour(rng, 20, 200)
    n_tables = int(rng.integers(1, 5))
    for _ in range(n_tables):
        tw, tdp, th = rng.uniform(1.0, 2.2), rng.uniform(0.6, 1.0), rng.uniform(0.7, 0.78)
        cx, cz, yaw = rng.uniform(-hw + 0.8, hw - 0.8), rng.uniform(2.0, d - 0.8), rng.uniform(-0.3, 0.3)
        qs = box_quads([cx, th - 0.04, cz], [tw, 0.04, tdp], yaw, TABLE, table_top, shade_of)
        rot = np.array([[np.cos(yaw), -np.sin(yaw)], [np.sin(yaw), np.cos(yaw)]])
        for sx in (-1, 1):
            for sz in (-1, 1):
                lx, lz = rot @ [sx * (tw / 2 - 0.06), sz * (tdp / 2 - 0.06)]
                qs += box_quads([cx + lx, 0, cz + lz], [0.05, th - 0.04, 0.05], yaw, TABLE, metal, shade_of)
        # Computers on the table: monitor + stand + keyboard, sometimes a tower below.
        for _ in range(int(rng.integers(0, 3))):
            mx = rng.uniform(-tw / 2 + 0.35, tw / 2 - 0.35)
            mw, mh = rng.uniform(0.45, 0.7), rng.uniform(0.3, 0.45)
            px_, pz_ = rot @ [mx, tdp * 0.15]
            qs += box_quads([cx + px_, th, cz + pz_], [0.08, 0.12, 0.08], yaw, COMPUTER, metal * 0 + 40, shade_of)
            screen_faces = box_quads(
                [cx + px_, th + 0.1, cz + pz_],
                [mw, mh, 0.03],
                yaw,
                COMPUTER,
                {"top": plain(rng, mw, 0.03, [30, 30, 30]), "side": monitor_tex(rng, mw, mh)},
                shade_of,
            )
            qs += screen_faces
            kx, kz = rot @ [mx, -tdp * 0.2]
            qs += box_quads(
                [cx + kx, th, cz + kz],
                [0.45, 0.025, 0.15],
                yaw,
                COMPUTER,
                plain(rng, 0.45, 0.15, [45, 45, 48], grain=15),
                shade_of,
            )
            if rng.random() < 0.35:
                tx_, tz_ = rot @ [mx, 0]
                qs += box_quads(
                    [cx + tx_, 0, cz + tz_],
                    [0.2, 0.45, 0.45],
                    yaw,
                    COMPUTER,
                    plain(rng, 0.45, 0.45, [35, 35, 40]),
                    shade_of,
                )
        objects.append((np.array([cx, 0, cz]), qs))
        # Chairs around the table.
        for _ in range(int(rng.integers(0, 4))):
            side = rng.choice([-1, 1])
            ax = rng.uniform(-tw / 2 + 0.3, tw / 2 - 0.3)
            ox, oz = rot @ [ax, side * (tdp / 2 + rng.uniform(0.25, 0.6))]
            chair_yaw = yaw + (0 if side < 0 else np.pi) + rng.normal(0, 0.3)
            objects.append(_chair(rng, np.array([cx + ox, 0, cz + oz]), chair_yaw, fabric, metal, shade_of))
    for _ in range(int(rng.integers(0, 4))):  # clutter: cabinets, boxes, bins, plants
        cx, cz = rng.uniform(-hw + 0.4, hw - 0.4), rng.uniform(1.5, d - 0.3)
        size = rng.uniform([0.3, 0.3, 0.3], [1.2, 1.8, 0.7])
        tex = leaves_tex(rng, 1, 1) if rng.random() < 0.3 else plain(rng, 1, 1, random_colour(rng))
        objects.append(
            (np.array([cx, 0, cz]), box_quads([cx, 0, cz], size, rng.uniform(-0.5, 0.5), OTHER, tex, shade_of))
        )

    cam_pos = np.array([rng.uniform(-hw / 2, hw / 2), rng.uniform(0.9, 1.7), rng.uniform(0.2, 1.2)])
    camera = Camera.looking(
        cam_pos,
        yaw=rng.uniform(-0.6, 0.6),
        pitch=rng.uniform(-0.45, -0.05),
        roll=rng.normal(0, 0.03),
        hfov=np.radians(rng.uniform(55, 80)),
        width=width,
        height=height,
    )
    canvas = Canvas(camera, background_label=WALL)
    for q in quads:
        canvas.draw(q)
    objects.sort(key=lambda item: -np.linalg.norm(item[0] - cam_pos))
    for _, qs in objects:
        for q in sorted(qs, key=lambda q: -float(np.sum((q.centre() - cam_pos) ** 2))):
            canvas.draw(q, cull_back=True)
    return _camera_effects(rng, canvas.image), canvas.labels


def _chair(rng, base, yaw, fabric, metal, shade_of):
    seat_h = rng.uniform(0.42, 0.5)
    tex = plain(rng, 0.5, 0.5, fabric * rng.uniform(0.8, 1.2), grain=10)
    c, s = np.cos(yaw), np.sin(yaw)
    back_off = np.array([s, 0, c]) * -0.22
    qs = box_quads(base + [0, seat_h, 0], [0.46, 0.07, 0.44], yaw, CHAIR, tex, shade_of)
    qs += box_quads(
        base + back_off + [0, seat_h + 0.07, 0], [0.44, rng.uniform(0.35, 0.55), 0.05], yaw, CHAIR, tex, shade_of
    )
    if rng.random() < 0.5:  # office chair: post and star base
        qs += box_quads(base, [0.05, seat_h, 0.05], yaw, CHAIR, metal, shade_of)
        qs += box_quads(base, [0.6, 0.05, 0.06], yaw, CHAIR, metal, shade_of)
        qs += box_quads(base, [0.06, 0.05, 0.6], yaw, CHAIR, metal, shade_of)
    else:  # four legs
        for sx in (-0.2, 0.2):
            for sz in (-0.19, 0.19):
                off = np.array([c * sx + s * sz, 0, -s * sx + c * sz])
                qs += box_quads(base + off, [0.035, seat_h, 0.035], yaw, CHAIR, metal, shade_of)
    return base, qs


def _camera_effects(rng, image: np.ndarray) -> np.ndarray:
    """Exposure, colour cast, vignetting, blur and sensor noise."""
    img: np.ndarray = image.astype(np.float32)
    img *= rng.uniform(0.75, 1.2) * rng.uniform(0.92, 1.08, 3)
    h, w = img.shape[:2]
    yy, xx = np.ogrid[-1 : 1 : complex(0, h), -1 : 1 : complex(0, w)]
    img *= (1 - rng.uniform(0, 0.35) * (xx**2 + yy**2) / 2)[..., None]
    if rng.random() < 0.5:
        img = cv2.GaussianBlur(img, (0, 0), rng.uniform(0.4, 1.2))
    img += rng.standard_normal(img.shape, dtype=np.float32) * rng.uniform(1, 6)
    return np.clip(img, 0, 255).astype(np.uint8)
