"""Depthwise reverse convolution: the ``converse2d`` function and the ``Converse2D`` module."""
import contextlib
import numbers

import torch
from torch import nn

from .spectral import (ReverseConvolution, ReverseConvolutionNHWC, regularizer, reverse_convolution_op, reverse_convolve,
                       reverse_convolve_nhwc, transfer_function, transfer_function_nhwc)

PADDING_MODES = ('circular', 'reflect', 'replicate', 'constant')


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


def _check_pad_size(h, w, padding, padding_mode):
    if padding_mode == 'reflect' and padding >= min(h, w):
        raise ValueError(f"padding={padding} with padding_mode='reflect' must be smaller than the input size {h}x{w}")
    if padding_mode == 'circular' and padding > min(h, w):
        raise ValueError(f"padding={padding} with padding_mode='circular' must not exceed the input size {h}x{w}")


def _pad(x, padding, padding_mode):
    if padding == 0:
        return x
    _check_pad_size(*x.shape[-2:], padding, padding_mode)
    return nn.functional.pad(x, (padding,) * 4, mode=padding_mode)


def _pad_nhwc(x, padding, padding_mode):
    """``_pad`` of a channels-last ``(N, H, W, C)`` map: as a 5-D map, whose last three axes F.pad pads."""
    if padding == 0:
        return x.contiguous()
    _check_pad_size(*x.shape[1:3], padding, padding_mode)
    return nn.functional.pad(x.unsqueeze(0), (0, 0) + (padding,) * 4, mode=padding_mode).squeeze(0)


def is_channels_last(x):
    """Whether ``x`` is laid out channels last (and not also plainly contiguous, as with one channel)."""
    return x.dim() == 4 and not x.is_contiguous() and x.is_contiguous(memory_format=torch.channels_last)


def uses_nhwc_path(x):
    """Channels-last input on CPU, eager: the reverse convolution runs channels last
    (:func:`~converse_basicsr.ops.spectral.reverse_convolve_nhwc`, with autograd
    :class:`~converse_basicsr.ops.spectral.ReverseConvolutionNHWC`)."""
    return x.device.type == 'cpu' and is_channels_last(x) and not torch.compiler.is_compiling()


def _needs_grad(*tensors):
    return torch.is_grad_enabled() and any(t.requires_grad for t in tensors)


def _compute_dtype(dtype):
    return torch.float64 if dtype == torch.float64 else torch.float32


def _full_precision(device_type):
    """Under ``torch.autocast`` the FFT algebra still runs in float32: turn autocast off inside."""
    if torch.is_autocast_enabled(device_type):
        return torch.autocast(device_type, enabled=False)
    return contextlib.nullcontext()


def converse2d(x, weight, bias, scale=1, padding=2, padding_mode='circular', eps=1e-5, response=None):
    """Reverse convolution of ``x`` (``N, C, H, W``) → ``(N, C, H·scale, W·scale)``.

    Per channel, the closed-form solution of ``min_X ‖x − (X ⊛ K)↓s‖² + λ‖X − X0‖²`` with
    ``K = weight`` (``(1 or N, C, k, k)``), ``λ = sigmoid(bias − 9) + eps`` (``bias``:
    ``(1, C, 1, 1)``) and ``X0`` the nearest upsampling of ``x``; the input is padded by
    ``padding`` with ``padding_mode`` first and the result cropped back. Half-precision inputs
    are computed in float32 and returned in their dtype; under ``torch.autocast`` the result is
    float32 (like the other ops autocast runs in float32). ``response`` is a precomputed
    :func:`~converse_basicsr.ops.spectral.transfer_function` for this size (a cache), optional.
    """
    scale = check_scale(scale)
    check_padding(padding, padding_mode)
    check_input(x, channels=weight.shape[1])
    if weight.dim() != 4 or weight.shape[0] not in (1, x.shape[0]):
        raise ValueError(f'weight must have shape (1 or N, C, k, k), got {tuple(weight.shape)} for input {tuple(x.shape)}')
    autocast = torch.is_autocast_enabled(x.device.type)
    dtype = _compute_dtype(x.dtype)
    out_dtype = dtype if autocast else x.dtype
    n, c, h, w = x.shape
    if n == 0:
        return x.new_empty(0, c, h * scale, w * scale, dtype=out_dtype)
    with _full_precision(x.device.type):
        if uses_nhwc_path(x):
            xh = _pad_nhwc(x.permute(0, 2, 3, 1).to(dtype), padding, padding_mode)
            if response is not None:
                out = reverse_convolve_nhwc(xh, scale, padding, response=response)
            else:
                lam = regularizer(bias.to(dtype), eps)
                if _needs_grad(xh, weight, lam):
                    out = ReverseConvolutionNHWC.apply(xh, weight.to(dtype), lam, scale, padding)
                else:
                    out = reverse_convolve_nhwc(xh, scale, padding, kernel=weight.to(dtype), lam=lam)
            return out.permute(0, 3, 1, 2).to(out_dtype)
        lam = regularizer(bias.to(dtype), eps)
        if torch.compiler.is_compiling() or _needs_grad(x, weight, lam):
            xp = _pad(x.to(dtype), padding, padding_mode).contiguous()
            if torch.compiler.is_compiling():  # an opaque operator for the compiler (see spectral.py)
                out = reverse_convolution_op(xp, weight.to(dtype), lam, scale, padding)[0]
            else:
                out = ReverseConvolution.apply(xp, weight.to(dtype), lam, scale, padding)
        else:  # padded channel group by channel group inside
            args = dict(response=response) if response is not None else dict(kernel=weight.to(dtype), lam=lam)
            out = reverse_convolve(x.to(dtype).contiguous(), scale, padding,
                                   pad=lambda t: _pad(t, padding, padding_mode).contiguous(), **args)
        if is_channels_last(x):  # keep the caller's layout (the archs run channels last)
            out = out.contiguous(memory_format=torch.channels_last)
    return out.to(out_dtype)


