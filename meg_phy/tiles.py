"""Spatial tiles with overlap, and their blended merge, for the multi-ES parallel protocols (UIDG, DIUG, DSUC).

Each ES owns one tile; where tiles overlap they are blended with raised-cosine windows normalised to sum to
one (`blend_weights`), both when the ESs fuse their tiles during joint denoising and when the UE merges them.
An ES's denoiser may see more than its tile: `context_box` grows a tile by a margin of context (the whole
latent by default in the protocols), and `intersect` says which part of a neighbour's tile that context needs.
The merge is an incremental weighted mean (`torch.lerp` towards each new tile by its share of the weight so
far): identical tiles merge back to exactly the original values, bit for bit.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from meg_common.errors import InputError

Box = tuple[int, int, int, int]  # (top, left, height, width)


@dataclass(frozen=True)
class TileLayout:
    """n boxes covering an (height, width) plane, overlapping by at least `overlap` along shared edges."""

    height: int
    width: int
    boxes: tuple[Box, ...]
    overlap: int

    @property
    def n(self) -> int:
        return len(self.boxes)

    def scaled(self, factor: int) -> TileLayout:
        """The same layout in pixels of a decoder that upsamples by `factor` (tiles of decoded images)."""
        boxes = tuple(tuple(v * factor for v in box) for box in self.boxes)
        return TileLayout(self.height * factor, self.width * factor, boxes, self.overlap * factor)


def grid_shape(n: int) -> tuple[int, int]:
    """Rows x columns for n tiles: 1 -> 1x1, 2 -> 1x2, 3 -> 1x3, 4 -> 2x2 (the most square factorisation)."""
    if not isinstance(n, int) or n < 1:
        raise InputError(f"number of tiles {n}: must be an integer >= 1")
    rows = max(r for r in range(1, int(math.isqrt(n)) + 1) if n % r == 0)
    return rows, n // rows


def _axis(length: int, count: int, overlap: int, multiple: int) -> list[tuple[int, int]]:
    """(start, size) of `count` equal tiles along one axis; sizes and starts are multiples of `multiple`."""
    if count == 1:
        return [(0, length)]
    size = math.ceil((length + (count - 1) * overlap) / count)
    size = math.ceil(size / multiple) * multiple
    if size >= length:
        raise InputError(f"{count} tiles with overlap {overlap} do not fit along {length} latent pixels "
                         f"(tile side {size} >= {length}); use fewer tiles or a smaller overlap")
    starts = [round(i * (length - size) / (count - 1) / multiple) * multiple for i in range(count)]
    starts[-1] = length - size
    for a, b in zip(starts, starts[1:], strict=False):
        if not 0 < b - a <= size - overlap:
            raise InputError(f"cannot place {count} tiles of {size} with overlap {overlap} along {length}; "
                             f"use fewer tiles or a smaller overlap")
    return [(s, size) for s in starts]


def tile_layout(height: int, width: int, n: int, overlap: int = 2, multiple: int = 2) -> TileLayout:
    """Split a (height, width) latent into n overlapping tiles whose sides are multiples of `multiple`.

    `multiple` is the UNet's downsampling factor (2 per down level, so 2 for the embedded model and 8 for
    SD's 64x64 latents); `length % multiple == 0` is required so every tile stays on the UNet's grid.
    """
    if height % multiple or width % multiple:
        raise InputError(f"latent {height}x{width}: sides must be multiples of {multiple}")
    if overlap < 1:
        raise InputError(f"overlap {overlap}: must be >= 1 latent pixel so tiles can be blended")
    rows, cols = grid_shape(n)
    boxes = tuple((top, left, h, w) for top, h in _axis(height, rows, overlap, multiple)
                  for left, w in _axis(width, cols, overlap, multiple))
    return TileLayout(height, width, boxes, overlap)


def context_box(layout: TileLayout, i: int, context: int | None, multiple: int = 2) -> Box:
    """Tile i grown by `context` latent pixels on every side (clipped to the plane, sides kept on the UNet's
    grid of `multiple`); None: the whole plane."""
    if context is None:
        return (0, 0, layout.height, layout.width)
    top, left, h, w = layout.boxes[i]

    def grow(start: int, size: int, length: int) -> tuple[int, int]:
        lo = max(0, start - context) // multiple * multiple
        hi = min(length, -(-(start + size + context) // multiple) * multiple)
        return lo, hi - lo

    (top, h), (left, w) = grow(top, h, layout.height), grow(left, w, layout.width)
    return (top, left, h, w)


def intersect(a: Box, b: Box) -> Box | None:
    """The box both `a` and `b` cover (None when they do not meet)."""
    top, left = max(a[0], b[0]), max(a[1], b[1])
    bottom, right = min(a[0] + a[2], b[0] + b[2]), min(a[1] + a[3], b[1] + b[3])
    return (top, left, bottom - top, right - left) if bottom > top and right > left else None


def split(x: torch.Tensor, layout: TileLayout) -> list[torch.Tensor]:
    """The tiles of x (..., height, width), copies, in layout order."""
    _check_plane(x, layout)
    return [x[..., top:top + h, left:left + w].clone() for top, left, h, w in layout.boxes]


def _window_1d(start: int, size: int, length: int, taper: int) -> torch.Tensor:
    """1 inside, raised-cosine ramp over `taper` pixels at edges shared with other tiles, never zero."""
    pos = torch.arange(size, dtype=torch.float64)
    w = torch.ones(size, dtype=torch.float64)
    if start > 0:
        w = torch.minimum(w, torch.sin(0.5 * math.pi * torch.clamp((pos + 0.5) / taper, max=1.0)) ** 2)
    if start + size < length:
        w = torch.minimum(w, torch.sin(0.5 * math.pi * torch.clamp((size - pos - 0.5) / taper, max=1.0)) ** 2)
    return w


def tile_windows(layout: TileLayout) -> list[torch.Tensor]:
    """Unnormalised blending window (h, w) of every tile (float64)."""
    return [torch.outer(_window_1d(top, h, layout.height, layout.overlap), _window_1d(left, w, layout.width, layout.overlap))
            for top, left, h, w in layout.boxes]


def blend_weights(layout: TileLayout) -> list[torch.Tensor]:
    """Each tile's share (height, width) of the merged value (zero outside the tile); they sum to one."""
    total = torch.zeros(layout.height, layout.width, dtype=torch.float64)
    full = []
    for (top, left, h, w), win in zip(layout.boxes, tile_windows(layout), strict=True):
        plane = torch.zeros_like(total)
        plane[top:top + h, left:left + w] = win
        total += plane
        full.append(plane)
    if bool((total <= 0).any()):
        raise InputError("tile layout leaves pixels uncovered")
    return [plane / total for plane in full]


