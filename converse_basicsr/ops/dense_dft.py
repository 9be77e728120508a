"""Reverse convolution with every DFT written as dense matrix products: the formulation that ONNX export traces.

The same function as :func:`.converse2d.converse2d` (``out_r = IDFT(DFT(x) · H_r)``, ``docs/derivation.md``),
in real arithmetic only (no complex tensors, no FFT): the DFT matrices are built from the input's shape inside
the graph (``arange``, ``cos``, ``sin``), so one exported graph serves every size, and every transform is a
matrix product, which ONNX Runtime (MLAS), TensorRT and other runtimes run fastest. ONNX Runtime's own DFT
operator is an O(n²) loop per axis for sizes that are not powers of two and failed for dynamic onesided shapes
(measured: ``docs/export.md``). Complex values are pairs ``(re, im)`` of real tensors.

Along the width the forward transform is onesided (``w // 2 + 1`` frequencies, the input is real) and the
inverse is the matching real (c2r) transform; along the height both are full. The inverse transforms evaluate
only the rows and columns that survive the crop.
"""
import math

import torch

from .padding import pad
from .spectral import regularizer


def _angles(positions, freqs, n):
    """``2π (position · freq mod n) / n`` as an ``(len(positions), len(freqs))`` float32 table (exact integers
    before the one rounding)."""
    turns = torch.remainder(positions[:, None] * freqs[None, :], _size(n, positions.device))
    return turns.to(torch.float32) * (2.0 * math.pi) / n


def _size(n, device):
    """``n`` (a size, symbolic while traced) as a 0-d int64 tensor, for ``remainder``."""
    return torch.full((), n, dtype=torch.int64, device=device)


def _arange(start, stop, device):
    return torch.arange(start, stop, device=device, dtype=torch.int64)


def forward_dft(x):
    """``rfft2`` of a real ``(…, h, w)`` map as ``(re, im)``, each ``(…, h, w // 2 + 1)``."""
    h, w = x.shape[-2:]
    wc = w // 2 + 1
    cols = _angles(_arange(0, w, x.device), _arange(0, wc, x.device), w)
    a = x @ torch.cat((torch.cos(cols), -torch.sin(cols)), dim=1)  # (…, h, 2·wc): [Ar | Ai]
    rows = _angles(_arange(0, h, x.device), _arange(0, h, x.device), h)
    p = torch.cat((torch.cos(rows), torch.sin(rows)), dim=0) @ a  # [[Ch Ar, Ch Ai], [Sh Ar, Sh Ai]]
    top, bottom = p[..., :h, :], p[..., h:, :]
    return top[..., :wc] + bottom[..., wc:], top[..., wc:] - bottom[..., :wc]


def inverse_dft(re, im, size, crop):
    """``irfft2`` of ``(re, im)`` (``(…, h, w // 2 + 1)``) at ``size = (h, w)``, only the rows and columns
    ``crop … h − crop − 1`` / ``crop … w − crop − 1``."""
    h, w = size
    wc = re.shape[-1]
    rows = _angles(_arange(crop, h - crop, re.device), _arange(0, h, re.device), h)
    p = torch.cat((torch.cos(rows), torch.sin(rows)), dim=0) @ torch.cat((re, im), dim=-1)
    hc = h - 2 * crop
    top, bottom = p[..., :hc, :], p[..., hc:, :]
    z = torch.cat((top[..., :wc] - bottom[..., wc:], top[..., wc:] + bottom[..., :wc]), dim=-1)  # [Zr | Zi]
    freqs = _arange(0, wc, re.device)
    cols = _angles(freqs, _arange(crop, w - crop, re.device), w)  # (wc, w − 2·crop)
    # c2r: DC and (even w) Nyquist count once, every other frequency twice (with its conjugate)
    weight = torch.where((freqs == 0) | (2 * freqs == w), 1.0, 2.0).to(torch.float32)[:, None] / (h * w)
    return z @ torch.cat((torch.cos(cols) * weight, -torch.sin(cols) * weight), dim=0)