class Converse2D(nn.Module):
    """Depthwise reverse convolution layer (Huang et al., ICCV 2025).

    ``in_channels`` must equal ``out_channels``. Parameters ``weight`` ``(1, C, k, k)``
    (softmax-normalised random init) and ``bias`` ``(1, C, 1, 1)`` (zeros) follow the published
    checkpoint format. In eval mode under ``torch.no_grad`` the frequency response is cached per
    input size (at most 4 sizes, each up to ``CACHE_MAX_BYTES``) and recomputed whenever ``weight``,
    ``bias`` or ``eps`` change.
    """

    def __init__(self, in_channels, out_channels, kernel_size, scale=1, padding=2, padding_mode='circular',
                 eps=1e-5):
        super().__init__()
        if in_channels != out_channels:
            raise ValueError(f'Converse2D is depthwise: in_channels ({in_channels}) must equal '
                             f'out_channels ({out_channels})')
        if isinstance(kernel_size, bool) or not isinstance(kernel_size, numbers.Integral) or kernel_size < 1:
            raise ValueError(f'kernel_size must be a positive integer, got {kernel_size!r}')
        if not eps > 0:
            raise ValueError(f'eps must be positive, got {eps!r}')
        self.scale = check_scale(scale)
        check_padding(padding, padding_mode)
        self.in_channels = self.out_channels = in_channels
        self.kernel_size = int(kernel_size)
        self.padding = int(padding)
        self.padding_mode = padding_mode
        self.eps = float(eps)
        self.weight = nn.Parameter(torch.empty(1, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.empty(1, in_channels, 1, 1))
        self._cache = {}
        self.reset_parameters()

    def reset_parameters(self):
        with torch.no_grad():
            k = self.kernel_size
            self.weight.copy_(torch.softmax(torch.randn(1, self.in_channels, k * k), dim=-1).view_as(self.weight))
            self.bias.zero_()

    CACHE_MAX_BYTES = 8 * 2 ** 20  # per entry; at most 4 entries (input sizes) per layer

    def _cached_response(self, x):
        """The frequency response for ``x``'s padded size, cached when no gradient is needed."""
        if self.training or torch.is_grad_enabled():
            self._cache.clear()
            return None
        if torch.compiler.is_compiling():  # under the compiler the custom operator builds the response
            return None
        dtype = _compute_dtype(x.dtype)
        size = (x.shape[-2] + 2 * self.padding, x.shape[-1] + 2 * self.padding)
        itemsize = 16 if dtype == torch.float64 else 8
        if self.in_channels * self.scale ** 2 * size[0] * (size[1] // 2 + 1) * itemsize > self.CACHE_MAX_BYTES:
            # Large maps: the response costs a few percent of the FFTs when built channel group by
            # channel group in cache, and holding it would cost as much memory as the activations.
            return None
        nhwc = uses_nhwc_path(x)
        key = (size, self.scale, dtype, x.device, nhwc)
        stamp = (self.weight._version, self.bias._version, self.weight.data_ptr(), self.bias.data_ptr(), self.eps)
        hit = self._cache.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        with _full_precision(x.device.type):
            lam = regularizer(self.bias.detach().to(dtype), self.eps)
            build = transfer_function_nhwc if nhwc else transfer_function
            response = build(self.weight.detach().to(dtype), lam, size, self.scale)
        if len(self._cache) >= 4:
            self._cache.pop(next(iter(self._cache)))
        self._cache[key] = (stamp, response)
        return response

    def forward(self, x):
        check_input(x, channels=self.in_channels)
        response = self._cached_response(x) if x.shape[0] > 0 else None
        return converse2d(x, self.weight, self.bias, self.scale, self.padding, self.padding_mode, self.eps,
                          response=response)

    def extra_repr(self):
        return (f'{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, scale={self.scale}, '
                f'padding={self.padding}, padding_mode={self.padding_mode!r}, eps={self.eps}')
