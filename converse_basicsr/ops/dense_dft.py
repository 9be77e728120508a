"""Reverse convolution with every DFT written as dense matrix products: the formulation that ONNX export traces.

The same function as :func:`.converse2d.converse2d` (``out_r = IDFT(DFT(x) · H_r)``, ``docs/derivation.md``),
in real arithmetic only (no complex tensors, no FFT): the DFT matrices are built from the input's shape inside
the graph (``arange``, ``cos``, ``sin``), so one exported graph serves every size, and every transform is a
matrix product, which ONNX Runtime (MLAS), TensorRT and other runtimes run fastest. ONNX Runtime's own DFT
operator is an O(n²) loop per axis for sizes that are not powers of two and failed for dynamic onesided shapes
(measured: ``docs/export.md``). Complex values are pairs ``(re, im)`` of real tensors.

Along the width the forward transform is onesided (``w // 2 + 1`` frequencies, the input is real) and the
inverse is the matching real (c2r) transform, each one matrix product; the inverse evaluates only the columns
that survive the crop. Along the height both transforms are full complex DFTs, twice the arithmetic of the
width's; when the height is a multiple of 4 (every padded size of the published models at even image sizes)
they take one radix-4 Cooley-Tukey step: four DFTs of a quarter of the length as matrix products, twiddles
and a butterfly of additions, a quarter of the multiply-adds. The choice is made when the graph is traced (the
height must be known to be a multiple of 4, see :data:`HEIGHTS_OF_4K`); :mod:`converse_basicsr.export` traces a
dynamic model twice and picks the graph at run time with an ONNX ``If`` (``export/branches.py``), so one file
still serves every size; other heights take the plain product.
"""
import math

import sympy
import torch
from torch.fx.experimental.symbolic_shapes import statically_known_true

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


# Radix of the split of the height transforms; 0 turns it off (the plain product for every height, for the
# benchmark's side-by-side comparison).
ROW_RADIX = 4
# Symbols (of sizes traced by torch.export) known to be multiples of 4: the model input's height while
# ``converse_basicsr.export`` traces the graph for such heights (the tracer keeps that fact in its constraints,
# not in the size expressions a layer sees).
HEIGHTS_OF_4K = set()


def mark_height_multiple_of_4(height):
    """Record that ``height`` (a traced model input's size) is a multiple of 4; a concrete int is ignored."""
    if isinstance(height, torch.SymInt):
        HEIGHTS_OF_4K.add(height.node.expr)


def _multiple_of_4(h):
    """Whether ``h`` (an int or a traced size) is known to be a multiple of 4, from its own expression or from
    :data:`HEIGHTS_OF_4K` (``s + 4`` with ``s`` there is; ``(s + 1) // 2`` is not decided, so it is not)."""
    if not isinstance(h, torch.SymInt):
        return h % 4 == 0
    if statically_known_true(h % 4 == 0):
        return True
    expr = h.node.expr
    known = expr.free_symbols & HEIGHTS_OF_4K
    if not known or expr.free_symbols - known:
        return False
    substituted = sympy.expand(expr.subs({s: 4 * sympy.Symbol(f'q{i}', integer=True) for i, s in enumerate(known)}))
    return sympy.Mod(substituted, 4) == 0


def _complex_product(c, s, re, im, sign):
    """``(c + i·sign·s) @ (re + i·im)`` as ``(re, im)``; ``c``, ``s`` real ``(m, n)`` left factors."""
    return c @ re - sign * (s @ im), c @ im + sign * (s @ re)


def _rows_dense(re, im, sign, crop):
    """``Σ_n (re + i·im)[n] e^{sign·2πi·k·n/h}`` along axis −2 for ``k = crop … h − crop − 1``: one product each
    way."""
    h = re.shape[-2]
    rows = _angles(_arange(crop, h - crop, re.device), _arange(0, h, re.device), h)
    return _complex_product(torch.cos(rows), torch.sin(rows), re, im, sign)


def _rows_radix4(re, im, sign, crop):
    """:func:`_rows_dense` for ``h = 4·m``, one radix-4 step: with ``n = 4·q + p`` and ``k = k1 + m·k2``,
    ``Z_p[k1] = Σ_q x[4q + p] e^{sign·2πi·k1·(4q + p)/h}`` (the length-``m`` DFT of the rows ``p, p + 4, …`` with its
    twiddle folded into the matrix), then ``X[k1 + m·k2] = Σ_p (sign·i)^{p·k2} Z_p[k1]`` (additions only)."""
    h, wc = re.shape[-2], re.shape[-1]
    m = h // 4
    lead = re.shape[:-2]
    # (…, h, wc) → (…, 4, m, wc): row 4·q + p of the input is row q of set p
    xr = re.reshape(*lead, m, 4, wc).transpose(-3, -2)
    xi = im.reshape(*lead, m, 4, wc).transpose(-3, -2)
    k1 = q = _arange(0, m, re.device)  # both run over 0 … m − 1
    angles = _angles(k1, (q[None, :] * 4 + _arange(0, 4, re.device)[:, None]).reshape(-1), h)  # (m, 4·m)
    angles = angles.reshape(m, 4, m).transpose(0, 1)  # (4, m, m): set p's matrix, twiddle folded in
    zr, zi = _complex_product(torch.cos(angles), torch.sin(angles), xr, xi, sign)  # (…, 4, m, wc)
    z0r, z1r, z2r, z3r = (zr[..., p, :, :] for p in range(4))
    z0i, z1i, z2i, z3i = (zi[..., p, :, :] for p in range(4))
    ar, ai, br, bi = z0r + z2r, z0i + z2i, z0r - z2r, z0i - z2i
    cr, ci, dr, di = z1r + z3r, z1i + z3i, z1r - z3r, z1i - z3i
    # k2 = 0, 1, 2, 3: A + C, B + (sign·i)·D, A − C, B − (sign·i)·D
    out_r = torch.cat((ar + cr, br - sign * di, ar - cr, br + sign * di), dim=-2)
    out_i = torch.cat((ai + ci, bi + sign * dr, ai - ci, bi - sign * dr), dim=-2)
    return out_r[..., crop:h - crop, :], out_i[..., crop:h - crop, :]


def rows_dft(re, im, sign, crop=0):
    """The DFT (``sign`` −1) or unscaled inverse DFT (``sign`` +1) along axis −2 of ``(re, im)``, the output rows
    ``crop … h − crop − 1``: the radix-4 step when the height is known to be a multiple of 4 (a concrete size, or
    a symbolic one such as ``4·s + 8``), else the plain product."""
    if ROW_RADIX == 4 and _multiple_of_4(re.shape[-2]):
        return _rows_radix4(re, im, sign, crop)
    return _rows_dense(re, im, sign, crop)


def forward_dft(x):
    """``rfft2`` of a real ``(…, h, w)`` map as ``(re, im)``, each ``(…, h, w // 2 + 1)``."""
    w = x.shape[-1]
    cols = _angles(_arange(0, w, x.device), _arange(0, w // 2 + 1, x.device), w)
    return rows_dft(x @ torch.cos(cols), x @ -torch.sin(cols), -1)


def inverse_dft(re, im, size, crop):
    """``irfft2`` of ``(re, im)`` (``(…, h, w // 2 + 1)``) at ``size = (h, w)``, only the rows and columns
    ``crop … h − crop − 1`` / ``crop … w − crop − 1``."""
    h, w = size
    wc = re.shape[-1]
    z = torch.cat(rows_dft(re, im, 1, crop), dim=-1)  # [Zr | Zi], the rows crop … h − crop − 1
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
