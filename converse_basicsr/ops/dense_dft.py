"""Reverse convolution with every DFT written as dense matrix products: the formulation that ONNX export traces.

The same function as :func:`.converse2d.converse2d` (``out_r = IDFT(DFT(x) · H_r)``, ``docs/derivation.md``),
in real arithmetic only (no complex tensors, no FFT): the DFT matrices are built from the input's shape inside
the graph (``arange``, ``cos``, ``sin``), so one exported graph serves every size, and every transform is a
matrix product, which ONNX Runtime (MLAS), TensorRT and other runtimes run fastest. ONNX Runtime's own DFT
operator is an O(n²) loop per axis for sizes that are not powers of two and failed for dynamic onesided shapes
(measured: ``docs/export.md``).

**Complex values are one real tensor** with the real and imaginary parts on an axis of length 2, so that a
complex matrix product is *one* real product with the block matrix ``[[C, −S], [S, C]]`` (:func:`_complex_matrix`)
instead of four products and an ``Add`` and a ``Sub``; which axis holds re/im is chosen per step so that every
step between two products is a free ``Reshape``. A spectrum is ``(…, 2, h, w // 2 + 1)`` (re/im outside the
rows); the width products read and write re/im inside a row, ``(…, h, 2·wc)`` (``[re | im]``). Elementwise
passes, transposes, slices and concatenations around the products cost ONNX Runtime as much as the products
themselves (one thread, Converse-SRResNet: about 40 % of the node time before this layout), so the layout is
chosen to avoid them.

Along the width the forward transform is onesided (``w // 2 + 1`` frequencies, the input is real: one product
with ``[cos | −sin]``) and the inverse is the matching real (c2r) transform, one product that evaluates only the
columns that survive the crop. Along the height both transforms are full complex DFTs, twice the arithmetic of
the width's; when the height is a multiple of 4 (every padded size of the published models at even image sizes)
they take one radix-4 Cooley-Tukey step, a quarter of the multiply-adds:

- forward (decimation in time, :func:`_forward_rows_radix4`): one ``Transpose`` gathers the rows ``p, p + 4, …``
  of each residue ``p``, one batched product takes the four DFTs of length ``h / 4`` (twiddles folded into the
  matrices), and the butterfly is one product with an 8×8 real matrix over (``p``, re/im) whose output rows are
  ordered so that a ``Reshape`` gives the spectrum in natural order;
- inverse (decimation in frequency, :func:`_inverse_rows_radix4`): the butterfly comes first, straight on the
  spectrum (its blocks ``k = k1 + m·k2`` are contiguous), then one batched product per output residue; the
  output rows come out grouped by residue (``n = 4·n1 + n2`` at ``[n2, n1]``), and the one ``Transpose`` that
  puts them back in order is the one the polyphase interleave of a scale > 1 needs anyway.

The spectral product ``DFT(x) · H_r`` is folded into the inverse where it can: the radix-4 inverse takes the
four real products ``re/im(DFT(x)) · re/im(H_r)`` from one broadcast ``Mul`` and its butterfly matrix (8×16)
adds and subtracts them, so the complex product costs no pass of its own. The plain path multiplies first.
The choice of radix is made when the graph is traced (the height must be known to be a multiple of 4, see
:data:`HEIGHTS_OF_4K`); :mod:`converse_basicsr.export` traces each distinct :func:`dense_solve` twice and each
layer picks its graph at run time with an ONNX ``If`` (``export/branches.py``), so one file still serves every
size; other heights take the plain product.
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


def _radix4(h):
    return ROW_RADIX == 4 and _multiple_of_4(h)


def _complex_matrix(cos, sin, rows_interleaved, cols_interleaved):
    """The real ``(…, 2K, 2N)`` matrix of the complex ``(…, K, N)`` matrix ``cos + i·sin``, acting on complex
    vectors stored as real ones of length ``2N``: re/im *interleaved* (entry ``2·n + c``, ``c`` 0 for re, 1 for
    im) or *stacked* (entry ``c·N + n``); its output (length ``2K``) is laid out likewise as chosen."""
    t = torch.stack((torch.stack((cos, -sin), -1), torch.stack((sin, cos), -1)), -2)  # (…, K, N, c_out, c_in)
    d = t.dim()
    rows = (d - 4, d - 2) if rows_interleaved else (d - 2, d - 4)
    cols = (d - 3, d - 1) if cols_interleaved else (d - 1, d - 3)
    t = t.permute(*range(d - 4), *rows, *cols)
    return t.reshape(*cos.shape[:-2], 2 * cos.shape[-2], 2 * cos.shape[-1])


def _dft_matrix(positions, freqs, n, sign, rows_interleaved, cols_interleaved):
    """:func:`_complex_matrix` of ``e^{sign·2πi·position·freq/n}`` (rows: positions, columns: freqs)."""
    angles = _angles(positions, freqs, n)
    return _complex_matrix(torch.cos(angles), sign * torch.sin(angles), rows_interleaved, cols_interleaved)


def _butterfly(sign, rows_interleaved, cols_interleaved):
    """The radix-4 butterfly ``out[a] = Σ_b (sign·i)^{a·b} in[b]`` (``a``, ``b`` in 0 … 3) as a constant 8×8
    real matrix (:func:`_complex_matrix`; the powers of ``i`` exactly)."""
    power = torch.arange(4)[:, None] * torch.arange(4)[None, :] % 4
    cos = torch.tensor([1.0, 0.0, -1.0, 0.0])[power]
    sin = sign * torch.tensor([0.0, 1.0, 0.0, -1.0])[power]
    return _complex_matrix(cos, sin, rows_interleaved, cols_interleaved)


# The butterflies, constants: the forward's (rows (re/im, k2), columns (p, re/im)) per sign; the inverse's
# (rows (n2, re/im), columns (re/im, k2)); and the inverse's fed with the four real products u[a, b] = z_a · r_b of
# a complex product z · r (re = u[0, 0] − u[1, 1], im = u[0, 1] + u[1, 0]; _PRODUCT[c, a, b] is the coefficient
# of u[a, b] in part c): 8×16, columns (a, b, k2).
_FORWARD_BUTTERFLY = {sign: _butterfly(sign, rows_interleaved=False, cols_interleaved=True) for sign in (-1, 1)}
_INVERSE_BUTTERFLY = _butterfly(1, rows_interleaved=True, cols_interleaved=False)
_PRODUCT = torch.tensor([[[1.0, 0.0], [0.0, -1.0]], [[0.0, 1.0], [1.0, 0.0]]])
_PRODUCT_BUTTERFLY = torch.einsum('rck,cab->rabk', _INVERSE_BUTTERFLY.reshape(8, 2, 4), _PRODUCT).reshape(8, 16)


def _forward_rows_dense(y, sign):
    """The DFT along the height of ``y`` ``(…, h, 2·wc)`` (re/im inside each row) as a spectrum ``(…, 2, h, wc)``:
    one product with the ``(2h, 2h)`` block matrix."""
    h, wc = y.shape[-2], y.shape[-1] // 2
    rows = _arange(0, h, y.device)
    matrix = _dft_matrix(rows, rows, h, sign, rows_interleaved=False, cols_interleaved=True)
    return (matrix @ y.reshape(*y.shape[:-2], 2 * h, wc)).reshape(*y.shape[:-2], 2, h, wc)


def _forward_rows_radix4(y, sign):
    """:func:`_forward_rows_dense` for ``h = 4·m``, one radix-4 step (decimation in time): with ``n = 4·q + p``
    and ``k = k1 + m·k2``, ``Z_p[k1] = Σ_q y[4q + p] e^{sign·2πi·k1·(4q + p)/h}`` (the length-``m`` DFTs of the
    rows ``p, p + 4, …``, twiddle folded in: one batched product) and ``X[k1 + m·k2] = Σ_p (sign·i)^{p·k2} Z_p[k1]``
    (one product with the 8×8 butterfly, its output rows (re/im, ``k2``): a reshape gives natural order)."""
    h, wc = y.shape[-2], y.shape[-1] // 2
    m = h // 4
    lead = y.shape[:-2]
    # (…, h, 2·wc) = (…, q, p, re/im, wc) → (…, p, q·re/im, wc): the one transpose
    t = y.reshape(*lead, m, 4, 2 * wc).transpose(-3, -2).reshape(*lead, 4, 2 * m, wc)
    k1 = q = _arange(0, m, y.device)  # both run over 0 … m − 1
    n = (q[None, :] * 4 + _arange(0, 4, y.device)[:, None]).reshape(-1)  # (p, q) flattened
    angles = _angles(k1, n, h).reshape(m, 4, m).transpose(0, 1)  # (p, k1, q)
    matrices = _complex_matrix(
        torch.cos(angles), sign * torch.sin(angles), rows_interleaved=False,
        cols_interleaved=True)  # (4, 2m, 2m): rows (re/im, k1), columns (q, re/im)
    z = (matrices @ t).reshape(*lead, 8, m * wc)  # rows (p, re/im)
    return (_FORWARD_BUTTERFLY[sign].to(y.device) @ z).reshape(*lead, 2, h, wc)


def _forward_rows(y, sign):
    return _forward_rows_radix4(y, sign) if _radix4(y.shape[-2]) else _forward_rows_dense(y, sign)


def _inverse_rows_dense(z, crop):
    """The unscaled inverse DFT along the height of the spectrum ``z`` ``(…, 2, h, wc)``, the rows
    ``crop … h − crop − 1`` only, as ``(…, h − 2·crop, 2·wc)`` (re/im inside each row, for the c2r product)."""
    h, wc = z.shape[-2], z.shape[-1]
    matrix = _dft_matrix(
        _arange(crop, h - crop, z.device), _arange(0, h, z.device), h, 1, rows_interleaved=True, cols_interleaved=False)
    out = matrix @ z.reshape(*z.shape[:-3], 2 * h, wc)
    return out.reshape(*z.shape[:-3], h - 2 * crop, 2 * wc)


def _inverse_rows_radix4(u, crop, butterfly):
    """The unscaled inverse DFT along the height for ``h = 4·m``, one radix-4 step (decimation in frequency):
    with ``k = k1 + m·k2`` and ``n = 4·n1 + n2``, ``T_n2[k1] = Σ_k2 i^{n2·k2} Z[k1 + m·k2]`` (the butterfly,
    first: one product over the rows ``(…, k2)``) and ``x[4·n1 + n2] = Σ_k1 e^{2πi·(4·n1 + n2)·k1/h} T_n2[k1]`` (one
    batched product, twiddle folded in). ``u`` is ``(…, a, h, wc)`` with ``a·4`` the butterfly's columns (the
    spectrum, ``a = 2``, or the four real products of a complex product, ``a = 4``). Only ``n1`` in
    ``crop // 4 … m − crop // 4 − 1`` are computed; returns ``(…, 4, m', 2·wc)``: row ``n1`` of residue ``n2``
    (re/im inside each row) holds output row ``4·(crop // 4 + n1) + n2``."""
    h, wc = u.shape[-2], u.shape[-1]
    m, c4 = h // 4, crop // 4
    lead = u.shape[:-3]
    t = (butterfly.to(u.device) @ u.reshape(*lead, butterfly.shape[-1], m * wc)).reshape(*lead, 4, 2 * m, wc)
    n1, n2 = _arange(c4, m - c4, u.device), _arange(0, 4, u.device)
    n = (n1[None, :] * 4 + n2[:, None]).reshape(-1)  # (n2, n1) flattened
    angles = _angles(n, _arange(0, m, u.device), h).reshape(4, m - 2 * c4, m)  # (n2, n1, k1)
    matrices = _complex_matrix(torch.cos(angles), torch.sin(angles), rows_interleaved=True,
                               cols_interleaved=False)  # (4, 2m', 2m): rows (n1, re/im), columns (re/im, k1)
    return (matrices @ t).reshape(*lead, 4, m - 2 * c4, 2 * wc)


def _c2r_matrix(wc, h, w, crop, device):
    """The c2r product along the width as a ``(2·wc, w − 2·crop)`` matrix for rows ``[re | im]``: the columns
    ``crop … w − crop − 1`` of the inverse, scaled by ``1 / (h·w)``."""
    freqs = _arange(0, wc, device)
    cols = _angles(freqs, _arange(crop, w - crop, device), w)  # (wc, w − 2·crop)
    # DC and (even w) Nyquist count once, every other frequency twice (with its conjugate)
    weight = torch.where((freqs == 0) | (2 * freqs == w), 1.0, 2.0).to(torch.float32)[:, None] / (h * w)
    return torch.cat((torch.cos(cols) * weight, -torch.sin(cols) * weight), dim=0)


def complex_multiply(z, response):
    """``z · response`` for complex values stored as re/im on axis −3 (broadcasting)."""
    zr, zi = z.unbind(-3)
    hr, hi = response.unbind(-3)
    return torch.stack((zr * hr - zi * hi, zr * hi + zi * hr), dim=-3)


def interleave_phases(out, scale):
    """``(…, s², hc, wc)`` phases (row phase major) interleaved into ``(…, hc·s, wc·s)``: output pixel
    ``(s·i + r1, s·j + r2)`` is pixel ``(i, j)`` of phase ``r1·s + r2``."""
    hc, wc = out.shape[-2], out.shape[-1]
    lead = out.shape[:-3]
    out = out.reshape(*lead, scale, scale, hc, wc)
    d = out.dim()
    return out.permute(*range(d - 4), d - 2, d - 4, d - 1, d - 3).reshape(*lead, hc * scale, wc * scale)


def inverse_dft(z, size, crop, response=None, scale=1):
    """``irfft2`` of the spectrum ``z`` ``(…, 2, h, w // 2 + 1)`` at ``size = (h, w)``, only the rows and columns
    ``crop … h − crop − 1`` / ``crop … w − crop − 1``. With ``response`` ``(…, s², 2, h, wc)`` (``z`` then
    ``(…, 1, 2, h, wc)``): the inverse of ``z · response`` per phase, the ``s²`` phases interleaved into
    ``(…, (h − 2·crop)·s, (w − 2·crop)·s)``; without a response and with ``scale`` 1 there is no phase axis."""
    h, w = size
    wc = z.shape[-1]
    c2r = _c2r_matrix(wc, h, w, crop, z.device)
    lead = z.shape[:-3] if response is None else torch.broadcast_shapes(z.shape[:-3], response.shape[:-3])
    if _radix4(h):
        if response is None:
            u, butterfly = z, _INVERSE_BUTTERFLY
        else:  # the four real products z_a · r_b; the butterfly's columns add them up as the complex product
            u, butterfly = (z.unsqueeze(-3) * response.unsqueeze(-4)).reshape(*lead, 4, h, wc), _PRODUCT_BUTTERFLY
        out = _inverse_rows_radix4(u, crop, butterfly) @ c2r  # (…, 4, m', wo): row 4·(c4 + n1) + n2 at [n2, n1]
        mp, wo = out.shape[-2], out.shape[-1]
        skip = crop - crop // 4 * 4  # rows still to crop at each end
        if scale > 1:  # (…, s1, s2, n2, n1, wo) → (…, n1, n2, s1, wo, s2): rows in order, phases interleaved
            out = out.reshape(*lead[:-1], scale, scale, 4, mp, wo)
            d = out.dim()
            out = out.permute(*range(d - 5), d - 2, d - 3, d - 5, d - 1, d - 4)
            out = out.reshape(*lead[:-1], 4 * mp * scale, wo * scale)
        else:
            out = out.transpose(-3, -2).reshape(*out.shape[:-3], 4 * mp, wo)
        return out[..., skip * scale:(4 * mp - skip) * scale, :] if skip else out
    if response is not None:
        z = complex_multiply(z, response)
    out = _inverse_rows_dense(z, crop) @ c2r  # (…, hc, wo)
    return interleave_phases(out, scale) if scale > 1 else out


def forward_dft(x):
    """``rfft2`` of a real ``(…, h, w)`` map as one real ``(…, 2, h, w // 2 + 1)`` tensor (re, im)."""
    w = x.shape[-1]
    cols = _angles(_arange(0, w, x.device), _arange(0, w // 2 + 1, x.device), w)
    return _forward_rows(x @ torch.cat((torch.cos(cols), -torch.sin(cols)), dim=1), -1)  # x @ [cos | −sin]


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
    """The responses ``H_r`` as one real ``(B, C, s², 2, h, w // 2 + 1)`` tensor (re, im), from a ``(B, C, k, k)``
    kernel and ``λ`` ``(1 or B, C, 1, 1)`` at the padded size ``(h, w)``."""
    h, w = size
    wc = w // 2 + 1
    b, c, k, _ = kernel.shape
    rows_re, rows_im = _twiddles(h, h, k, scale, kernel.device)  # (s·h, k)
    cols_re, cols_im = _twiddles(w, wc, k, scale, kernel.device)  # (s·wc, k)
    t = kernel @ torch.cat((cols_re, cols_im), dim=0).transpose(0, 1)  # (B, C, k, 2·s·wc): [re | im] per tap row
    rows = _complex_matrix(rows_re, rows_im, rows_interleaved=False, cols_interleaved=True)  # (2·s·h, 2k)
    if scale == 1:  # conj(FK) straight from the product: the imaginary rows negated
        rows = (rows.reshape(2, h, 2 * k) * torch.tensor([1.0, -1.0], device=kernel.device)[:, None, None]).reshape(
            2 * h, 2 * k)
    fk = rows @ t.reshape(b, c, 2 * k, scale * wc)  # (B, C, 2·s·h, s·wc): rows (re/im, s1, h), columns (s2, wc)
    lam = lam.reshape(lam.shape[0], c, 1, 1, 1, 1)
    if scale == 1:  # (conj(FK) + λ) / (|FK|² + λ)
        fk = fk.reshape(b, c, 1, 2, h, wc)
        den = (fk * fk).sum(3, keepdim=True) + lam
        return (fk + lam * torch.tensor([1.0, 0.0], device=kernel.device)[:, None, None]) / den
    fk = fk.reshape(b, c, 2, scale, h, scale, wc).permute(0, 1, 3, 5, 2, 4, 6).reshape(b, c, scale * scale, 2, h, wc)
    den = (fk * fk).sum((2, 3), keepdim=True) + lam
    gain = (torch.tensor([1.0, 0.0], device=kernel.device)[:, None, None] - fk.sum(2, keepdim=True)) / den
    fk_re, fk_im = fk.unbind(3)
    gain_re, gain_im = gain.unbind(3)
    # 1 + conj(FK_r) · (1 − Σ FK_u) / D
    return torch.stack((1 + fk_re * gain_re + fk_im * gain_im, fk_re * gain_im - fk_im * gain_re), dim=3)


def dense_solve(xp, kernel, lam, scale, crop):
    """The solve of :func:`dense_converse2d` on the padded float32 map ``xp`` ``(N, C, h, w)`` with ``λ`` given,
    cropped by ``crop``: ``(N, C, (h − 2·crop)·s, (w − 2·crop)·s)``. ``converse_basicsr.export`` replaces it (a
    module attribute, looked up at each call) with one call of an ONNX function per distinct layer."""
    n, c, h, w = xp.shape
    z = forward_dft(xp).unsqueeze(2)  # (N, C, 1, 2, h, wc) against the responses (B, C, s², 2, h, wc)
    out = inverse_dft(z, (h, w), crop, response_pairs(kernel, lam, (h, w), scale), scale)
    return out.reshape(n, c, (h - 2 * crop) * scale, (w - 2 * crop) * scale)


def dense_converse2d(x, weight, bias, scale=1, padding=2, padding_mode='circular', eps=1e-5):
    """:func:`.converse2d.converse2d` for an ``(N, C, H, W)`` float32 map, traced into plain graph operators.
    ``λ`` is computed before the solve: from a parameter, the exporter folds it into a constant (ONNX Runtime's
    ``Sigmoid`` is an approximation whose absolute error near sigmoid(−9) is large relative to λ)."""
    lam = regularizer(bias.to(torch.float32), eps)
    xp = pad(x.to(torch.float32), padding, padding_mode)
    return dense_solve(xp, weight.to(torch.float32), lam, scale, padding).to(x.dtype)
