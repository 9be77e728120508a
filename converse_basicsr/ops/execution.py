"""How reverse convolution runs: FFT back end, memory layout, channel groups, forward and backward loops.

The mathematics is in :mod:`.spectral`; this module applies it to a map one *channel group* at a time.
The response is per channel, so a group is a complete sub-problem: its padded map, spectrum, response
and products stay near the size of the CPU cache (on CUDA: a share of the free memory), and per-pixel
cost does not grow with the image. Working buffers are therefore small and come back from the heap on
the next group or call instead of being fresh page-faulted mappings; only what the caller keeps (the
output, the gradients, and with autograd the saved ``rfft2(x)``) is allocated at full size, once.

Two layouts share every loop: channels first ``(N, C, H, W)`` and channels last ``(N, H, W, C)`` (the
archs' activations). Channels last is transformed in place over axes 1 and 2, by scipy's pocketfft on
CPU (which gathers the strided lines itself) and by ``torch.fft`` over those dims on CUDA: no layout
copy per layer.
"""
import torch

from . import buffers
from .padding import pad, pad_adjoint
from .spectral import (ChannelsLastSpectra, backward_terms, column_weights, complex_dtype, deinterleave, interleave,
                       interleave_nhwc, lam_against, per_channel, polyphase_spectra, reduce_to, response,
                       spectra_tables)

try:  # pocketfft: on CPU about 1.5× faster than torch.fft (MKL) at sizes with a large prime factor
    import scipy.fft as _scipy_fft
except ImportError:  # pragma: no cover - scipy is a dependency of basicsr
    _scipy_fft = None

# --- FFT back end ------------------------------------------------------------------------------------


def _pocketfft(t, channels_last):
    """Whether ``t``'s FFTs go through scipy's pocketfft: CPU tensors of a dtype it supports, outside
    autograd. Channels last always (torch.fft would transpose); channels first on one thread only, where
    it beats torch.fft by up to 1.5× (with more threads torch.fft parallelises better; measured at 256²
    and 512², C = 128, 1 and 2 threads)."""
    return (_scipy_fft is not None and t.device.type == 'cpu' and not (t.requires_grad and torch.is_grad_enabled())
            and t.dtype in (torch.float32, torch.float64, torch.complex64, torch.complex128)
            and (channels_last or torch.get_num_threads() == 1))


def rfft2(x, axes, channels_last):
    if _pocketfft(x, channels_last):
        return torch.from_numpy(_scipy_fft.rfft2(x.detach().numpy(), axes=axes, workers=torch.get_num_threads()))
    return torch.fft.rfft2(x, dim=axes)


def irfft2(spectrum, size, axes, channels_last):
    """``irfft2`` over ``axes`` to ``size``; may overwrite ``spectrum``."""
    if _pocketfft(spectrum, channels_last):
        return torch.from_numpy(
            _scipy_fft.irfft2(spectrum.detach().resolve_conj().numpy(), s=size, axes=axes, overwrite_x=True,
                              workers=torch.get_num_threads()))
    return torch.fft.irfft2(spectrum, s=size, dim=axes)


# --- layouts ---------------------------------------------------------------------------------------------


