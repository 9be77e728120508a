"""The mathematics of reverse convolution: polyphase spectra, responses, solve terms and backward terms.

Everything here is a pure function of tensors (no FFT back end, no memory layout policy, no process
state); :mod:`.execution` decides how it runs. The derivation is in ``docs/derivation.md``: for a padded
input ``x`` of size ``h × w`` and scale ``s``, each of the output's ``s × s`` polyphase components
``out_r[m] = out[s·m + r]`` is an input-size filter,

    out_r = IDFT_{h×w}(DFT(x) · H_r),   H_r = 1 + conj(FK_r) · (1 − Σ_u FK_u) / (Σ_u |FK_u|² + λ),

where ``FK_r`` is the spectrum at the input size of the kernel taps on the ``r``-th lattice; for
``s = 1``, ``H_0 = (conj(FK) + λ) / (|FK|² + λ)``. Nothing is divided by ``λ``. Spectra are arrays
with a *phase axis* (``phase_dim``): 2 for channels first ``(B, C, s², h, wc)``, 1 for channels last
``(B, s², h, wc, C)``; the solve and the backward are written once in terms of that axis.
Conjugation is always ``conj_physical``: inside a custom operator a lazily conjugated view is read
without its conjugation (see :mod:`.custom_ops`).
"""
import math

import torch


def complex_dtype(dtype):
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def regularizer(bias, eps):
    """``λ = sigmoid(bias − 9) + eps``, the learned per-channel weight of the prior ``‖X − X0‖²``."""
    return torch.sigmoid(bias - 9.0) + eps


def per_channel(lam, channels):
    """``λ`` as ``(1 or B, C, 1, 1)`` so that it can be sliced by channel."""
    return lam.expand(*(lam.shape[:1] if lam.dim() == 4 else (1, )), channels, 1, 1)


def lam_against(lam, phase_dim):
    """``λ`` of shape ``(1 or B, C, 1, 1)`` broadcastable against spectra whose phase axis is ``phase_dim``."""
    if phase_dim == 2:
        return lam.unsqueeze(2)  # (B, C, 1, 1, 1)
    return lam.reshape(lam.shape[0], 1, 1, 1, lam.shape[1])  # (B, 1, 1, 1, C)


# --- the kernel's polyphase spectra ----------------------------------------------------------------


def polyphase_twiddles(n, k, scale, length, device, dtype):
    """``(scale, length, k)``: entry ``[r, f, t]`` is ``exp(−2πi f q / n)`` when tap ``t`` lies on the
    ``r``-th lattice, ``t = ⌊k/2⌋ − r + scale·q``, and 0 otherwise (``scale = 1``: the plain DFT twiddles
    of a kernel centred at ``⌊k/2⌋``)."""
    centre = k // 2
    shift = torch.arange(scale, device=device, dtype=torch.int64)[:, None] - centre + \
        torch.arange(k, device=device, dtype=torch.int64)[None, :]  # (s, k): t − c + r
    on_lattice = torch.remainder(shift, scale) == 0
    q = torch.div(shift, scale, rounding_mode='floor')
    freq = torch.arange(length, device=device, dtype=torch.int64)[None, :, None]
    phase = torch.remainder(freq * q[:, None, :], n).to(torch.float64) * (-2.0 * math.pi / n)
    table = torch.polar(on_lattice[:, None, :].to(torch.float64).expand_as(phase), phase)
    return table.to(dtype)


_TABLES = {}


def spectra_tables(kernel, size, scale):
    """Cached (32 sizes) :func:`make_spectra_tables`: they depend only on the sizes, dtype and device."""
    key = (tuple(size), tuple(kernel.shape[-2:]), scale, kernel.dtype, kernel.device)
    tables = _TABLES.get(key)
    if tables is None:
        if len(_TABLES) >= 32:
            _TABLES.pop(next(iter(_TABLES)))
        tables = _TABLES[key] = make_spectra_tables(kernel, size, scale)
    return tables


