"""The FFT algebra of reverse convolution, written once.

Notation of ``docs/converse2d.md`` §1: ``x`` is the padded input of size ``h × w``, ``s`` the
scale, ``FK`` the DFT of the (centred) kernel at the output size ``hs × ws``, ``λ`` the
per-channel regulariser. The accurate form of the solve,

    F = DFT(X0) + conj(FK) · tile((DFT(x) − fold(FK · DFT(X0))) / (fold(|FK|²) + λ)),

with ``DFT(X0) = tile(DFT(x)) · B`` (``B`` the response of the ``s × s`` box anchored at the
origin), factors because ``tile(DFT(x))`` is periodic over the tiles and comes out of ``fold``:

    F = tile(DFT(x)) · H,   H = B + conj(FK) · tile((1 − fold(FK · B)) / (fold(|FK|²) + λ)).

Nothing is divided by ``λ``. Split the output into its ``s × s`` polyphase components
``out_r[m] = out[s·m + r]`` (``r`` in ``[0, s)²``): each is the *input-size* filter

    out_r = IDFT_{h×w}(DFT(x) · H_r),   H_r = 1 + conj(FK_r) · (1 − Σ_u FK_u) / (Σ_u |FK_u|² + λ),

where ``FK_r(f) = Σ_q K[c − r + s·q] e^{−2πi f·q / (h, w)}`` is the spectrum, at the input size,
of the kernel taps on the ``r``-th lattice (``c = ⌊k/2⌋``); ``fold(FK · B) = Σ_u FK_u`` and
``fold(|FK|²) = Σ_u |FK_u|²`` (Parseval over the tiles). So reverse convolution is one rfft2 of
the padded input, ``s²`` products and one batched irfft2 at the *input* size, then a pixel shuffle:
no FFT at the output size, no zero-inserted or upsampled map. For ``s = 1``, ``H_0 =
(conj(FK) + λ) / (|FK|² + λ)``. Every ``FK_r`` is a small matrix product with DFT twiddles, not
an FFT of a padded kernel, and is the DFT of a real filter, so only ``w // 2 + 1`` columns are kept.
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


def polyphase_twiddles(n, k, scale, length, device, dtype):
    """``(scale, length, k)``: entry ``[r, f, t]`` is ``exp(−2πi f q / n)`` when tap ``t`` lies on the
    ``r``-th lattice, ``t = ⌊k/2⌋ − r + scale·q``, and 0 otherwise. ``scale = 1`` gives :func:`_twiddles`."""
    centre = k // 2
    shift = torch.arange(scale, device=device, dtype=torch.int64)[:, None] - centre + \
        torch.arange(k, device=device, dtype=torch.int64)[None, :]  # (s, k): t − c + r
    on_lattice = torch.remainder(shift, scale) == 0
    q = torch.div(shift, scale, rounding_mode='floor')
    freq = torch.arange(length, device=device, dtype=torch.int64)[None, :, None]
    phase = torch.remainder(freq * q[:, None, :], n).to(torch.float64) * (-2.0 * math.pi / n)
    table = torch.polar(on_lattice[:, None, :].to(torch.float64).expand_as(phase), phase)
    return table.to(dtype)


def complex_dtype(dtype):
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def kernel_spectrum(kernel, size, onesided=False):
    """DFT at ``size = (M, N)`` of a ``(..., k, k)`` kernel whose centre ``⌊k/2⌋`` sits at the origin.

    Computed as ``W_rows @ K @ W_cols^T`` with DFT twiddles (``k`` columns each) instead of an FFT
    of a zero-padded ``M × N`` array. ``onesided`` keeps the ``N // 2 + 1`` columns of an rfft.
    """
    m, n = size
    k_rows, k_cols = kernel.shape[-2:]
    cdtype = complex_dtype(kernel.dtype)
    w_rows = _twiddles(m, k_rows, m, kernel.device, cdtype)
    w_cols = _twiddles(n, k_cols, n // 2 + 1 if onesided else n, kernel.device, cdtype)
    return w_rows @ kernel.to(cdtype) @ w_cols.transpose(0, 1)


def polyphase_spectra(kernel, size, scale, tables=None):
    """``FK_r`` for every phase ``r = (r1, r2)``: ``(B, C, s², h, w // 2 + 1)`` complex, from a ``(B, C, k, k)``
    kernel at the padded input size ``(h, w)``. ``tables``: the twiddles from :func:`_polyphase_tables`."""
    h, w = size
    b, c, k_rows, k_cols = kernel.shape
    rows, cols = _polyphase_tables(kernel, size, scale) if tables is None else tables
    wc = w // 2 + 1
    # (s·h, k_r) @ (B, C, k_r, k_c) @ (k_c, s·wc): one batched matrix product per side.
    spectra = rows @ kernel.to(rows.dtype) @ cols.transpose(0, 1)
    spectra = spectra.view(b, c, scale, h, scale, wc).transpose(3, 4)
    return spectra.reshape(b, c, scale * scale, h, wc)


def _polyphase_tables(kernel, size, scale):
    h, w = size
    cdtype = complex_dtype(kernel.dtype)
    rows = polyphase_twiddles(h, kernel.shape[-2], scale, h, kernel.device, cdtype)
    cols = polyphase_twiddles(w, kernel.shape[-1], scale, w // 2 + 1, kernel.device, cdtype)
    return rows.reshape(-1, rows.shape[-1]), cols.reshape(-1, cols.shape[-1])


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


def regularizer(bias, eps):
    """``λ = sigmoid(bias − 9) + eps``, the learned per-channel weight of the prior ``‖X − X0‖²``."""
    return torch.sigmoid(bias - 9.0) + eps


def _lam5(lam):
    """``λ`` of shape ``(…, C, 1, 1)`` broadcast against ``(B, C, s², h, wc)``."""
    return lam.unsqueeze(-3) if lam.dim() >= 3 else lam


def _solve_terms(spectra, lam):
    """``(1 − Σ_u FK_u, Σ_u |FK_u|² + λ)``, the numerator and denominator of the gain."""
    numerator = 1 - spectra.sum(dim=2, keepdim=True)
    denominator = torch.view_as_real(spectra).square().sum(dim=(2, -1)).unsqueeze(2) + _lam5(lam)
    return numerator, denominator


def _response(spectra, lam, scale):
    if scale == 1:
        # (conj(FK) + λ) / (|FK|² + λ), written with real arithmetic on (re, im) pairs.
        lam5 = _lam5(lam)
        pair = torch.view_as_real(spectra)
        inverse_den = 1 / (pair.square().sum(-1) + lam5)
        return torch.complex((pair[..., 0] + lam5) * inverse_den, pair[..., 1] * -inverse_den)
    numerator, denominator = _solve_terms(spectra, lam)
    return 1 + spectra.conj() * (numerator / denominator)


def transfer_function(kernel, lam, size, scale):
    """The polyphase frequency responses ``H_r`` of reverse convolution at the padded input size.

    ``kernel``: ``(B, C, k, k)`` with ``B`` 1 (a learned kernel) or the batch size (a per-sample
    kernel); ``lam``: broadcastable to ``(B, C, 1, 1)``; ``size``: the padded input ``(h, w)``.
    Returns ``(B, C, s², h, w // 2 + 1)``: :func:`apply_transfer` multiplies ``rfft2(x)`` by each,
    takes ``irfft2`` and interleaves the ``s²`` results into the ``(hs, ws)`` output.
    """
    return _response(polyphase_spectra(kernel, size, scale), lam, scale)


def apply_transfer(x, response, scale):
    """The ``s²`` polyphase components ``irfft2(rfft2(x) · H_r)`` of a real ``(N, C, h, w)`` map: ``(N, C, s², h, w)``."""
    h, w = x.shape[-2:]
    spectrum = torch.fft.rfft2(x).unsqueeze(2)
    return torch.fft.irfft2(spectrum * response, s=(h, w))


def interleave(phases, scale, crop=0):
    """``(N, C, s², h, w)`` polyphase components → ``(N, C, (h − 2·crop)·s, (w − 2·crop)·s)``.

    ``crop`` input-size rows/columns are dropped on every side first (``crop·s`` output pixels).
    """
    n, c, _, h, w = phases.shape
    if crop:
        phases = phases[..., crop:h - crop, crop:w - crop]
        h, w = h - 2 * crop, w - 2 * crop
    if scale == 1:
        return phases.squeeze(2)
    # out[s·m1 + r1, s·m2 + r2] = phases[(r1, r2), m1, m2]
    grid = phases.view(n, c, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3)
    return grid.reshape(n, c, h * scale, w * scale)


def _column_weights(w, device, dtype):
    """How often each of the ``w // 2 + 1`` rfft columns occurs in the full spectrum (1 or 2)."""
    weights = torch.full((w // 2 + 1,), 2.0, device=device, dtype=dtype)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


def _reduce_to(grad, shape):
    """Sum a broadcast gradient back to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    dims = tuple(i for i, n in enumerate(shape) if n == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


class ReverseConvolution(torch.autograd.Function):
    """``(x, kernel, λ) → (N, C, s², h, w)`` polyphase output, with a hand-written backward.

    Autograd through the FFTs and the response would keep a dozen complex intermediates of the
    padded size alive (the response's graph, both FFT products); this keeps only ``rfft2(x)``
    and rebuilds the small-kernel spectra in backward from twiddle products. Gradients:

    - input: the adjoint filter, ``irfft2(Σ_r rfft2(g_r) · conj(H_r))``;
    - kernel and λ: with ``P_r = conj(rfft2(g_r)) · rfft2(x) / (h·w)`` (summed over the batch for a
      shared kernel, weighted by each column's multiplicity in the full spectrum) the loss moves by
      ``Re Σ_f Σ_r P_r · δH_r``; differentiating ``H_r = 1 + conj(FK_r) · num / D`` gives
      ``Re Σ_f Σ_u R_u · δFK_u − δλ · Σ_f T`` with ``S = Σ_r P_r conj(FK_r)``, ``T = Re(S · num) / D²``
      and ``R_u = conj(P_u · num / D) − S / D − 2 T conj(FK_u)``; ``δFK_u`` is linear in the kernel
      through the twiddles, so the kernel gradient is ``Re(W_rowsᵀ R W_cols)``.
    """

    @staticmethod
    def forward(ctx, x, kernel, lam, scale):
        h, w = x.shape[-2:]
        spectrum = torch.fft.rfft2(x)
        tables = _polyphase_tables(kernel, (h, w), scale)
        response = _response(polyphase_spectra(kernel, (h, w), scale, tables), lam, scale)
        out = torch.fft.irfft2(spectrum.unsqueeze(2) * response, s=(h, w))
        ctx.scale, ctx.size, ctx.tables = scale, (h, w), tables
        ctx.save_for_backward(spectrum, kernel, lam)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        spectrum, kernel, lam = ctx.saved_tensors
        scale, (h, w), (rows, cols) = ctx.scale, ctx.size, ctx.tables
        need_x, need_kernel, need_lam = ctx.needs_input_grad[:3]
        spectra = polyphase_spectra(kernel, (h, w), scale, (rows, cols))
        numerator, denominator = _solve_terms(spectra, lam)
        gain = numerator / denominator
        grad_spec = torch.fft.rfft2(grad_out)  # (N, C, s², h, wc)
        grad_x = grad_kernel = grad_lam = None
        if need_x:
            response = 1 + spectra.conj() * gain
            grad_x = torch.fft.irfft2((grad_spec * response.conj()).sum(2), s=(h, w))
            del response
        if need_kernel or need_lam:
            weights = _column_weights(w, spectrum.device, spectrum.real.dtype) / (h * w)
            p = grad_spec.conj_physical_() * spectrum.unsqueeze(2)
            if kernel.shape[0] == 1 and p.shape[0] != 1:
                p = p.sum(0, keepdim=True)
            p = p * weights
            del grad_spec
            s_term = (p * spectra.conj()).sum(2, keepdim=True)
            t_term = (s_term * numerator).real / denominator.square()
            if need_lam:
                grad_lam = _reduce_to(-t_term, _lam5(lam).shape).reshape(lam.shape)
            if need_kernel:
                r_term = (p * gain).conj_physical_() - s_term / denominator - 2 * t_term * spectra.conj()
                b, c = r_term.shape[:2]
                r_term = r_term.view(b, c, scale, scale, h, -1).transpose(3, 4).reshape(b, c, scale * h, -1)
                grad_kernel = (rows.transpose(0, 1) @ (r_term @ cols)).real.to(kernel.dtype)
        return grad_x, grad_kernel, grad_lam, None