def _twiddles(n, length, k, scale, device):
    """``(re, im)`` of the polyphase twiddles ``(scale·length, k)`` (see :func:`.spectral.polyphase_twiddles`):
    ``exp(−2πi f q / n)`` where tap ``t = ⌊k/2⌋ − r + scale·q`` lies on lattice ``r``, else 0."""
    shift = torch.arange(scale)[:, None] - k // 2 + torch.arange(k)[None, :]  # constants: (s, k)
    mask = (torch.remainder(shift, scale) == 0).to(torch.float32).to(device)
    q = torch.div(shift, scale, rounding_mode='floor').to(device)
    freqs = _arange(0, length, device)
    turns = torch.remainder(freqs[None, :, None] * q[:, None, :], _size(n, device))  # (s, length, k)
    angle = turns.to(torch.float32) * (-2.0 * math.pi) / n
    return (torch.cos(angle) * mask[:, None, :]).reshape(-1, k), (torch.sin(angle) * mask[:, None, :]).reshape(-1, k)


def response_pairs(kernel, lam, size, scale):
    """``(re, im)`` of the responses ``H_r``, each ``(B, C, s², h, w // 2 + 1)``, from a ``(B, C, k, k)``
    kernel and ``λ`` ``(1 or B, C, 1, 1)`` at the padded size ``(h, w)``."""
    h, w = size
    wc = w // 2 + 1
    b, c, k, _ = kernel.shape
    rows_re, rows_im = _twiddles(h, h, k, scale, kernel.device)  # (s·h, k)
    cols_re, cols_im = _twiddles(w, wc, k, scale, kernel.device)  # (s·wc, k)
    t_re, t_im = kernel @ cols_re.transpose(0, 1), kernel @ cols_im.transpose(0, 1)  # (B, C, k, s·wc)
    fk_re = rows_re @ t_re - rows_im @ t_im
    fk_im = rows_re @ t_im + rows_im @ t_re  # (B, C, s·h, s·wc)

    def phases(t):
        return t.reshape(b, c, scale, h, scale, wc).transpose(3, 4).reshape(b, c, scale * scale, h, wc)

    fk_re, fk_im = phases(fk_re), phases(fk_im)
    lam = lam.unsqueeze(2)  # (1 or B, C, 1, 1, 1)
    if scale == 1:  # (conj(FK) + λ) / (|FK|² + λ)
        den = fk_re * fk_re + fk_im * fk_im + lam
        return (fk_re + lam) / den, -fk_im / den
    den = (fk_re * fk_re + fk_im * fk_im).sum(2, keepdim=True) + lam
    gain_re, gain_im = (1 - fk_re.sum(2, keepdim=True)) / den, -fk_im.sum(2, keepdim=True) / den
    # 1 + conj(FK_r) · (1 − Σ FK_u) / D
    return 1 + fk_re * gain_re + fk_im * gain_im, fk_re * gain_im - fk_im * gain_re


def dense_converse2d(x, weight, bias, scale=1, padding=2, padding_mode='circular', eps=1e-5):
    """:func:`.converse2d.converse2d` for an ``(N, C, H, W)`` float32 map, traced into plain graph operators."""
    dtype = x.dtype
    x, kernel = x.to(torch.float32), weight.to(torch.float32)
    lam = regularizer(bias.to(torch.float32), eps)
    xp = pad(x, padding, padding_mode)
    n, c, h, w = xp.shape
    re, im = forward_dft(xp)
    h_re, h_im = response_pairs(kernel, lam, (h, w), scale)
    re, im = re.unsqueeze(2), im.unsqueeze(2)  # (N, C, 1, h, wc) against (B, C, s², h, wc)
    out = inverse_dft(re * h_re - im * h_im, re * h_im + im * h_re, (h, w), padding)  # (N, C, s², hc, wc)
    hc, wc = h - 2 * padding, w - 2 * padding
    if scale > 1:
        out = out.reshape(n, c, scale, scale, hc, wc).permute(0, 1, 4, 2, 5, 3).reshape(n, c, hc * scale, wc * scale)
    else:
        out = out.reshape(n, c, hc, wc)
    return out.to(dtype)