class Layout:
    """Where the channel, phase and spatial axes are: ``NCHW`` or ``NHWC`` (the two instances below)."""

    def __init__(self, name, channel_dim, phase_dim, spatial):
        self.name, self.channel_dim, self.phase_dim, self.spatial = name, channel_dim, phase_dim, spatial
        self.channels_last = channel_dim == -1
        self.row_dim = -3 if self.channels_last else -2

    def shape(self, n, c, h, w):
        return (n, h, w, c) if self.channels_last else (n, c, h, w)

    def size(self, x):
        return tuple(x.shape[s] for s in self.spatial)

    def take(self, t, group):
        """Channels ``group`` of a map, spectrum or response (any rank; channels on ``channel_dim``)."""
        return t[..., group] if self.channels_last else t[:, group]

    def rows(self, t, start, stop):
        """Frequency rows ``start … stop − 1`` of a spectrum, with or without its phase axis."""
        return t.narrow(self.row_dim, start, stop - start)

    def spectra(self, kernel, size, scale, tables):
        """``block(start, stop)``: ``FK_r`` for rows ``start … stop − 1`` (channels first: built whole)."""
        if self.channels_last:
            return ChannelsLastSpectra(kernel, size, scale).block
        whole = polyphase_spectra(kernel, size, scale, tables)
        return lambda start, stop: self.rows(whole, start, stop)

    def row_blocks(self, device, per_row, h):
        """On CPU a group's products (and backward terms) are built in blocks of rows that stay in cache: channels
        last of ``CHUNK_BYTES × threads²`` (pocketfft's groups are large), channels first of ``CHUNK_BYTES``
        (fewer and smaller temporaries per block: in a plain process the backward at C = 128, 256² then
        page-faulted 55 MiB instead of 150 MiB per call, measured)."""
        step = h
        if self.channels_last and device.type == 'cpu':
            step = max(1, CHUNK_BYTES * torch.get_num_threads()**2 // max(per_row, 1))
        elif device.type == 'cpu':
            step = max(1, CHUNK_BYTES // max(per_row, 1))
        return [(start, min(start + step, h)) for start in range(0, h, step)]

    def weights(self, weights):
        """Column multiplicities broadcastable against ``(…, h, wc[, C])``."""
        return weights.view(-1, 1) if self.channels_last else weights

    def interleave(self, phases, scale, crop):
        return (interleave_nhwc if self.channels_last else interleave)(phases, scale, crop)

    def channels_first(self, t):
        """A ``(B, s², h, wc, g)`` term as ``(B, g, s², h, wc)``; channels first unchanged."""
        return t.permute(0, 4, 1, 2, 3) if self.channels_last else t


NCHW = Layout('NCHW', channel_dim=1, phase_dim=2, spatial=(-2, -1))
NHWC = Layout('NHWC', channel_dim=-1, phase_dim=1, spatial=(-3, -2))

# --- channel groups --------------------------------------------------------------------------------------

# On CPU, channels first, a group's spectra (batch × phases × h × wc complex) stay around this size per
# thread²: the FFTs and the products then run in cache; one batched FFT over all channels is up to 1.5×
# slower, and with 2 threads groups of 8 MiB were fastest (measured at 256² and 524², C = 128).
CHUNK_BYTES = 2**21
# Channels last, pocketfft vectorises each line over neighbouring channels, so a group needs many channels:
# groups of 1–8 channels were up to 1.5× slower than groups of 16 MiB (C = 64, 256² to 512², 1 thread).
# Kept below glibc's largest mmap threshold, so the heap reuses a group's buffers (why: ops/buffers.py).
CHANNELS_LAST_GROUP_BYTES = 2**24
# On CUDA there is no cache to fit: a group is as large as memory allows, a share of what is free.
CUDA_MEMORY_SHARE = 8


def group_bytes(device, channels_last):
    """The target size of one channel group's spectra on ``device`` (the thread count matters on CPU only)."""
    if device.type == 'cuda':
        free, _ = torch.cuda.mem_get_info(device)
        return max(CHUNK_BYTES, free // CUDA_MEMORY_SHARE)
    if channels_last:
        return CHANNELS_LAST_GROUP_BYTES
    return CHUNK_BYTES * torch.get_num_threads()**2


def spectrum_bytes(n, scale, size, cdtype):
    """Bytes of one channel's polyphase spectra ``(N, s², h, w // 2 + 1)``."""
    return n * scale * scale * size[0] * (size[1] // 2 + 1) * (16 if cdtype == torch.complex128 else 8)


def channel_groups(device, channels_last, per_channel, channels):
    """Slices of ``channels`` whose spectra (``per_channel`` bytes each) fit :func:`group_bytes`."""
    step = max(1, min(channels, group_bytes(device, channels_last) // max(per_channel, 1)))
    return [slice(c0, min(c0 + step, channels)) for c0 in range(0, channels, step)]


# --- forward and backward ----------------------------------------------------------------------------------


def solve(x, layout, scale, crop=0, kernel=None, lam=None, response_=None, padding_mode=None, keep_spectrum=False):
    """Reverse convolution of a real map in ``layout``, cropped by ``crop`` input pixels on every side.

    Either ``response_`` (a transfer function in ``layout``) or ``kernel`` ``(B, C, k, k)`` and ``lam``
    are given. With ``padding_mode``, ``x`` is the unpadded map and is padded by ``crop`` group by group,
    so that the padded map is never held whole; without it ``x`` is already padded. With
    ``keep_spectrum`` also returns ``rfft2`` of the padded map (for the backward). The full-size results
    come from :mod:`.buffers` (reused memory once their earlier holders are gone).
    """
    n, c = x.shape[0], x.shape[layout.channel_dim]
    h, w = layout.size(x)
    if padding_mode is not None:
        h, w = h + 2 * crop, w + 2 * crop
    pd, cdtype = layout.phase_dim, complex_dtype(x.dtype)
    # channels last the s² products are formed in blocks of rows: a group is sized by its input's spectrum
    group_scale = 1 if layout.channels_last else scale
    groups = channel_groups(x.device, layout.channels_last, spectrum_bytes(n, group_scale, (h, w), cdtype), c)
    whole = len(groups) == 1  # one group: its results are the outputs, no copies into them
    out = spectrum = None
    if not whole:
        out = buffers.empty(layout.shape(n, c, (h - 2 * crop) * scale, (w - 2 * crop) * scale), x.dtype, x.device)
    if keep_spectrum and not whole:
        spectrum = buffers.empty(layout.shape(n, c, h, w // 2 + 1), cdtype, x.device)
    if response_ is None:
        tables = spectra_tables(kernel, (h, w), scale)
        lam = per_channel(lam, c)
    for group in groups:
        part = layout.take(x, group)
        part = pad(part, crop, padding_mode, layout.channels_last) if padding_mode is not None else part.contiguous()
        part = rfft2(part, layout.spatial, layout.channels_last)
        if keep_spectrum and whole:
            spectrum = part
        elif keep_spectrum:
            layout.take(spectrum, group).copy_(part)
        in_place = scale == 1 and not (keep_spectrum and whole)  # the kept spectrum must stay intact
        products = part.unsqueeze(pd)  # multiplied in place, or a new array with s² phases
        if not in_place:
            products = products.new_empty(products.shape[:pd] + (scale * scale, ) + products.shape[pd + 1:])
        spectra = layout.spectra(kernel[:, group], (h, w), scale, tables) if response_ is None else None
        for start, stop in layout.row_blocks(x.device, products.nbytes // h, h):
            if response_ is None:
                gain = response(spectra(start, stop), lam_against(lam[:, group], pd), scale, pd)
            else:
                gain = layout.rows(layout.take(response_, group), start, stop)
            if in_place:
                layout.rows(products, start, stop).mul_(gain)
            else:
                torch.mul(layout.rows(part, start, stop).unsqueeze(pd), gain, out=layout.rows(products, start, stop))
        del part, spectra
        result = layout.interleave(irfft2(products, (h, w), layout.spatial, layout.channels_last), scale, crop)
        if whole and result.is_contiguous():
            out = result
        elif whole:
            out = buffers.empty(result.shape, result.dtype, result.device).copy_(result)
        else:
            layout.take(out, group).copy_(result)
    return (out, spectrum) if keep_spectrum else out


def kernel_gradient(r_term, rows, cols, scale, h):
    """``Re(W_rowsᵀ R W_cols)``: the kernel gradient from the channels-first ``R_u`` ``(B, g, s², h, wc)``."""
    b, g = r_term.shape[:2]
    r_term = r_term.reshape(b, g, scale, scale, h, -1).transpose(3, 4).reshape(b, g, scale * h, -1)
    return (rows.transpose(0, 1) @ (r_term @ cols)).real


def solve_backward(grad_out, spectrum, kernel, lam_in, layout, scale, crop, size, needs, padding_mode=None):
    """Gradients of :func:`solve` (``keep_spectrum``) for input, kernel and λ (None where ``needs`` is False).

    ``size`` is the padded size. With ``padding_mode`` (the forward padded its input) the input gradient
    is that of the unpadded map, the padding's adjoint applied group by group; without it, of the padded map.
    """
    if torch.is_autocast_enabled(grad_out.device.type):  # backward() called inside an autocast region
        with torch.autocast(grad_out.device.type, enabled=False):
            return solve_backward(grad_out, spectrum, kernel, lam_in, layout, scale, crop, size, needs, padding_mode)
    (h, w), (need_x, need_kernel, need_lam) = size, needs
    n, c, pd = spectrum.shape[0], spectrum.shape[layout.channel_dim], layout.phase_dim
    lam = per_channel(lam_in, c)
    batch = max(kernel.shape[0], lam.shape[0])  # of the response: 1 (shared) or n
    tables = spectra_tables(kernel, size, scale)
    weights = layout.weights(column_weights(w, spectrum.device, spectrum.real.dtype) / (h * w))
    unpadded = (h - 2 * crop, w - 2 * crop) if padding_mode is not None else (h, w)
    grad_x = buffers.empty(layout.shape(n, c, *unpadded), spectrum.real.dtype, spectrum.device) if need_x else None
    grad_kernel = kernel.new_empty(batch, *kernel.shape[1:]) if need_kernel else None
    grad_lam = lam.new_empty(batch, c, 1, 1) if need_lam else None
    per_channel_bytes = spectrum_bytes(n, scale, (h, w), spectrum.dtype)
    for group in channel_groups(spectrum.device, layout.channels_last, per_channel_bytes, c):
        phases = deinterleave(layout.take(grad_out, group), scale, size, crop, pd).contiguous()
        grad_spec = rfft2(phases, layout.spatial, layout.channels_last)
        del phases
        spectra, part = layout.spectra(kernel[:, group], size, scale, tables), layout.take(spectrum, group)
        grad_x_spec = part.new_empty(part.shape) if need_x else None
        if need_lam:
            grad_lam[:, group] = 0
        if need_kernel:
            grad_kernel[:, group] = 0
        for start, stop in layout.row_blocks(spectrum.device, grad_spec.nbytes // h, h):
            fk = spectra(start, stop)
            block_x, t_term, r_term = backward_terms(
                layout.rows(grad_spec, start, stop), layout.rows(part, start, stop), fk, lam_against(lam[:, group], pd),
                weights, pd, needs, batch == 1)
            if need_x:
                layout.rows(grad_x_spec, start, stop).copy_(block_x)
            if need_lam:
                t_term = layout.channels_first(t_term)
                grad_lam[:, group] -= t_term.sum(dim=(-3, -2, -1)).view(batch, -1, 1, 1)
            if need_kernel:
                rows = tables[2].view(scale, h, -1)[:, start:stop].reshape(scale * (stop - start), -1)
                grad_kernel[:, group] += kernel_gradient(
                    layout.channels_first(r_term), rows, tables[3], scale, stop - start)
        if need_x:
            part = irfft2(grad_x_spec, size, layout.spatial, layout.channels_last)
            if padding_mode is not None:
                part = pad_adjoint(part, crop, padding_mode, layout.channels_last)
            layout.take(grad_x, group).copy_(part)
    if need_kernel:
        grad_kernel = reduce_to(grad_kernel, kernel.shape)
    if need_lam:
        grad_lam = reduce_to(grad_lam, lam_in.shape)
    return grad_x, grad_kernel, grad_lam


# --- the response cache ----------------------------------------------------------------------------------


class ResponseCache(dict):
    """``{key: (stamp, response)}``: one layer's transfer functions for its last ``max_entries`` sizes and layouts.

    An entry is valid while the parameters' version counters, storages and ``eps`` are those it was
    built from. Responses above ``max_bytes`` are not built here: for large maps the response costs a few
    percent of the FFTs when built group by group in cache, and holding it would cost as much memory as
    the activations.
    """

    def __init__(self, max_entries=4):
        super().__init__()
        self.max_entries = max_entries

    def lookup(self, weight, bias, eps, size, scale, dtype, layout, build, max_bytes):
        """The response for a padded ``size``, from the cache or from ``build()`` (None above ``max_bytes``)."""
        channels = weight.shape[1]
        if channels * spectrum_bytes(1, scale, size, complex_dtype(dtype)) > max_bytes:
            return None
        key = (tuple(size), scale, dtype, weight.device, layout.name)
        stamp = (weight._version, bias._version, weight.data_ptr(), bias.data_ptr(), eps)
        hit = super().get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        response_ = build()
        if len(self) >= self.max_entries:
            self.pop(next(iter(self)))
        self[key] = (stamp, response_)
        return response_