def make_spectra_tables(kernel, size, scale):
    """Twiddle tables: ``[Re; Im]`` of the row twiddles ``(2·s·h, k)`` (real), the real ``(2k, 2·s·wc)``
    matrix that applies the complex column twiddles to ``[Re | Im]`` rows, and the complex row
    ``(s·h, k)`` and column ``(s·wc, k)`` tables (for channels last and for the kernel gradient)."""
    h, w = size
    cdtype = complex_dtype(kernel.dtype)
    rows = polyphase_twiddles(h, kernel.shape[-2], scale, h, kernel.device, cdtype).reshape(scale * h, -1)
    wc = w // 2 + 1
    cols = polyphase_twiddles(w, kernel.shape[-1], scale, wc, kernel.device, cdtype).reshape(scale * wc, -1)
    cos, sin = cols.real.transpose(0, 1), cols.imag.transpose(0, 1)  # (k, L)
    # out_re = Σ re·cos − im·sin, out_im = Σ re·sin + im·cos, interleaved per frequency.
    pairs = torch.stack((torch.cat((cos, -sin)), torch.cat((sin, cos))), dim=-1).reshape(2 * cols.shape[1], -1)
    return torch.cat((rows.real, rows.imag)), pairs, rows, cols


def polyphase_spectra(kernel, size, scale, tables=None):
    """``FK_r`` for every phase ``r = (r1, r2)``, channels first: ``(B, C, s², h, w // 2 + 1)`` complex,
    from a ``(B, C, k, k)`` kernel at the padded input size ``(h, w)``."""
    h, w = size
    b, c, k_rows, _ = kernel.shape
    rows, pairs = (spectra_tables(kernel, size, scale) if tables is None else tables)[:2]
    wc = w // 2 + 1
    # W_rows @ K @ W_colsᵀ in real arithmetic: [Re; Im] of the row product, then one real matrix
    # product whose output columns interleave (re, im), i.e. is already a complex array.
    half = (rows @ kernel).view(b, c, 2, scale * h, k_rows).transpose(2, 3).reshape(b, c, scale * h, 2 * k_rows)
    spectra = torch.view_as_complex((half @ pairs).view(b, c, scale * h, scale * wc, 2))
    if scale == 1:
        return spectra.unsqueeze(2)
    spectra = spectra.view(b, c, scale, h, scale, wc).transpose(3, 4)
    return spectra.reshape(b, c, scale * scale, h, wc)


