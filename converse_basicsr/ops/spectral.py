"""The FFT algebra of reverse convolution, written once.

Notation of ``docs/converse2d.md`` §1: ``x`` is the padded input of size ``h × w``, ``s`` the
scale, ``FK`` the DFT of the (centred) kernel at the output size ``hs × ws``, ``λ`` the
per-channel regulariser. The accurate form of the solve,

    F = DFT(X0) + conj(FK) · tile((DFT(x) − fold(FK · DFT(X0))) / (fold(|FK|²) + λ)),

with ``DFT(X0) = tile(DFT(x)) · B`` (``B`` the response of the ``s × s`` box anchored at the
origin), factors because ``tile(DFT(x))`` is periodic over the tiles and comes out of ``fold``:

    F = tile(DFT(x)) · H,   H = B + conj(FK) · tile((1 − fold(FK · B)) / (fold(|FK|²) + λ)).

``H`` depends only on the kernel, ``λ``, the size and the scale, never on the image, and
nothing is divided by ``λ``. For ``s = 1`` it is ``(conj(FK) + λ) / (|FK|² + λ)``. Because the
output is real, only the ``ws // 2 + 1`` non-negative column frequencies of ``H`` are needed.
"""
import math

import torch


def _twiddles(n, k, length, device, dtype, centre=None):
    """``exp(-2πi · f · (a − centre) / n)`` for ``f < length`` and ``a < k``, a ``(length, k)`` matrix.

    ``centre`` defaults to ``⌊k/2⌋``. The phase index is reduced modulo ``n`` in integers so that
    float32 twiddles are exact to rounding.
    """
    centre = k // 2 if centre is None else centre
    freq = torch.arange(length, device=device, dtype=torch.int64)[:, None]
    taps = torch.arange(k, device=device, dtype=torch.int64)[None, :] - centre
    phase = torch.remainder(freq * taps, n).to(torch.float64) * (-2.0 * math.pi / n)
    return torch.polar(torch.ones_like(phase), phase).to(dtype)


def kernel_spectrum(kernel, size, onesided=False):
    """DFT at ``size = (M, N)`` of a ``(..., k, k)`` kernel whose centre ``⌊k/2⌋`` sits at the origin.

    Computed as ``W_rows @ K @ W_cols^T`` with DFT twiddles (``k`` columns each) instead of an FFT
    of a zero-padded ``M × N`` array. ``onesided`` keeps the ``N // 2 + 1`` columns of an rfft.
    """
    m, n = size
    k_rows, k_cols = kernel.shape[-2:]
    cdtype = torch.complex128 if kernel.dtype == torch.float64 else torch.complex64
    w_rows = _twiddles(m, k_rows, m, kernel.device, cdtype)
    w_cols = _twiddles(n, k_cols, n // 2 + 1 if onesided else n, kernel.device, cdtype)
    return w_rows @ kernel.to(cdtype) @ w_cols.transpose(0, 1)


def fold(spectrum, scale):
    """Average the ``scale × scale`` grid of tiles of a ``(..., hs, ws)`` spectrum into ``(..., h, w)``."""
    if scale == 1:
        return spectrum
    *lead, hs, ws = spectrum.shape
    tiles = spectrum.reshape(*lead, scale, hs // scale, scale, ws // scale)
    return tiles.mean(dim=(-4, -2))


def tile(spectrum, scale):
    """Repeat a ``(..., h, w)`` array ``scale × scale`` times into ``(..., hs, ws)``."""
    if scale == 1:
        return spectrum
    return spectrum.repeat(*([1] * (spectrum.dim() - 2)), scale, scale)


def box_spectrum(scale, size, device, dtype, onesided=False):
    """DFT at ``size`` of the ``scale × scale`` box of ones anchored at the origin.

    Nearest upsampling is zero insertion followed by this box, so ``DFT(X0) = tile(DFT(x)) · B``.
    """
    m, n = size
    rows = _twiddles(m, scale, m, device, dtype, centre=0).sum(dim=1)
    cols = _twiddles(n, scale, n // 2 + 1 if onesided else n, device, dtype, centre=0).sum(dim=1)
    return rows[:, None] * cols[None, :]


def regularizer(bias, eps):
    """``λ = sigmoid(bias − 9) + eps``, the learned per-channel weight of the prior ``‖X − X0‖²``."""
    return torch.sigmoid(bias - 9.0) + eps


def transfer_function(kernel, lam, size, scale):
    """The per-channel frequency response ``H`` of reverse convolution at the output size.

    ``kernel``: ``(B, C, k, k)`` with ``B`` 1 (a learned kernel) or the batch size (a per-sample
    kernel); ``lam``: broadcastable to ``(B, C, 1, 1)``; ``size``: the padded input ``(h, w)``.
    Returns ``(B, C, hs, ws // 2 + 1)``: multiply by ``tile(DFT(x))`` and take ``irfft2``.
    """
    h, w = size
    hs, ws = h * scale, w * scale
    if scale == 1:
        fk = kernel_spectrum(kernel, (h, w), onesided=True)
        return (fk.conj() + lam) / (fk.real.square() + fk.imag.square() + lam)
    fk = kernel_spectrum(kernel, (hs, ws))
    box = box_spectrum(scale, (hs, ws), kernel.device, fk.dtype)
    gain = (1 - fold(fk * box, scale)) / (fold(fk.real.square() + fk.imag.square(), scale) + lam)
    response = box + fk.conj() * tile(gain, scale)
    return response[..., :ws // 2 + 1]


def apply_transfer(x, response, scale):
    """``irfft2(tile(DFT(x)) · H)`` for a real ``(N, C, h, w)`` map and ``H`` from :func:`transfer_function`."""
    h, w = x.shape[-2:]
    hs, ws = h * scale, w * scale
    if scale == 1:
        spec = torch.fft.rfft2(x)
    else:
        spec = tile(torch.fft.fft2(x), scale)[..., :ws // 2 + 1]
    return torch.fft.irfft2(spec * response, s=(hs, ws))
