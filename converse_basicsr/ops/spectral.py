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

from ..runtime import freed_memory_retained

try:  # pocketfft: on CPU about 1.5× faster than torch.fft (MKL) at sizes with a large prime factor
    import scipy.fft as _scipy_fft
except ImportError:  # pragma: no cover - scipy is a dependency of basicsr
    _scipy_fft = None

# Set to False to use torch.fft everywhere (scripts/benchmark.py does so to measure memory).
USE_SCIPY_FFT = True


def _threads():
    """torch's intra-op thread count."""
    return torch.get_num_threads()


def _scipy_can_transform(t):
    """Whether scipy's pocketfft can transform ``t`` (a CPU tensor of a dtype it supports; no autograd)."""
    return (USE_SCIPY_FFT and _scipy_fft is not None and t.device.type == 'cpu'
            and t.dtype in (torch.float32, torch.float64, torch.complex64, torch.complex128))


def _pocketfft(t):
    """Whether the FFTs of ``t`` (no autograd graph needed) go through scipy's pocketfft: on one
    CPU thread it beats torch.fft by up to 1.5×; with more threads torch.fft parallelises better
    (measured at 256² and 512², C = 128, 1 and 2 threads)."""
    return _scipy_can_transform(t) and _threads() == 1 and not (t.requires_grad and torch.is_grad_enabled())


def rfft2(x):
    """``torch.fft.rfft2`` over the last two axes; on CPU outside autograd, scipy's pocketfft."""
    if _pocketfft(x):
        return torch.from_numpy(_scipy_fft.rfft2(x.detach().numpy(), workers=torch.get_num_threads()))
    return torch.fft.rfft2(x)


def irfft2(spectrum, size):
    """``torch.fft.irfft2(spectrum, s=size)``; on CPU outside autograd, scipy's pocketfft (overwrites ``spectrum``)."""
    if _pocketfft(spectrum):
        return torch.from_numpy(_scipy_fft.irfft2(spectrum.detach().resolve_conj().numpy(), s=size, overwrite_x=True,
                                                  workers=torch.get_num_threads()))
    return torch.fft.irfft2(spectrum, s=size)


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


def complex_dtype(dtype):
    return torch.complex128 if dtype == torch.float64 else torch.complex64


