"""The one tensor-level run shared by ``converse-restore`` and ``converse-compare``: whole or in tiles (one tile
rule, one minimum tile, one kernel dispatch), returning a checked float32 CPU tensor (one error type)."""
import torch

from converse_basicsr.data.io import ImageError
from converse_basicsr.inference.tiling import tiled_forward

__all__ = ['run', 'choose_tile', 'OutputError']


class OutputError(ImageError):
    """A model output that cannot be used: not a tensor, not ``scale`` × the input's size, or not finite."""


def choose_tile(tile, h, w, planner=None):
    """The tile size for an ``h``×``w`` input: ``'auto'`` asks ``planner`` (whole image without one); a tile
    at least as large as the image means the whole image (``None``)."""
    if tile == 'auto':
        tile = planner.auto_tile(h, w) if planner is not None else None
    return None if tile is None or tile >= max(h, w) else tile


@torch.no_grad()
def run(info, x, kernel=None, tile=None, tile_pad=32, planner=None, source='image'):
    """``info``'s model (a :class:`~converse_basicsr.inference.description.ModelInfo`) on ``x`` (1, C, h, w),
    already on its device and dtype: whole, or in tiles of ``tile`` (see :func:`choose_tile`) with ``tile_pad``
    pixels of context, no tile smaller than the model's minimum input and, for a periodic model, context
    wrapped around. ``kernel`` goes to a kernel-conditioned model only. Returns the output as float32 on the
    CPU; raises :class:`OutputError` (naming ``source``) unless it is a finite ``info.scale`` × ``x`` tensor."""
    h, w = x.shape[-2:]
    tile = choose_tile(tile, h, w, planner)

    def forward(t):
        return info.forward(t, kernel)

    try:
        if tile is None:
            out = forward(x)
        else:
            out = tiled_forward(forward, x, tile, tile_pad, info.scale, info.min_size, wrap=info.periodic)
    except torch.cuda.OutOfMemoryError as err:
        raise RuntimeError(f'out of memory on {info.device} for a {w}x{h} image; use a tile size '
                           f'(--tile 256) or --tile auto') from err
    if not torch.is_tensor(out):
        raise OutputError(f'{source}: model {info.name} returned {type(out).__name__}, not a tensor')
    out = out.float().cpu()
    if out.shape[-2:] != (h * info.scale, w * info.scale):
        raise OutputError(f'{source}: model {info.name} gave a {out.shape[-1]}x{out.shape[-2]} output for a '
                          f'{w}x{h} input, expected {info.scale}x')
    bad = (~torch.isfinite(out)).sum().item()
    if bad:
        raise OutputError(f'{source}: model {info.name} produced {bad} NaN or infinite output values '
                          '(a broken checkpoint?)')
    return out
