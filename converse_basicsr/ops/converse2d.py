"""Depthwise reverse convolution: the ``converse2d`` function and the ``Converse2D`` module.

This module checks arguments, pads, and picks the route (see :func:`converse2d`); the mathematics is in
:mod:`.spectral` (derived in ``docs/derivation.md``), how it runs in :mod:`.execution`, what autograd and
``torch.compile`` see in :mod:`.custom_ops`.
"""
import contextlib
import math
import numbers

import torch
from torch import nn

from .custom_ops import ReverseConvolution, reverse_convolution_op
from .dense_dft import dense_converse2d
from .execution import NCHW, NHWC, ResponseCache, solve
from .padding import PADDING_MODES, pad
from .spectral import regularizer, transfer_function, transfer_function_nhwc


def check_scale(scale, name='scale'):
    if isinstance(scale, bool) or not isinstance(scale, numbers.Integral) or scale < 1:
        raise ValueError(f'{name} must be a positive integer, got {scale!r}')
    return int(scale)


def check_padding(padding, padding_mode):
    if isinstance(padding, bool) or not isinstance(padding, numbers.Integral) or padding < 0:
        raise ValueError(f'padding must be a non-negative integer, got {padding!r}')
    if padding_mode not in PADDING_MODES:
        raise ValueError(f'padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}')


def check_input(x, channels=None, name='input'):
    if not torch.is_tensor(x) or x.dim() != 4:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise ValueError(f'{name} must be a 4-D tensor (N, C, H, W), got {shape}')
    if not x.is_floating_point():
        raise TypeError(f'{name} must be a floating-point tensor, got dtype {x.dtype}')
    if channels is not None and x.shape[1] != channels:
        raise ValueError(f'{name} has {x.shape[1]} channels, expected {channels} (shape {tuple(x.shape)})')


def is_channels_last(x):
    """Whether ``x`` is laid out channels last (and not also plainly contiguous, as with one channel)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def uses_nhwc_path(x):
    """Channels-last input, eager (any device): the reverse convolution runs on the channels-last map."""
    return is_channels_last(x) and not torch.compiler.is_compiling()


def check_eps(eps):
    if isinstance(eps, bool) or not isinstance(eps, numbers.Real) or not math.isfinite(eps) or not eps > 0:
        raise ValueError(f'eps must be a positive finite number, got {eps!r}')
    return float(eps)


def check_channels(value, name):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f'{name} must be a positive integer, got {value!r}')
    return int(value)


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _compute_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _full_precision(device_type):
    """Under ``torch.autocast`` the FFT algebra still runs in float32: turn autocast off inside."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def _empty_batch(x, weight, bias, shape, dtype):
    """The output for ``N = 0``, still linked to the inputs in the autograd graph (zero gradients)."""
    link = (x.sum() + weight.sum() + bias.sum()).to(dtype) * 0
    return x.new_zeros(shape, dtype=dtype) + link


def converse2d(x, weight, bias, scale=1, padding=2, padding_mode='circular', eps=1e-5, response=None):
    """Reverse convolution of ``x`` (``N, C, H, W``) → ``(N, C, H·scale, W·scale)``.

    Per channel, the closed-form solution of ``min_X ‖x − (X ⊛ K)↓s‖² + λ‖X − X0‖²`` with
    ``K = weight`` (``(1 or N, C, k, k)``), ``λ = sigmoid(bias − 9) + eps`` (``bias``:
    ``(1, C, 1, 1)``, ``eps`` positive and finite) and ``X0`` the nearest upsampling of ``x``; the
    input is padded by ``padding`` with ``padding_mode`` first and the result cropped back (derivation:
    ``docs/derivation.md``). Half-precision inputs are computed in float32 and returned in their dtype;
    under ``torch.autocast`` the result is float32 (like the other ops autocast runs in float32).
    ``response`` is a precomputed transfer function for this padded size and layout (a cache), optional.
    The output keeps the input's layout (channels last in, channels last out).

    Routes (every one computes the same function; they differ in where the work runs):

    ============================  ============  ================================================================
    when                          device        route
    ============================  ============  ================================================================
    under ``torch.onnx.export``   any           :func:`.dense_dft.dense_converse2d`: DFTs as matrix products
                                                in plain graph operators (float32)
    under ``torch.compile``       any           custom operator ``converse_basicsr::reverse_convolution`` on the
                                                padded channels-first map, backward as a second operator
    eager, channels last, grad    CPU, CUDA     :class:`ReverseConvolution` on the ``(N, H, W, C)`` view, padded
                                                group by group; the padding's adjoint in its backward
    eager, channels last          CPU, CUDA     :func:`.execution.solve` on the ``(N, H, W, C)`` view, padded
                                                channel group by channel group; ``response`` if given
    eager, channels first, grad   CPU, CUDA     :class:`ReverseConvolution`, padded group by group; the
                                                padding's adjoint in its backward
    eager, channels first         CPU, CUDA     :func:`.execution.solve`, padded group by group; ``response``
    ``N = 0``                     any           zeros linked to the inputs' graph
    ============================  ============  ================================================================

    "grad" means autograd records the call (grad mode on and an input requiring grad). Within a route,
    :mod:`.execution` chooses the FFT (scipy's pocketfft on CPU, on one worker; ``torch.fft`` otherwise) and
    the channel groups (cache-sized on CPU, from free memory on CUDA), which on CPU run on the threads of
    :mod:`.parallel`, one group per thread at a time;
    the full-size results (output, kept ``rfft2(x)``, input gradient) come from :mod:`.buffers`, which on
    CPU reuses the memory of earlier results that nothing holds any more. No route reads process-wide state.
    """
    scale = check_scale(scale)
    check_padding(padding, padding_mode)
    eps = check_eps(eps)
    check_input(x, channels=weight.shape[1])
    if weight.dim() != 4 or weight.shape[0] not in (1, x.shape[0]):
        raise ValueError(f'weight must have shape (1 or N, C, k, k), got {tuple(weight.shape)} '
                         f'for input {tuple(x.shape)}')
    autocast = torch.is_autocast_enabled(x.device.type)
    dtype = _compute_dtype(x.dtype)
    out_dtype = dtype if autocast else x.dtype
    if torch.onnx.is_in_onnx_export():  # traced into standard ONNX operators (see dense_dft.py)
        return dense_converse2d(x, weight, bias, scale, padding, padding_mode, eps)
    n, c, h, w = x.shape
    if n == 0:
        return _empty_batch(x, weight, bias, (0, c, h * scale, w * scale), out_dtype)
    with _full_precision(x.device.type):
        lam = regularizer(bias.to(dtype), eps)
        kernel = weight.to(dtype)
        if torch.compiler.is_compiling():  # an opaque operator for the compiler (see custom_ops.py)
            xp = pad(x.to(dtype), padding, padding_mode)
            out = reverse_convolution_op(xp, kernel, lam, scale, padding)[0]
            return (out.contiguous(memory_format=torch.channels_last) if is_channels_last(x) else out).to(out_dtype)
        layout = NHWC if uses_nhwc_path(x) else NCHW
        view = x.permute(0, 2, 3, 1).to(dtype) if layout is NHWC else x.to(dtype)
        if _needs_grad(view, kernel, lam):
            out = ReverseConvolution.apply(view, kernel, lam, scale, padding, padding_mode, layout)
        elif response is not None:
            out = solve(view, layout, scale, padding, response_=response, padding_mode=padding_mode)
        else:
            out = solve(view, layout, scale, padding, kernel, lam, padding_mode=padding_mode)
        if layout is NHWC:
            out = out.permute(0, 3, 1, 2)
    return out.to(out_dtype)