def polyphase_spectra(kernel, size, scale, tables=None):
    """``FK_r`` for every phase ``r = (r1, r2)``: ``(B, C, s², h, w // 2 + 1)`` complex, from a ``(B, C, k, k)``
    kernel at the padded input size ``(h, w)``. ``tables``: the result of :func:`spectra_tables`."""
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
    """Twiddle tables for :func:`polyphase_spectra`: ``[Re; Im]`` of the row twiddles ``(2·s·h, k)``
    (real) and the real ``(2k, 2·s·wc)`` matrix that applies the complex column twiddles to
    ``[Re | Im]`` rows; plus the complex column table ``(s·wc, k)`` for the kernel gradient."""
    h, w = size
    cdtype = complex_dtype(kernel.dtype)
    rows = polyphase_twiddles(h, kernel.shape[-2], scale, h, kernel.device, cdtype).reshape(scale * h, -1)
    cols = polyphase_twiddles(w, kernel.shape[-1], scale, w // 2 + 1, kernel.device, cdtype).reshape(scale * (w // 2 + 1), -1)
    cos, sin = cols.real.transpose(0, 1), cols.imag.transpose(0, 1)  # (k, L)
    # out_re = Σ re·cos − im·sin, out_im = Σ re·sin + im·cos, interleaved per frequency.
    pairs = torch.stack((torch.cat((cos, -sin)), torch.cat((sin, cos))), dim=-1).reshape(2 * cols.shape[1], -1)
    return torch.cat((rows.real, rows.imag)), pairs, rows, cols


def regularizer(bias, eps):
    """``λ = sigmoid(bias − 9) + eps``, the learned per-channel weight of the prior ``‖X − X0‖²``."""
    return torch.sigmoid(bias - 9.0) + eps


def _lam5(lam):
    """``λ`` of shape ``(…, C, 1, 1)`` broadcast against ``(B, C, s², h, wc)``."""
    return lam.unsqueeze(-3) if lam.dim() >= 3 else lam


def _sum_phases(t, dim):
    """``t.sum(dim, keepdim=True)``; with one phase (s = 1) ``t`` itself, without a reduction pass."""
    return t if t.shape[dim] == 1 else t.sum(dim, keepdim=True)


def _solve_terms(spectra, lam, phase_dim=2):
    """``(1 − Σ_u FK_u, Σ_u |FK_u|² + λ)``, the numerator and denominator of the gain; ``phase_dim``
    is the axis of the phases ``u`` and ``lam`` is already broadcastable against ``spectra``."""
    numerator = 1 - _sum_phases(spectra, phase_dim)
    pair = torch.view_as_real(spectra)
    denominator = _sum_phases(torch.addcmul(pair[..., 0].square(), pair[..., 1], pair[..., 1]), phase_dim) + lam
    return numerator, denominator


def _response(spectra, lam, scale, phase_dim=2):
    """``H_r`` from ``FK_r``; ``lam`` of shape ``(…, C, 1, 1)`` (``phase_dim=2``, channels first) or
    already broadcastable against ``spectra`` (any other ``phase_dim``)."""
    lam5 = _lam5(lam) if phase_dim == 2 else lam
    if scale == 1:
        # (conj(FK) + λ) / (|FK|² + λ) in real arithmetic on the (re, im) pairs.
        pair = torch.view_as_real(spectra)
        re, im = pair[..., 0], pair[..., 1]
        inverse_den = torch.addcmul(re.square().add_(lam5), im, im).reciprocal_()
        out = torch.empty_like(spectra)
        out_pair = torch.view_as_real(out)
        torch.mul(re + lam5, inverse_den, out=out_pair[..., 0])
        torch.mul(im, inverse_den.neg_(), out=out_pair[..., 1])
        return out
    numerator, denominator = _solve_terms(spectra, lam5, phase_dim)
    return (spectra.conj_physical() * (numerator / denominator)).add_(1)


def _per_channel(lam, channels):
    """``λ`` as ``(1 or B, C, 1, 1)`` so that it can be sliced by channel."""
    return lam.expand(*(lam.shape[:1] if lam.dim() == 4 else (1,)), channels, 1, 1)


def transfer_function(kernel, lam, size, scale):
    """The polyphase frequency responses ``H_r`` of reverse convolution at the padded input size.

    ``kernel``: ``(B, C, k, k)`` with ``B`` 1 (a learned kernel) or the batch size (a per-sample
    kernel); ``lam``: broadcastable to ``(B, C, 1, 1)``; ``size``: the padded input ``(h, w)``.
    Returns ``(B, C, s², h, w // 2 + 1)``: :func:`reverse_convolve` multiplies ``rfft2(x)`` by each,
    takes ``irfft2`` and interleaves the ``s²`` results into the ``(hs, ws)`` output.
    """
    return _response(polyphase_spectra(kernel, size, scale), _per_channel(lam, kernel.shape[1]), scale)


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


def deinterleave(grad, scale, size, crop=0):
    """The adjoint of :func:`interleave`: ``(N, C, H·s, W·s)`` → ``(N, C, s², h, w)``, zero on the crop."""
    n, c = grad.shape[:2]
    h, w = size
    phases = grad.reshape(n, c, h - 2 * crop, scale, w - 2 * crop, scale).permute(0, 1, 3, 5, 2, 4)
    phases = phases.reshape(n, c, scale * scale, h - 2 * crop, w - 2 * crop)
    if crop:
        phases = torch.nn.functional.pad(phases, (crop,) * 4)
    return phases


# Channels are processed in groups whose spectra (batch × phases × h × wc complex) stay around this
# size per thread²: the FFTs and the products then run in cache; one batched FFT over all channels
# is up to 1.5× slower on CPU, and with 2 threads groups of 8 MiB were fastest (measured at 256² and
# 524², C = 128).
CHUNK_BYTES = 2 ** 21


def _channel_groups(shape, phases, channels):
    n, _, h, w = shape
    per_channel = max(n * phases * h * (w // 2 + 1) * 8, 1)
    step = max(1, min(channels, CHUNK_BYTES * _threads() ** 2 // per_channel))
    return [slice(c0, min(c0 + step, channels)) for c0 in range(0, channels, step)]


def _slice_channels(t, group):
    return t[:, group] if t.dim() >= 3 else t


def reverse_convolve(x, scale, crop=0, kernel=None, lam=None, response=None, keep_spectrum=False, pad=None):
    """Reverse convolution of a padded real ``(N, C, h, w)`` map, cropped: ``(N, C, (h − 2·crop)·s, …)``.

    Either ``response`` (from :func:`transfer_function`) or ``kernel`` and ``lam`` are given. With
    ``keep_spectrum`` also returns ``rfft2(x)`` (for the backward pass). With ``pad`` (a function
    that pads a map by ``crop`` on every side), ``x`` is the unpadded map and is padded channel
    group by channel group, so the padded map is never held whole.
    """
    n, c, h, w = x.shape
    if pad is not None:
        h, w = h + 2 * crop, w + 2 * crop
    padded = (lambda t: t) if pad is None else pad
    if response is None:
        tables = spectra_tables(kernel, (h, w), scale)
        lam = _per_channel(lam, c)
    if scale == 1 and not keep_spectrum and _scipy_can_transform(x) and freed_memory_retained():
        # Without autograd on CPU, when large buffers come from a warm heap: pocketfft transforms
        # the whole map at once across the threads, the responses are still built and applied
        # group by group, in cache. Measured at 512², C = 128: 0.48 s against 0.59 s group by
        # group; with glibc's default thresholds the map-sized buffers are fresh mappings whose
        # page faults make it slower (0.91 s against 0.69 s), and for s = 2 it is slower either way.
        spectrum = rfft2_nhwc(padded(x), axes=(2, 3))
        products = spectrum.unsqueeze(2)  # multiplied in place
        for group in _channel_groups((n, c, h, w), 1, c):
            if response is None:
                h_part = _response(polyphase_spectra(kernel[:, group], (h, w), scale, tables), lam[:, group], scale)
            else:
                h_part = _slice_channels(response, group)
            torch.mul(spectrum[:, group].unsqueeze(2), h_part, out=products[:, group])
        del spectrum
        return interleave(irfft2_nhwc(products, (h, w), axes=(3, 4)), scale, crop).contiguous()
    out = x.new_empty(n, c, (h - 2 * crop) * scale, (w - 2 * crop) * scale)
    spectrum = x.new_empty(n, c, h, w // 2 + 1, dtype=complex_dtype(x.dtype)) if keep_spectrum else None
    for group in _channel_groups((n, c, h, w), scale * scale, c):
        part = rfft2(padded(x[:, group]))
        if keep_spectrum:
            spectrum[:, group] = part
        if response is None:
            h_part = _response(polyphase_spectra(kernel[:, group], (h, w), scale, tables), lam[:, group], scale)
        else:
            h_part = _slice_channels(response, group)
        phases = irfft2(part.unsqueeze(2) * h_part, (h, w))
        out[:, group] = interleave(phases, scale, crop)
    return (out, spectrum) if keep_spectrum else out


def _reduce_to(grad, shape):
    """Sum a broadcast gradient back to ``shape``."""
    while grad.dim() > len(shape):
        grad = grad.sum(0)
    dims = tuple(i for i, size in enumerate(shape) if size == 1 and grad.shape[i] != 1)
    return grad.sum(dims, keepdim=True) if dims else grad


def _column_weights(w, device, dtype):
    """How often each of the ``w // 2 + 1`` rfft columns occurs in the full spectrum (1 or 2)."""
    weights = torch.full((w // 2 + 1,), 2.0, device=device, dtype=dtype)
    weights[0] = 1.0
    if w % 2 == 0:
        weights[-1] = 1.0
    return weights


class ReverseConvolution(torch.autograd.Function):
    """``(x, kernel, λ) → `` cropped reverse convolution of the padded ``x``, with a hand-written backward.

    Autograd through the FFTs and the response would keep a dozen complex intermediates of the
    padded size alive (the response's graph, both FFT products); this keeps only ``rfft2(x)``
    and rebuilds the small-kernel spectra in backward from twiddle products, channel group by
    channel group. With ``g_r`` the polyphase components of the output gradient:

    - input: the adjoint filter, ``irfft2(Σ_r rfft2(g_r) · conj(H_r))``;
    - kernel and λ: with ``P_r = conj(rfft2(g_r)) · rfft2(x) / (h·w)`` (summed over the batch for a
      shared kernel, weighted by each column's multiplicity in the full spectrum) the loss moves by
      ``Re Σ_f Σ_r P_r · δH_r``; differentiating ``H_r = 1 + conj(FK_r) · num / D`` gives
      ``Re Σ_f Σ_u R_u · δFK_u − δλ · Σ_f T`` with ``S = Σ_r P_r conj(FK_r)``, ``T = Re(S · num) / D²``
      and ``R_u = conj(P_u · num / D) − S / D − 2 T conj(FK_u)``; ``δFK_u`` is linear in the kernel
      through the twiddles, so the kernel gradient is ``Re(W_rowsᵀ R W_cols)``.
    """

    @staticmethod
    def forward(ctx, x, kernel, lam, scale, crop):
        out, spectrum = reverse_convolve(x, scale, crop, kernel, lam, keep_spectrum=True)
        ctx.scale, ctx.crop, ctx.size = scale, crop, tuple(x.shape[-2:])
        ctx.save_for_backward(spectrum, kernel, lam)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        spectrum, kernel, lam = ctx.saved_tensors
        grads = reverse_convolution_grads(grad_out, spectrum, kernel, lam, ctx.scale, ctx.crop, ctx.size,
                                          ctx.needs_input_grad[:3])
        return (*grads, None, None)


def _parameter_terms(p, spectra, numerator, denominator, gain, phase_dim, need_kernel):
    """``(T, R_u)`` of the backward (see :class:`ReverseConvolution`) from the weighted ``P_r``, which is
    overwritten; ``R_u`` is None without ``need_kernel``."""
    s_term = _sum_phases(p * spectra.conj_physical(), phase_dim)
    t_term = (s_term * numerator).real / denominator.square()
    if not need_kernel:
        return t_term, None
    r_term = p.mul_(gain).conj_physical_().sub_(s_term / denominator)
    return t_term, r_term.sub_(spectra.conj_physical() * (2 * t_term))


def reverse_convolution_grads(grad_out, spectrum, kernel, lam_in, scale, crop, size, needs):
    """The gradients of :class:`ReverseConvolution` (``None`` where ``needs`` is False)."""
    if torch.is_autocast_enabled(grad_out.device.type):  # backward() called inside an autocast region
        with torch.autocast(grad_out.device.type, enabled=False):
            return reverse_convolution_grads(grad_out, spectrum, kernel, lam_in, scale, crop, size, needs)
    (h, w), (need_x, need_kernel, need_lam) = size, needs
    n, c = spectrum.shape[:2]
    lam = _per_channel(lam_in, c)
    batch = max(kernel.shape[0], lam.shape[0])  # of the response: 1 (shared) or n
    _, _, rows, cols = tables = spectra_tables(kernel, (h, w), scale)
    weights = _column_weights(w, spectrum.device, spectrum.real.dtype) / (h * w)
    grad_x = spectrum.real.new_empty(n, c, h, w) if need_x else None
    grad_kernel = kernel.new_empty(batch, *kernel.shape[1:]) if need_kernel else None
    grad_lam = lam.new_empty(batch, c, 1, 1) if need_lam else None
    for group in _channel_groups((n, c, h, w), scale * scale, c):
        spectra = polyphase_spectra(kernel[:, group], (h, w), scale, tables)
        numerator, denominator = _solve_terms(spectra, _lam5(lam[:, group]))
        gain = numerator / denominator
        grad_spec = rfft2(deinterleave(grad_out[:, group], scale, (h, w), crop))
        if need_x:
            response = (spectra * gain.conj_physical()).add_(1)  # conj(H_r)
            grad_x[:, group] = irfft2(_sum_phases(grad_spec * response, 2).squeeze(2), (h, w))
            del response
        if not (need_kernel or need_lam):
            continue
        p = grad_spec.conj_physical_().mul_(spectrum[:, group].unsqueeze(2))
        del grad_spec
        if batch == 1 and n != 1:
            p = p.sum(0, keepdim=True)
        p.mul_(weights)
        t_term, r_term = _parameter_terms(p, spectra, numerator, denominator, gain, 2, need_kernel)
        if need_lam:
            grad_lam[:, group] = -t_term.sum(dim=(-3, -2, -1)).view(batch, -1, 1, 1)
        if need_kernel:
            g = r_term.shape[1]
            r_term = r_term.view(batch, g, scale, scale, h, -1).transpose(3, 4).reshape(batch, g, scale * h, -1)
            grad_kernel[:, group] = (rows.transpose(0, 1) @ (r_term @ cols)).real
    if need_kernel:
        grad_kernel = _reduce_to(grad_kernel, kernel.shape)
    if need_lam:
        grad_lam = _reduce_to(grad_lam, lam_in.shape)
    return grad_x, grad_kernel, grad_lam


# --- torch.compile -----------------------------------------------------------------------------
# Inductor generates no code for complex tensors: traced through, the solve runs slower than eager
# (0.55× at 256², measured). As custom operators the forward and the backward stay opaque to the
# compiler and run the eager implementation (pocketfft, channel groups), while inductor compiles
# what surrounds them. Inside a custom operator's kernel a lazily conjugated view (``.conj()``) is
# read without its conjugation (measured: wrong s = 2 outputs), so this module conjugates with
# ``conj_physical`` throughout.

@torch.library.custom_op('converse_basicsr::reverse_convolution', mutates_args=())
def reverse_convolution_op(x: torch.Tensor, kernel: torch.Tensor, lam: torch.Tensor, scale: int,
                           crop: int) -> tuple[torch.Tensor, torch.Tensor]:
    """``(out, rfft2(x))`` of :func:`reverse_convolve` for a padded ``(N, C, h, w)`` map."""
    return reverse_convolve(x, scale, crop, kernel, lam, keep_spectrum=True)


@reverse_convolution_op.register_fake
def _(x, kernel, lam, scale, crop):
    n, c, h, w = x.shape
    return (x.new_empty(n, c, (h - 2 * crop) * scale, (w - 2 * crop) * scale),
            x.new_empty(n, c, h, w // 2 + 1, dtype=complex_dtype(x.dtype)))


@torch.library.custom_op('converse_basicsr::reverse_convolution_backward', mutates_args=())
def reverse_convolution_backward_op(grad_out: torch.Tensor, spectrum: torch.Tensor, kernel: torch.Tensor,
                                    lam: torch.Tensor, scale: int, crop: int, width: int
                                    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    size = (spectrum.shape[-2], width)
    return reverse_convolution_grads(grad_out.contiguous(), spectrum, kernel, lam, scale, crop, size,
                                     (True, True, True))


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


# --- channels-last evaluation ------------------------------------------------------------------
# The archs keep their activations channels-last (NHWC): there LayerNorm over channels and the
# 1×1 convolutions are contiguous, and without autograd the reverse convolution runs in that
# layout too. pocketfft transforms axes 1 and 2 of an ``(N, h, w, C)`` array as fast as the last
# two of an ``(N, C, h, w)`` one (it gathers the strided lines itself), so no transposition is
# needed; the frequency response is built in ``(B, s², rows, w // 2 + 1, C)`` blocks of rows that
# stay in cache and multiplied into the spectrum block by block.

def rfft2_nhwc(x, axes=(1, 2)):
    """``rfft2`` over ``axes`` (by default 1 and 2 of an ``(N, h, w, C)`` map), without autograd."""
    if _scipy_can_transform(x):
        return torch.from_numpy(_scipy_fft.rfft2(x.detach().numpy(), axes=axes, workers=torch.get_num_threads()))
    return torch.fft.rfft2(x, dim=axes)


def irfft2_nhwc(spectrum, size, axes=(1, 2)):
    """``irfft2`` over ``axes`` of a channels-last spectrum (no autograd; may overwrite ``spectrum``)."""
    if _scipy_can_transform(spectrum):
        return torch.from_numpy(_scipy_fft.irfft2(spectrum.detach().resolve_conj().numpy(), s=size, axes=axes,
                                                  overwrite_x=True, workers=torch.get_num_threads()))
    return torch.fft.irfft2(spectrum, s=size, dim=axes)


class NHWCSpectra:
    """``FK_r`` at the padded input size ``(h, w)``, channels last, one block of rows at a time.

    ``FK_r[f1, f2, c] = Σ_t1 rows[r1·h + f1, t1] · G[t1, r2·wc + f2, c]`` with ``G`` the column
    twiddles applied to the kernel (small: ``k × s·wc × C``). A block of rows is one real matrix
    product ``[Re | Im](rows) @ [G; i·G]`` whose output is already interleaved complex.
    """

    def __init__(self, kernel, size, scale):
        h, w = size
        b, c, k, _ = kernel.shape
        self.scale, self.size, self.batch, self.channels = scale, (h, w), b, c
        _, _, rows, cols = spectra_tables(kernel, size, scale)
        taps = kernel.permute(0, 2, 3, 1)  # (B, t1, t2, C)
        g = torch.complex(cols.real @ taps, cols.imag @ taps)  # (B, t1, s·wc, C)
        self.right = torch.cat((torch.view_as_real(g), torch.view_as_real(g * 1j)), dim=1).reshape(b, 2 * k, -1)
        self.rows = torch.cat((rows.real, rows.imag), dim=-1).view(scale, h, 2 * k)

    def block(self, start, stop):
        """``(B, s², stop − start, wc, C)``: the spectra of rows ``start … stop − 1`` of every phase."""
        s, (h, w), m = self.scale, self.size, stop - start
        left = self.rows[:, start:stop].reshape(s * m, -1)
        spectra = torch.view_as_complex((left @ self.right).view(self.batch, s * m, s * (w // 2 + 1), self.channels, 2))
        if s == 1:
            return spectra.unsqueeze(1)
        spectra = spectra.view(self.batch, s, m, s, w // 2 + 1, self.channels).transpose(2, 3)
        return spectra.reshape(self.batch, s * s, m, w // 2 + 1, self.channels)


def response_nhwc(spectra, lam, scale):
    """``H_r`` from channels-last ``FK_r`` (``(B, s², m, wc, C)``) and ``λ`` of shape ``(1 or B, C)``."""
    return _response(spectra, lam.view(lam.shape[0], 1, 1, 1, -1), scale, phase_dim=1)


def transfer_function_nhwc(kernel, lam, size, scale):
    """:func:`transfer_function` laid out channels last: ``(B, s², h, w // 2 + 1, C)``."""
    spectra = NHWCSpectra(kernel, size, scale).block(0, size[0])
    return response_nhwc(spectra, _per_channel(lam, kernel.shape[1]).reshape(-1, kernel.shape[1]), scale)


def _row_block(n, scale, w, channels, itemsize):
    per_row = max(n, 1) * scale * scale * (w // 2 + 1) * channels * itemsize
    return max(1, CHUNK_BYTES * _threads() ** 2 // per_row)


def reverse_convolve_nhwc(x, scale, crop=0, kernel=None, lam=None, response=None, keep_spectrum=False):
    """:func:`reverse_convolve` of a padded channels-last ``(N, h, w, C)`` map (no autograd inside).

    Returns the cropped output ``(N, (h − 2·crop)·s, (w − 2·crop)·s, C)``. Either ``response``
    (from :func:`transfer_function_nhwc`) or ``kernel`` ``(B, C, k, k)`` and ``lam`` are given. With
    ``keep_spectrum`` also returns ``rfft2(x)`` (for :class:`ReverseConvolutionNHWC`'s backward).
    """
    n, h, w, c = x.shape
    spectrum = rfft2_nhwc(x)  # (N, h, wc, C)
    if response is None:
        spectra = NHWCSpectra(kernel, (h, w), scale)
        lam = _per_channel(lam, c).reshape(-1, c)
    step = _row_block(n, scale, w, c, spectrum.element_size())
    if scale == 1 and not keep_spectrum:
        products = spectrum.unsqueeze(1)  # multiplied in place
    else:
        products = spectrum.new_empty(n, scale * scale, h, w // 2 + 1, c)
    for start in range(0, h, step):
        stop = min(start + step, h)
        gain = response[:, :, start:stop] if response is not None else \
            response_nhwc(spectra.block(start, stop), lam, scale)
        torch.mul(spectrum[:, None, start:stop], gain, out=products[:, :, start:stop])
    phases = irfft2_nhwc(products, (h, w), axes=(2, 3))  # (N, s², h, w, C)
    hc, wc = h - 2 * crop, w - 2 * crop
    if scale == 1:
        out = phases[:, 0, crop:h - crop, crop:w - crop]
        out = out.contiguous() if crop else out
    else:
        # out[s·m1 + r1, s·m2 + r2] = phases[(r1, r2), m1, m2]
        phases = phases[:, :, crop:h - crop, crop:w - crop].reshape(n, scale, scale, hc, wc, c)
        out = phases.permute(0, 3, 1, 4, 2, 5).reshape(n, hc * scale, wc * scale, c)
    return (out, spectrum) if keep_spectrum else out


class ReverseConvolutionNHWC(torch.autograd.Function):
    """:class:`ReverseConvolution` for padded channels-last ``(N, h, w, C)`` maps (CPU training of
    the archs, whose activations are channels last). Same backward algebra, with the phases on
    axis 1 and the channels last; the kernel spectra are rebuilt block of rows by block of rows."""

    @staticmethod
    def forward(ctx, x, kernel, lam, scale, crop):
        out, spectrum = reverse_convolve_nhwc(x, scale, crop, kernel, lam, keep_spectrum=True)
        ctx.scale, ctx.crop, ctx.size = scale, crop, tuple(x.shape[1:3])
        ctx.save_for_backward(spectrum, kernel, lam)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out):
        if torch.is_autocast_enabled(grad_out.device.type):  # backward() called inside an autocast region
            with torch.autocast(grad_out.device.type, enabled=False):
                return ReverseConvolutionNHWC.backward.__wrapped__(ctx, grad_out)
        spectrum, kernel, lam_in = ctx.saved_tensors
        scale, crop, (h, w) = ctx.scale, ctx.crop, ctx.size
        need_x, need_kernel, need_lam = ctx.needs_input_grad[:3]
        n, _, wc, c = spectrum.shape
        lam = _per_channel(lam_in, c).reshape(-1, c)
        lam5 = lam.view(-1, 1, 1, 1, c)
        batch = max(kernel.shape[0], lam.shape[0])
        spectra = NHWCSpectra(kernel, (h, w), scale)
        _, _, rows, cols = spectra_tables(kernel, (h, w), scale)
        rows, cols = rows.view(scale, h, -1), cols.view(scale, wc, -1)  # (r1, f1, t1), (r2, f2, t2)
        weights = (_column_weights(w, spectrum.device, spectrum.real.dtype) / (h * w)).view(wc, 1)
        # the adjoint of the interleave and crop: (N, Hs, Ws, C) → (N, s², h, w, C), zero on the crop
        hc, wcrop = h - 2 * crop, w - 2 * crop
        phases = grad_out.reshape(n, hc, scale, wcrop, scale, c).permute(0, 2, 4, 1, 3, 5)
        phases = phases.reshape(n, scale * scale, hc, wcrop, c)
        if crop:
            phases = torch.nn.functional.pad(phases, (0, 0, crop, crop, crop, crop))
        grad_spec = rfft2_nhwc(phases.contiguous(), axes=(2, 3))  # (N, s², h, wc, C)
        del phases
        grad_x_spec = spectrum.new_empty(n, h, wc, c) if need_x else None
        grad_kernel = kernel.new_zeros(batch, c, *kernel.shape[-2:]) if need_kernel else None
        grad_lam = lam.new_zeros(batch, c) if need_lam else None
        step = _row_block(n, scale, w, c, spectrum.element_size())
        for start in range(0, h, step):
            stop = min(start + step, h)
            fk = spectra.block(start, stop)  # (B, s², m, wc, C)
            numerator, denominator = _solve_terms(fk, lam5, phase_dim=1)
            gain = numerator / denominator
            g = grad_spec[:, :, start:stop]
            if need_x:  # Σ_r G_r · conj(H_r)
                grad_x_spec[:, start:stop] = _sum_phases(g * (fk * gain.conj_physical()).add_(1), 1).squeeze(1)
            if not (need_kernel or need_lam):
                continue
            p = g.conj_physical() * spectrum[:, None, start:stop]
            if batch == 1 and n != 1:
                p = p.sum(0, keepdim=True)
            p.mul_(weights)
            t_term, r_term = _parameter_terms(p, fk, numerator, denominator, gain, 1, need_kernel)
            if need_lam:
                grad_lam -= t_term.sum(dim=(1, 2, 3))
            if need_kernel:
                r_term = r_term.view(batch, scale, scale, stop - start, wc, c)
                partial = torch.einsum('bxyfgc,ygt->bxftc', r_term, cols)
                grad_kernel += torch.einsum('xfu,bxftc->bcut', rows[:, start:stop], partial).real
        grad_x = irfft2_nhwc(grad_x_spec, (h, w)) if need_x else None
        if need_kernel:
            grad_kernel = _reduce_to(grad_kernel, kernel.shape)
        if need_lam:
            grad_lam = _reduce_to(grad_lam.view(batch, c, 1, 1), lam_in.shape)
        return grad_x, grad_kernel, grad_lam, None, None
