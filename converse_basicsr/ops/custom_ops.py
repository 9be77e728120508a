"""The solve as autograd and ``torch.compile`` see it: an autograd Function and two ``torch.library`` operators.

Autograd through the FFTs and the response would keep a dozen complex intermediates of the padded size
alive; :class:`ReverseConvolution` keeps only ``rfft2(x)`` and its hand-written backward
(:func:`.execution.solve_backward`, derived in ``docs/derivation.md`` §5) rebuilds the small-kernel
spectra channel group by channel group. It takes the unpadded map and pads it group by group, and its
backward applies the padding's adjoint group by group (:mod:`.padding`): autograd of ``F.pad`` would
allocate a dozen zero-filled copies of the padded map (circular mode), and the padded map itself.

Inductor generates no code for complex tensors: traced through, the solve runs slower than eager (0.55×
at 256², measured). As custom operators the forward and the backward stay opaque to the compiler and run
the eager implementation, while inductor compiles what surrounds them. Inside a custom operator's kernel
a lazily conjugated view (``.conj()``) is read without its conjugation (measured: wrong s = 2 outputs),
so :mod:`.spectral` conjugates with ``conj_physical`` throughout.
"""
import torch

from .execution import NCHW, solve, solve_backward
from .spectral import complex_dtype


class ReverseConvolution(torch.autograd.Function):
    """``(x, kernel, λ) →`` the reverse convolution of ``x`` in ``layout``, padded by ``crop`` with
    ``padding_mode`` (group by group) and cropped back (eager autograd)."""

    @staticmethod
    def forward(ctx, x, kernel, lam, scale, crop, padding_mode, layout):
        out, spectrum = solve(x, layout, scale, crop, kernel, lam, padding_mode=padding_mode, keep_spectrum=True)
        h, w = layout.size(x)
        ctx.scale, ctx.crop, ctx.padding_mode, ctx.layout = scale, crop, padding_mode, layout
        ctx.size = (h + 2 * crop, w + 2 * crop)
        ctx.save_for_backward(spectrum, kernel, lam)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        spectrum, kernel, lam = ctx.saved_tensors
        grads = solve_backward(grad_out, spectrum, kernel, lam, ctx.layout, ctx.scale, ctx.crop, ctx.size,
                               ctx.needs_input_grad[:3], ctx.padding_mode)
        return (*grads, None, None, None, None)


@torch.library.custom_op('converse_basicsr::reverse_convolution', mutates_args=())
def reverse_convolution_op(x: torch.Tensor, kernel: torch.Tensor, lam: torch.Tensor, scale: int,
                           crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, rfft2(x))`` of :func:`.execution.solve` for a padded channels-first ``(N, C, h, w)`` map."""
    return solve(x, NCHW, scale, crop, kernel, lam, keep_spectrum=True)


@reverse_convolution_op.register_fake
def _(x, kernel, lam, scale, crop):
    n, c, h, w = x.shape
    return (x.new_empty(n, c, (h - 2 * crop) * scale,
                        (w - 2 * crop) * scale), x.new_empty(n, c, h, w // 2 + 1, dtype=complex_dtype(x.dtype)))


@torch.library.custom_op('converse_basicsr::reverse_convolution_backward', mutates_args=())
def reverse_convolution_backward_op(grad_out: torch.Tensor, spectrum: torch.Tensor, kernel: torch.Tensor,
                                    lam: torch.Tensor, scale: int, crop: int,
                                    width: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    size = (spectrum.shape[-2], width)
    return solve_backward(grad_out.contiguous(), spectrum, kernel, lam, NCHW, scale, crop, size, (True, True, True))


@reverse_convolution_backward_op.register_fake
def _(grad_out, spectrum, kernel, lam, scale, crop, width):
    n, c, h, _ = spectrum.shape
    return spectrum.real.new_empty(n, c, h, width), torch.empty_like(kernel), torch.empty_like(lam)


def _setup_context(ctx, inputs, output):
    x, kernel, lam, scale, crop = inputs
    ctx.scale, ctx.crop, ctx.width = scale, crop, x.shape[-1]
    ctx.save_for_backward(output[1], kernel, lam)


def _backward(ctx, grad_out, grad_spectrum):
    spectrum, kernel, lam = ctx.saved_tensors
    grads = reverse_convolution_backward_op(grad_out, spectrum, kernel, lam, ctx.scale, ctx.crop, ctx.width)
    return (*grads, None, None)


reverse_convolution_op.register_autograd(_backward, setup_context=_setup_context)