class ChannelsLastSpectra:
    """``FK_r`` at the padded input size ``(h, w)``, channels last, one block of rows at a time.

    ``FK_r[f1, f2, c] = Σ_t1 rows[r1·h + f1, t1] · G[t1, r2·wc + f2, c]`` with ``G`` the column
    twiddles applied to the kernel (small: ``k × s·wc × C``). A block of rows is one real matrix
    product ``[Re | Im](rows) @ [G; i·G]`` whose output is already interleaved complex.
    """

    def __init__(self, kernel, size, scale, tables=None):
        h, w = size
        b, c, k, _ = kernel.shape
        self.scale, self.size, self.batch, self.channels = scale, (h, w), b, c
        _, _, rows, cols = spectra_tables(kernel, size, scale) if tables is None else tables
        taps = kernel.permute(0, 2, 3, 1)  # (B, t1, t2, C)
        g = torch.complex(cols.real @ taps, cols.imag @ taps)  # (B, t1, s·wc, C)
        self.right = torch.cat((torch.view_as_real(g), torch.view_as_real(g * 1j)), dim=1).reshape(b, 2 * k, -1)
        self.rows = torch.cat((rows.real, rows.imag), dim=-1).view(scale, h, 2 * k)

    def block(self, start, stop):
        """``(B, s², stop − start, wc, C)``: the spectra of rows ``start … stop − 1`` of every phase."""
        s, w, m = self.scale, self.size[1], stop - start
        left = self.rows[:, start:stop].reshape(s * m, -1)
        spectra = torch.view_as_complex((left @ self.right).view(self.batch, s * m, s * (w // 2 + 1), self.channels, 2))
        if s == 1:
            return spectra.unsqueeze(1)
        spectra = spectra.view(self.batch, s, m, s, w // 2 + 1, self.channels).transpose(2, 3)
        return spectra.reshape(self.batch, s * s, m, w // 2 + 1, self.channels)


# --- the solve ---------------------------------------------------------------------------------------


def sum_phases(t, dim):
    """``t.sum(dim, keepdim=True)``; with one phase (s = 1) ``t`` itself, without a reduction pass."""
    return t if t.shape[dim] == 1 else t.sum(dim, keepdim=True)


def solve_terms(spectra, lam, phase_dim):
    """``(1 − Σ_u FK_u, Σ_u |FK_u|² + λ)``, the numerator and denominator of the gain; ``lam`` is
    broadcastable against ``spectra`` (:func:`lam_against`)."""
    numerator = 1 - sum_phases(spectra, phase_dim)
    pair = torch.view_as_real(spectra)
    denominator = sum_phases(torch.addcmul(pair[..., 0].square(), pair[..., 1], pair[..., 1]), phase_dim) + lam
    return numerator, denominator


def response(spectra, lam, scale, phase_dim):
    """``H_r`` from ``FK_r``; ``lam`` broadcastable against ``spectra`` (:func:`lam_against`)."""
    if scale == 1:
        # (conj(FK) + λ) / (|FK|² + λ) in real arithmetic on the (re, im) pairs.
        pair = torch.view_as_real(spectra)
        re, im = pair[..., 0], pair[..., 1]
        inverse_den = torch.addcmul(re.square().add_(lam), im, im).reciprocal_()
        out = torch.empty_like(spectra)
        out_pair = torch.view_as_real(out)
        torch.mul(re + lam, inverse_den, out=out_pair[..., 0])
        torch.mul(im, inverse_den.neg_(), out=out_pair[..., 1])
        return out
    numerator, denominator = solve_terms(spectra, lam, phase_dim)
    return (spectra.conj_physical() * (numerator / denominator)).add_(1)


def transfer_function(kernel, lam, size, scale):
    """The polyphase frequency responses ``H_r`` at the padded input size, channels first.

    ``kernel``: ``(B, C, k, k)`` with ``B`` 1 (a learned kernel) or the batch size (a per-sample
    kernel); ``lam``: broadcastable to ``(B, C, 1, 1)``; ``size``: the padded input ``(h, w)``.
    Returns ``(B, C, s², h, w // 2 + 1)``: multiply ``rfft2(x)`` by each, take ``irfft2`` and
    interleave the ``s²`` results into the ``(hs, ws)`` output.
    """
    return response(polyphase_spectra(kernel, size, scale), lam_against(per_channel(lam, kernel.shape[1]), 2), scale, 2)


def transfer_function_nhwc(kernel, lam, size, scale):
    """:func:`transfer_function` laid out channels last: ``(B, s², h, w // 2 + 1, C)``."""
    spectra = ChannelsLastSpectra(kernel, size, scale).block(0, size[0])
    return response(spectra, lam_against(per_channel(lam, kernel.shape[1]), 1), scale, 1)


# --- polyphase components <-> the output ----------------------------------------------------------


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
    return phases.view(n, c, scale, scale, h, w).permute(0, 1, 4, 2, 5, 3).reshape(n, c, h * scale, w * scale)


def interleave_nhwc(phases, scale, crop=0):
    """:func:`interleave` channels last: ``(N, s², h, w, C)`` → ``(N, (h − 2·crop)·s, (w − 2·crop)·s, C)``."""
    n, _, h, w, c = phases.shape
    hc, wc = h - 2 * crop, w - 2 * crop
    if scale == 1:
        out = phases[:, 0, crop:h - crop, crop:w - crop]
        return out.contiguous() if crop else out
    phases = phases[:, :, crop:h - crop, crop:w - crop].reshape(n, scale, scale, hc, wc, c)
    return phases.permute(0, 3, 1, 4, 2, 5).reshape(n, hc * scale, wc * scale, c)


def deinterleave(grad, scale, size, crop=0, phase_dim=2):
    """The adjoint of :func:`interleave` (``phase_dim=2``, ``(N, C, H·s, W·s)`` → ``(N, C, s², h, w)``) or
    of :func:`interleave_nhwc` (``phase_dim=1``, ``(N, H·s, W·s, C)`` → ``(N, s², h, w, C)``), zero on the crop."""
    h, w = size
    hc, wc = h - 2 * crop, w - 2 * crop
    if phase_dim == 2:
        n, c = grad.shape[:2]
        phases = grad.reshape(n, c, hc, scale, wc, scale).permute(0, 1, 3, 5, 2, 4)
        phases = phases.reshape(n, c, scale * scale, hc, wc)
        pad = (crop, ) * 4
    else:
        n, c = grad.shape[0], grad.shape[-1]
        phases = grad.reshape(n, hc, scale, wc, scale, c).permute(0, 2, 4, 1, 3, 5)
        phases = phases.reshape(n, scale * scale, hc, wc, c)
        pad = (0, 0) + (crop, ) * 4
    return torch.nn.functional.pad(phases, pad) if crop else phases


# --- the backward ------------------------------------------------------------------------------------


def column_weights(w, device, dtype):
    """How often each of the ``w // 2 + 1`` rfft columns occurs in the full spectrum (1 or 2), over ``h·w``."""
    weights = torch.full((w // 2 + 1, ), 2.0, device=device, dtype=dtype)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


def reduce_to(grad, shape):
    """Sum a broadcast gradient back to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    dims = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def backward_terms(grad_spec, spectrum, spectra, lam, weights, phase_dim, needs, shared):
    """The backward of the solve for one block of frequencies (``docs/derivation.md`` §5).

    ``grad_spec``: ``rfft2`` of the output gradient's polyphase components ``G_r`` (overwritten);
    ``spectrum``: ``rfft2(x)`` without a phase axis; ``spectra``: ``FK_u``; ``lam`` broadcastable
    against them; ``weights``: the column multiplicities over ``h·w``, broadcastable against the
    frequency axes; ``needs``: which of (input, kernel, λ) gradients are wanted; ``shared``: whether one
    response serves the whole batch (its ``P_r`` is then summed over the batch).

    Returns ``(Σ_r G_r · conj(H_r)`` (the input gradient's spectrum), ``T``, ``R_u)`` with, for
    ``P_r = conj(G_r) · rfft2(x) · weights`` summed over the batch when the kernel is shared,
    ``S = Σ_r P_r conj(FK_r)``, ``T = Re(S · num) / D²`` and ``R_u = conj(P_u · num / D) − S / D −
    2 T conj(FK_u)``: the λ gradient is ``−Σ_f T``, the kernel gradient ``Re Σ_f Σ_u R_u · ∂FK_u/∂K``.
    Entries not needed are None.
    """
    need_x, need_kernel, need_lam = needs
    numerator, denominator = solve_terms(spectra, lam, phase_dim)
    gain = numerator / denominator
    grad_x_spec = t_term = r_term = None
    if need_x:
        conj_response = (spectra * gain.conj_physical()).add_(1)
        grad_x_spec = sum_phases(grad_spec * conj_response, phase_dim).squeeze(phase_dim)
        del conj_response
    if not (need_kernel or need_lam):
        return grad_x_spec, t_term, r_term
    p = grad_spec.conj_physical_().mul_(spectrum.unsqueeze(phase_dim))
    if shared and p.shape[0] != 1:
        p = p.sum(0, keepdim=True)
    p.mul_(weights)
    s_term = sum_phases(p * spectra.conj_physical(), phase_dim)
    t_term = (s_term * numerator).real / denominator.square()
    if need_kernel:
        r_term = p.mul_(gain).conj_physical_().sub_(s_term / denominator)
        r_term = r_term.sub_(spectra.conj_physical() * (2 * t_term))
    return grad_x_spec, t_term, r_term
