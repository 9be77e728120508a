"""Tiling: the one ``tile`` option parser (``N`` or ``'auto'``), where tiles start, and a forward pass in tiles."""
import torch

from converse_basicsr.utils.checks import check_int, is_int

__all__ = ['parse_tile', 'check_tile', 'tile_starts', 'tiled_forward', 'MIN_TILE']

MIN_TILE = 8  # smallest tile size accepted


def parse_tile(value, name='tile'):
    """``None``, ``'auto'`` or an integer from a command line or YAML value (``'256'`` → 256); ``ValueError``
    naming ``name`` otherwise."""
    if value is None or value == 'auto':
        return value
    if is_int(value):
        return value
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be an integer or 'auto', got {value!r}") from None


def check_tile(tile, tile_pad):
    """``(tile, tile_pad)`` after checking: ``tile`` is ``None``, ``'auto'`` or an integer >= ``MIN_TILE``,
    ``tile_pad`` a non-negative integer."""
    if tile is not None and tile != 'auto' and (not is_int(tile) or tile < MIN_TILE):
        raise ValueError(f"tile must be None, 'auto' or an integer >= {MIN_TILE}, got {tile!r}")
    check_int(tile_pad, 'tile_pad', minimum=0)
    return tile, tile_pad


def tile_starts(length, tile, tile_pad, min_tile):
    """Tile starts along one axis: every ``tile`` pixels; a last tile whose padded extent would be
    smaller than ``min_tile`` (the model's minimum input) is merged into the one before it."""
    starts = list(range(0, length, tile))
    if len(starts) > 1 and length - starts[-1] + min(tile_pad, starts[-1]) < min_tile:
        starts.pop()
    return starts


def _padded_tile(fn, x, box, tile_pad, wrap):
    """``fn`` on the tile ``box = (y0, x0, y1, x1)`` of ``x`` with its context; returns (output, padded box)."""
    h, w = x.shape[-2:]
    y0, x0, y1, x1 = box
    if wrap:
        py0, px0, py1, px1 = y0 - tile_pad, x0 - tile_pad, y1 + tile_pad, x1 + tile_pad
        index_y = torch.arange(py0, py1, device=x.device) % h
        index_x = torch.arange(px0, px1, device=x.device) % w
        return fn(x.index_select(-2, index_y).index_select(-1, index_x)).float().cpu(), (py0, px0, py1, px1)
    py0, px0 = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)
    py1, px1 = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
    return fn(x[..., py0:py1, px0:px1]).float().cpu(), (py0, px0, py1, px1)


def tiled_forward(fn, x, tile, tile_pad, scale, min_tile=1, wrap=False):
    """``fn`` over ``tile``×``tile`` tiles of ``x`` (N, C, H, W), each run with ``tile_pad`` pixels
    of context which are cropped away from its output. At the image border the context is clipped,
    or, with ``wrap``, taken from the opposite side (for models whose whole-image run treats the
    image as periodic, such as Converse-USRNet's FFT data step; a model says so with
    ``periodic_boundary = True``). No tile's padded input is smaller than
    ``min_tile`` (a short last tile is merged into the previous one). Each tile's output must be
    exactly ``scale`` × its input. The result is assembled on the CPU in float32, so device memory
    holds one tile at a time."""
    n, _, h, w = x.shape
    out = None
    rows, cols = tile_starts(h, tile, tile_pad, min_tile), tile_starts(w, tile, tile_pad, min_tile)
    for i, y0 in enumerate(rows):
        for j, x0 in enumerate(cols):
            y1 = rows[i + 1] if i + 1 < len(rows) else h
            x1 = cols[j + 1] if j + 1 < len(cols) else w
            patch, (py0, px0, py1, px1) = _padded_tile(fn, x, (y0, x0, y1, x1), tile_pad, wrap)
            if patch.shape[-2:] != ((py1 - py0) * scale, (px1 - px0) * scale):
                raise RuntimeError(f'the model turned a {px1 - px0}x{py1 - py0} tile into '
                                   f'{patch.shape[-1]}x{patch.shape[-2]}, not {scale}x its size')
            if out is None:
                out = torch.zeros(n, patch.shape[1], h * scale, w * scale)
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                patch[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out
