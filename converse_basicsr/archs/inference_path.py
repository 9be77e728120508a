"""The blocks without autograd: pointwise layers in row blocks, full-size maps in reused memory.

Most of a ConverseBlock is pointwise (LayerNorm over channels, 1×1 convolutions, GELU): only Converse2D
(or the baselines' depthwise layer) looks at neighbouring pixels. At 128 channels a block's activations are
32 MiB and more per 256² image, each a fresh zero-filled mapping in a plain process (why: ``ops/buffers.py``).
So when nothing records a graph, a branch runs its pointwise layers one block of rows at a time (the
intermediates are cache-sized and the heap reuses them), writes only the maps that the next spatial layer
needs whole into reused memory, applies GELU in place to outputs it has just made, and adds the residual
row block by row block. Every pixel goes through the same layers in the same order as in
``alpha · branch(x) + x``; what can differ is the matrix kernel that oneDNN picks for a 1×1 convolution
of fewer pixels, at float32 rounding level.
"""
import torch
from torch import nn
from torch.nn.modules import module as torch_module

from ..ops import buffers

ROW_BLOCK_BYTES = 2**22  # the widest activation of one row block of one image


def pointwise(layer):
    """Whether each output pixel of ``layer`` depends on that input pixel only (a class may say so with
    ``pointwise = True``)."""
    if getattr(type(layer), 'pointwise', False) or type(layer) is nn.GELU:
        return True
    return (type(layer) is nn.Conv2d and layer.kernel_size == (1, 1) and layer.stride == (1, 1)
            and layer.padding == (0, 0))


def _hooked(module):
    return bool(module._forward_hooks or module._forward_pre_hooks)


def works_in_place(block, x):
    """Whether ``block`` may use :func:`run_branch`: eager, nothing for autograd to record, no autocast,
    a 4-D float map, no forward hooks (a hook may keep an output that in-place work would then change)."""
    if torch.compiler.is_compiling() or x.dim() != 4 or not x.is_floating_point():
        return False
    if torch.is_autocast_enabled(x.device.type):
        return False
    if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in block.parameters())):
        return False
    if torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks:
        return False
    return not any(_hooked(m) for m in block.modules())


def _runs(branch):
    """``branch``'s layers grouped into ``(is_pointwise, [layers])`` runs, in order."""
    runs = []
    for layer in branch:
        kind = pointwise(layer)
        if runs and runs[-1][0] and kind:
            runs[-1][1].append(layer)
        else:
            runs.append((kind, [layer]))
    return runs


def _channels(layers, channels):
    """The widest map inside a pointwise run and the run's output channels, for ``channels`` in."""
    widest = channels
    for layer in layers:
        if type(layer) is nn.Conv2d:
            channels = layer.out_channels
            widest = max(widest, channels)
    return widest, channels


def _row_blocks(x, widest):
    """``(image, rows)`` index pairs covering ``x`` in blocks whose widest map is about ``ROW_BLOCK_BYTES``."""
    n, _, h, w = x.shape
    step = max(1, ROW_BLOCK_BYTES // max(1, w * widest * x.element_size()))
    return [(slice(i, i + 1), slice(r, min(r + step, h))) for i in range(n) for r in range(0, h, step)]


def _apply(layers, t):
    """A pointwise run on the row block ``t`` (left unchanged); each later GELU works on a new map in place."""
    for k, layer in enumerate(layers):
        if k > 0 and type(layer) is nn.GELU:
            t = torch.ops.aten.gelu_(t, approximate=layer.approximate)
        else:
            t = layer(t)
    return t


def scaled(t, alpha):
    """``alpha · t``, or ``t`` itself for ``alpha`` None."""
    return t if alpha is None else alpha * t


def _channels_last_empty(n, c, h, w, like):
    return buffers.empty((n, h, w, c), like.dtype, like.device).permute(0, 3, 1, 2)


def run_branch(branch, x, alpha=None, into_residual=False):
    """``alpha · branch(x) + x`` (``alpha`` None: 1) for a ``branch`` (``nn.Sequential``) that keeps ``x``'s size.

    With ``into_residual`` the sum is written into ``x`` itself, which must then be a map that only the
    caller holds; otherwise into a new map. Call only where :func:`works_in_place` holds.
    """
    runs = _runs(branch)
    if not runs[-1][0]:  # the branch ends in a spatial layer: the plain sum
        return scaled(branch(x), alpha) + x
    h = x
    for index, (is_pointwise, layers) in enumerate(runs):
        if not is_pointwise:
            for layer in layers:
                h = layer(h)
            continue
        last = index == len(runs) - 1
        widest, channels = _channels(layers, h.shape[1])
        if last:
            dest = x if into_residual else _channels_last_empty(*x.shape, like=x)
        else:
            dest = _channels_last_empty(h.shape[0], channels, h.shape[2], h.shape[3], like=h)
        for image, rows in _row_blocks(h, widest):
            y = _apply(layers, h[image, :, rows])
            if not last:
                dest[image, :, rows].copy_(y)
                continue
            if alpha is not None:
                y = y.mul_(alpha)
            if into_residual:
                dest[image, :, rows].add_(y)
            else:
                torch.add(y, x[image, :, rows], out=dest[image, :, rows])
        h = dest
    return h
