"""Padding before the solve, and its adjoint for the backward (both applied one channel group at a time).

The solve pads its input by ``p`` on every side with ``padding_mode``; the backward needs the adjoint of
that padding, which folds the gradient of the padded map back onto the input. Autograd of ``F.pad`` does
this with a chain of full-size zero-filled copies (a dozen for circular padding); :func:`pad_adjoint` adds
each border strip onto the input row or column it was copied from, per axis, in place.
"""
from torch import nn

PADDING_MODES = ('circular', 'reflect', 'replicate', 'constant')


def min_size(padding, padding_mode):
    """The smallest height and width that :func:`pad` accepts: ``reflect`` mirrors rows without repeating the
    edge, so it needs ``padding + 1``; ``circular`` wraps at most the whole input, ``padding``; ``replicate`` and
    ``constant`` pad any input of at least one pixel."""
    if padding_mode == 'reflect':
        return padding + 1
    return max(1, padding) if padding_mode == 'circular' else 1


def min_input_size(model):
    """The smallest square input ``model`` runs on, from its layers that pad with :func:`pad` (each ``Converse2D``:
    an int ``padding`` and a ``padding_mode`` of :data:`PADDING_MODES`); 1 when none constrains it."""
    sizes = [
        min_size(m.padding, m.padding_mode) for m in model.modules()
        if isinstance(getattr(m, 'padding', None), int) and getattr(m, 'padding_mode', None) in PADDING_MODES
    ]
    return max(sizes + [1])


def check_pad_size(h, w, padding, padding_mode):
    need = min_size(padding, padding_mode)
    if h < need or w < need:
        raise ValueError(f"padding={padding} with padding_mode='{padding_mode}' needs an input of at least "
                         f'{need}x{need}, got {h}x{w}')


def pad(x, padding, padding_mode, channels_last=False):
    """``x`` padded by ``padding`` on every side of its spatial axes, contiguous.

    ``x``: ``(N, C, H, W)``, or with ``channels_last`` an ``(N, H, W, C)`` map (padded as a 5-D map whose last
    three axes F.pad pads, the channel axis by 0).
    """
    if padding == 0:
        return x.contiguous()
    if channels_last:
        check_pad_size(*x.shape[1:3], padding, padding_mode)
        return nn.functional.pad(x.unsqueeze(0), (0, 0) + (padding, ) * 4, mode=padding_mode).squeeze(0)
    check_pad_size(*x.shape[-2:], padding, padding_mode)
    return nn.functional.pad(x, (padding, ) * 4, mode=padding_mode).contiguous()


def _fold_axis(grad, padding, padding_mode, dim):
    """The adjoint of padding one axis: ``(…, n + 2p, …)`` → ``(…, n, …)`` (a new tensor)."""
    p = padding
    n = grad.shape[dim] - 2 * p
    out = grad.narrow(dim, p, n).clone()
    top, bottom = grad.narrow(dim, 0, p), grad.narrow(dim, n + p, p)
    if padding_mode == 'circular':  # top strip copies the last p rows, bottom strip the first p
        out.narrow(dim, n - p, p).add_(top)
        out.narrow(dim, 0, p).add_(bottom)
    elif padding_mode == 'replicate':  # every border row copies the edge row
        out.narrow(dim, 0, 1).add_(top.sum(dim, keepdim=True))
        out.narrow(dim, n - 1, 1).add_(bottom.sum(dim, keepdim=True))
    elif padding_mode == 'reflect':  # border row i is row p − i (top), row n − 2 − j (bottom)
        out.narrow(dim, 1, p).add_(top.flip(dim))
        out.narrow(dim, n - 1 - p, p).add_(bottom.flip(dim))
    return out  # 'constant': the border holds no input value


def pad_adjoint(grad, padding, padding_mode, channels_last=False):
    """The gradient of :func:`pad`'s input from the gradient ``grad`` of its output (same layout)."""
    if padding == 0:
        return grad
    rows, cols = (1, 2) if channels_last else (2, 3)
    return _fold_axis(_fold_axis(grad, padding, padding_mode, rows), padding, padding_mode, cols)
