#!/usr/bin/env python3
"""Draws Hearth's app icons (a flame on a warm tile) as PNGs for the web app manifest, with
no imaging library: shapes are sampled 4×4 per pixel and written with zlib."""
import math
import struct
import zlib
from pathlib import Path

OUT = Path(__file__).resolve().parent.parent / "www/icons"


def inside_flame(x, y):
    # Unit square coordinates, y down. A teardrop: circle at the bottom, tip at the top.
    cx, cy, r = 0.5, 0.62, 0.2
    if (x - cx) ** 2 + (y - cy) ** 2 <= r * r:
        return 2 if (x - cx) ** 2 + (y - cy - 0.05) ** 2 <= (r * 0.5) ** 2 else 1
    tip = 0.16
    if tip <= y <= cy:
        t = (y - tip) / (cy - tip)
        half = r * math.sin(t * math.pi / 2) ** 0.8
        if abs(x - cx - 0.06 * (1 - t) * math.sin(t * 6)) <= half:
            return 1
    return 0


def inside_tile(x, y, radius=0.22):
    dx = max(radius - x, 0, x - (1 - radius))
    dy = max(radius - y, 0, y - (1 - radius))
    return dx * dx + dy * dy <= radius * radius


def png(size, path, maskable=False):
    tile, flame, core = (0x2b, 0x1d, 0x16), (0xf2, 0x7a, 0x1a), (0xff, 0xd1, 0x66)
    rows = []
    ss = 4
    for py in range(size):
        row = bytearray([0])
        for px in range(size):
            acc = [0.0, 0.0, 0.0, 0.0]
            for sy in range(ss):
                for sx in range(ss):
                    x, y = (px + (sx + 0.5) / ss) / size, (py + (sy + 0.5) / ss) / size
                    if not (maskable or inside_tile(x, y)):
                        continue
                    # Maskable icons keep their drawing inside the central 80% safe zone.
                    fx, fy = ((x - 0.5) / 0.8 + 0.5, (y - 0.5) / 0.8 + 0.5) if maskable else (x, y)
                    kind = inside_flame(fx, fy)
                    color = core if kind == 2 else flame if kind == 1 else tile
                    acc[0] += color[0]; acc[1] += color[1]; acc[2] += color[2]; acc[3] += 255
            n = ss * ss
            alpha = acc[3] / n
            scale = 255 / acc[3] if acc[3] else 0
            row += bytes([round(acc[0] * scale), round(acc[1] * scale), round(acc[2] * scale), round(alpha)])
        rows.append(bytes(row))
    raw = zlib.compress(b"".join(rows), 9)

    def chunk(kind, data):
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", size, size, 8, 6, 0, 0, 0)) + chunk(b"IDAT", raw) + chunk(b"IEND", b""))


if __name__ == "__main__":
    OUT.mkdir(parents=True, exist_ok=True)
    for size in (192, 512):
        png(size, OUT / f"icon-{size}.png")
    png(512, OUT / "icon-maskable-512.png", maskable=True)
    png(32, OUT / "favicon-32.png")