def merge(tiles: list[torch.Tensor], layout: TileLayout) -> torch.Tensor:
    """Blend tiles (..., h_i, w_i) into one (..., height, width) tensor with the layout's windows."""
    if len(tiles) != layout.n:
        raise InputError(f"{len(tiles)} tiles given for a layout of {layout.n}")
    lead = tiles[0].shape[:-2]
    for tile, (_, _, h, w) in zip(tiles, layout.boxes, strict=True):
        if tile.shape[:-2] != lead or tuple(tile.shape[-2:]) != (h, w):
            raise InputError(f"tile of shape {tuple(tile.shape)} does not match its box {h}x{w} "
                             f"(leading dims {tuple(lead)})")
    out = torch.zeros(*lead, layout.height, layout.width, dtype=tiles[0].dtype, device=tiles[0].device)
    weight = torch.zeros(layout.height, layout.width, dtype=torch.float64)
    for tile, (top, left, h, w), win in zip(tiles, layout.boxes, tile_windows(layout), strict=True):
        weight[top:top + h, left:left + w] += win
        share = (win / weight[top:top + h, left:left + w]).to(tile.dtype).to(tile.device)
        region = out[..., top:top + h, left:left + w]
        out[..., top:top + h, left:left + w] = torch.lerp(region, tile, share.expand_as(tile))
    if bool((weight <= 0).any()):
        raise InputError("tile layout leaves pixels uncovered")
    return out


def _check_plane(x: torch.Tensor, layout: TileLayout) -> None:
    if x.dim() < 2 or tuple(x.shape[-2:]) != (layout.height, layout.width):
        raise InputError(f"tensor of shape {tuple(x.shape)} does not match the layout's {layout.height}x{layout.width}")