class Converse2D(nn.Module):
    """Depthwise reverse convolution layer (Huang et al., ICCV 2025).

    ``in_channels`` must equal ``out_channels``. Parameters ``weight`` ``(1, C, k, k)``
    (softmax-normalised random init) and ``bias`` ``(1, C, 1, 1)`` (zeros) follow the published
    checkpoint format. In eval mode under ``torch.no_grad`` the frequency response is cached per
    input size (at most 4 sizes, each up to ``CACHE_MAX_BYTES``) and recomputed whenever ``weight``,
    ``bias`` or ``eps`` change.
    """

    def __init__(self, in_channels, out_channels, kernel_size, scale=1, padding=2, padding_mode='circular', eps=1e-5):
        super().__init__()
        in_channels = check_channels(in_channels, 'in_channels')
        out_channels = check_channels(out_channels, 'out_channels')
        if in_channels != out_channels:
            raise ValueError(f'Converse2D is depthwise: in_channels ({in_channels}) must equal '
                             f'out_channels ({out_channels})')
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) or kernel_size < 1:
            raise ValueError(f'kernel_size must be a positive integer, got {kernel_size!r}')
        self.eps = check_eps(eps)
        self.scale = check_scale(scale)
        check_padding(padding, padding_mode)
        self.in_channels = self.out_channels = in_channels
        self.kernel_size = int(kernel_size)
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.weight = nn.Parameter(torch.empty(1, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(1, in_channels, 1, 1))
        self._cache = ResponseCache(max_entries=4)
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():
            k = self.kernel_size
            self.weight.copy_(torch.softmax(torch.randn(1, self.in_channels, k * k), dim=-1).view_as(self.weight))
            self.bias.zero_()

    CACHE_MAX_BYTES = 8 * 2**20  # per entry; at most 4 entries (input sizes) per layer

    def _cached_response(self, x):
        """The frequency response for ``x``'s padded size, cached when no gradient is needed."""
        if self.training or torch.is_grad_enabled():
            self._cache.clear()
            return None
        if torch.compiler.is_compiling():  # under the compiler the custom operator builds the response
            return None
        dtype = _compute_dtype(x.dtype)
        size = (x.shape[-2] + 2 * self.padding, x.shape[-1] + 2 * self.padding)
        layout = NHWC if uses_nhwc_path(x) else NCHW

        def build():
            with _full_precision(x.device.type):
                lam = regularizer(self.bias.detach().to(dtype), self.eps)
                make = transfer_function_nhwc if layout is NHWC else transfer_function
                return make(self.weight.detach().to(dtype), lam, size, self.scale)

        return self._cache.lookup(self.weight, self.bias, self.eps, size, self.scale, dtype, layout, build,
                                  self.CACHE_MAX_BYTES)

    def forward(self, x):
        check_input(x, channels=self.in_channels)
        response = self._cached_response(x) if x.shape[0] > 0 else None
        return converse2d(x, self.weight, self.bias, self.scale, self.padding, self.padding_mode, self.eps,
                          response=response)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, scale={self.scale}, '
                f'padding={self.padding}, padding_mode={self.padding_mode!r}, eps={self.eps}')
