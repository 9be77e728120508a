"""Restore images with a published (or custom) checkpoint: the library side of ``converse-restore``.

``Restorer`` loads the model, measures what it does (its output scale and the smallest input it
runs on, with small probe forwards), adapts the image to the model's channels (a colour image
given to the grayscale denoiser is converted to luma, a grayscale image given to an RGB model is
replicated; the result says so), runs it whole or in tiles, refuses a non-finite output, and
returns the output in the input's bit depth (8 or 16 bit; float input gives float and 8-bit
output). Arrays are RGB (or single-channel) HWC; ``read_image``/``write_image`` (from
:mod:`converse_basicsr.data.io`) convert from/to OpenCV's BGR files.
"""
import inspect
import math
import os
import warnings
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from converse_basicsr.data.io import (ARRAY_EXTENSIONS, IMG_EXTENSIONS, TIFF_EXTENSIONS, ImageError, check_image,
                                      check_not_inputs, quantise, read_image, write_image)
from converse_basicsr.data.kernels import load_kernel
from converse_basicsr.hub import zoo
from converse_basicsr.hub.public import load_model_file

__all__ = [
    'Restorer', 'RestoreResult', 'tiled_forward', 'read_image', 'write_image', 'quantise', 'ImageError',
    'available_memory', 'peak_tensor_bytes', 'output_names', 'IMAGE_EXTENSIONS'
]

IMAGE_EXTENSIONS = IMG_EXTENSIONS + ARRAY_EXTENSIONS  # what converse-restore takes from a folder
MEMORY_FRACTION = 0.5  # share of the free memory that tile='auto' plans to use (allocator slack, fragmentation)
MIN_AUTO_TILE = 64
MAX_PROBE_SIZE = 64  # the minimum-input search gives up above this
FFT_OPS = ('_fft_r2c', '_fft_c2r', '_fft_c2c')


@dataclass
class RestoreResult:
    image: np.ndarray  # HW or HWC RGB, uint8/uint16 like the input (uint8 for float input)
    float_image: np.ndarray  # the same, float32 in [0, 1] before quantisation
    input_image: np.ndarray  # the model input as float32 HW(C) (after channel conversion)
    notes: list = field(default_factory=list)  # what was changed, e.g. "converted RGB to grayscale"
    converted_to_gray: bool = False
    tile: int = None  # tile size used (None: whole image)


def available_memory(device):
    """Bytes ``device`` can still give this process: on CUDA the driver's free memory
    (``torch.cuda.mem_get_info``) plus what PyTorch's caching allocator holds but does not use
    (``memory_reserved - memory_allocated``, reusable without asking the driver); on the CPU MemAvailable."""
    device = torch.device(device)
    if device.type == 'cuda':
        free = torch.cuda.mem_get_info(device)[0]
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


class _TensorBytes(TorchDispatchMode):
    """Counts the bytes of the tensors alive while it is active, and their peak.

    Every op's output storages are counted once while some tensor still refers to them (views
    share their base's storage); each FFT op additionally counts a work space as large as its
    output for the duration of the op (cuFFT's work area for non-power-of-two sizes is of that
    order; pocketfft's buffers on the CPU are smaller). Caches that outlive the call (Converse2D's
    frequency responses) stay counted."""

    def __init__(self, start_bytes=0):
        super().__init__()
        self.live, self.current, self.peak = {}, start_bytes, start_bytes

    def _release(self, key):
        nbytes, refs = self.live[key]
        if refs > 1:
            self.live[key] = (nbytes, refs - 1)
        else:
            del self.live[key]
            self.current -= nbytes

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        workspace = 0
        for t in tree_leaves(out):
            if not isinstance(t, torch.Tensor) or t.device.type == 'meta':
                continue
            storage = t.untyped_storage()
            key = (t.device, storage.data_ptr())
            nbytes, refs = self.live.get(key, (storage.nbytes(), 0))
            if refs == 0:
                self.current += nbytes
            self.live[key] = (nbytes, refs + 1)
            weakref.finalize(t, self._release, key)
            if func.__name__.split('.')[0] in FFT_OPS:
                workspace = max(workspace, nbytes)
        self.peak = max(self.peak, self.current + workspace)
        return out


def peak_tensor_bytes(fn, *inputs):
    """Peak bytes of the tensors alive during ``fn(*inputs)`` (inputs included, weights not): see
    :class:`_TensorBytes`. Works on any device, the CPU included; measures what PyTorch allocates,
    not allocator rounding."""
    start = sum(t.untyped_storage().nbytes() for t in inputs if isinstance(t, torch.Tensor))
    mode = _TensorBytes(start)
    with mode:
        result = fn(*inputs)
    del result
    return mode.peak


def _tile_starts(length, tile, tile_pad, min_tile):
    """Tile starts along one axis: every ``tile`` pixels; a last tile whose padded extent would be
    smaller than ``min_tile`` (the model's minimum input) is merged into the one before it."""
    starts = list(range(0, length, tile))
    if len(starts) > 1 and length - starts[-1] + min(tile_pad, starts[-1]) < min_tile:
        starts.pop()
    return starts


def tiled_forward(fn, x, tile, tile_pad, scale, min_tile=1, wrap=False):
    """``fn`` over ``tile``×``tile`` tiles of ``x`` (N, C, H, W), each run with ``tile_pad`` pixels
    of context which are cropped away from its output. At the image border the context is clipped,
    or, with ``wrap``, taken from the opposite side (for models whose whole-image run treats the
    image as periodic, such as Converse-USRNet's FFT data step; a model says so with
    ``periodic_boundary = True``). No tile's padded input is smaller than
    ``min_tile`` (a short last tile is merged into the previous one). Each tile's output must be
    exactly ``scale`` × its input. The result is assembled on the CPU in float32, so device memory
    holds one tile at a time."""
    n, _, h, w = x.shape
    out = None
    rows, cols = _tile_starts(h, tile, tile_pad, min_tile), _tile_starts(w, tile, tile_pad, min_tile)
    for i, y0 in enumerate(rows):
        for j, x0 in enumerate(cols):
            y1 = rows[i + 1] if i + 1 < len(rows) else h
            x1 = cols[j + 1] if j + 1 < len(cols) else w
            if wrap:
                py0, px0, py1, px1 = y0 - tile_pad, x0 - tile_pad, y1 + tile_pad, x1 + tile_pad
                index_y = torch.arange(py0, py1, device=x.device) % h
                index_x = torch.arange(px0, px1, device=x.device) % w
                patch = fn(x.index_select(-2, index_y).index_select(-1, index_x)).float().cpu()
            else:
                py0, px0 = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)
                py1, px1 = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
                patch = fn(x[..., py0:py1, px0:px1]).float().cpu()
            if patch.shape[-2:] != ((py1 - py0) * scale, (px1 - px0) * scale):
                raise RuntimeError(f'the model turned a {px1 - px0}x{py1 - py0} tile into '
                                   f'{patch.shape[-1]}x{patch.shape[-2]}, not {scale}x its size')
            if out is None:
                out = torch.zeros(n, patch.shape[1], h * scale, w * scale)
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                patch[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


def output_names(path, compare=False):
    """The files ``converse-restore`` writes for input ``path``: ``<stem>.tif`` for a TIFF input (16 bits
    kept in TIFF), else ``<stem>.png``; with ``compare``, also ``<stem>_compare.<same extension>``."""
    path = Path(path)
    ext = '.tif' if path.suffix.lower() in TIFF_EXTENSIONS else '.png'
    return [f'{path.stem}{ext}'] + ([f'{path.stem}_compare{ext}'] if compare else [])


class Restorer:
    """Run a restoration model on images.

    Args:
        model: a zoo name (see ``converse_basicsr.hub.zoo.ZOO``), a checkpoint path, or an ``nn.Module``
            (any BasicSR arch: RRDBNet, EDSR, SwinIR, SRVGGNetCompact, ...).
        device: torch device string. ``half``: float16 weights and inputs on CUDA; on the CPU it
            falls back to float32 with a warning (recorded in ``self.messages``).
        tile: ``None`` (whole image), a tile size in input pixels, or ``'auto'``: tile only when
            the estimated peak memory (see ``estimate_bytes``) exceeds half the free memory.
        tile_pad: context pixels around each tile.
        scale: for a kernel-conditioned model (USRNet) its ``sf`` (default 1); for any other model the
            expected output scale, checked against the measured one (``None``: not checked).
        kernel: default blur kernel (array or ``.npy``) for non-blind models. ``kernel_check=False``
            accepts kernels that are not normalised blur kernels (see ``data.kernels.load_kernel``).
        model_dir, arch, arch_kwargs, url: passed to :func:`converse_basicsr.hub.zoo.load_pretrained`.

    On construction the model is probed with small inputs: ``self.min_size`` is the smallest square
    input it runs on (the operator pads, so tiny inputs fail) and ``self.scale`` the measured ratio of
    output to input size, an integer and the same on both axes, cross-checked against the model's
    declared ``upscale``/``scale`` attribute (or zoo entry) and against ``scale``.
    """

    def __init__(self, model, device='cpu', half=False, tile=None, tile_pad=32, scale=None, kernel=None, model_dir=None,
                 arch=None, arch_kwargs=None, url=None, kernel_check=True):
        self.messages = []
        self.device = self._check_device(device)
        if half and self.device.type != 'cuda':
            self._warn(f'half precision is only used on CUDA; running in float32 on {self.device}')
            half = False
        self.half = bool(half)
        self.dtype = torch.float16 if self.half else torch.float32
        self.tile, self.tile_pad = self._check_tile(tile, tile_pad)
        if isinstance(model, torch.nn.Module):
            self.model, self.entry, self.name = model, None, type(model).__name__
        else:
            # hook (issue 22): a file the zoo cannot place goes through spandrel's detection (hub.public)
            self.model, self.entry = load_model_file(model, device='cpu', model_dir=model_dir, arch=arch,
                                                     arch_kwargs=arch_kwargs, url=url)
            # a file is named by its path even when its arch was recognised from the zoo
            self.name = str(model) if str(model) not in zoo.ZOO else self.entry.name
        self.model = self.model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.kernel_check = kernel_check
        channels, self.kernel_size, declared_scale = self._describe(self.model, arch_kwargs)
        self.kernel = None if kernel is None else self._kernel(kernel)  # a bad kernel fails before the probe
        if self.kernel_size:
            self.scale = self._check_sf(scale)
        self.in_channels, self.min_size, measured = self._probe(channels, self.scale if self.kernel_size else 1)
        self.scale = self._check_scale(measured, declared_scale, scale)
        # a model whose whole-image run treats the image as periodic (an FFT data step over the unpadded map)
        # declares it; its tiles then take their border context from the opposite side of the image
        self.periodic = bool(getattr(self.model, 'periodic_boundary', False))
        if isinstance(self.tile, int) and self.tile < self.min_size:
            raise ValueError(f'tile {self.tile} is smaller than the smallest input model {self.name} runs on '
                             f'({self.min_size}x{self.min_size})')
        self._memory_model = None

    # ------------------------------------------------------------------ set-up checks
    def _warn(self, message):
        self.messages.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    @staticmethod
    def _check_device(device):
        try:
            device = torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f'unknown device {device!r} (expected e.g. cpu, cuda, cuda:1): {err}') from None
        if device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'device {str(device)!r} requested but CUDA is not available')
        if device.type not in ('cpu', 'cuda'):
            raise ValueError(f'device {str(device)!r} is not supported (cpu or cuda)')
        return device

    @staticmethod
    def _check_tile(tile, tile_pad):
        if tile is not None and tile != 'auto' and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 8):
            raise ValueError(f"tile must be None, 'auto' or an integer >= 8, got {tile!r}")
        if isinstance(tile_pad, bool) or not isinstance(tile_pad, int) or tile_pad < 0:
            raise ValueError(f'tile_pad must be a non-negative integer, got {tile_pad!r}')
        return tile, tile_pad

    def _describe(self, model, arch_kwargs):
        """(input channel candidates, kernel size or 0, declared output scale or None) of the model.

        Channels: the zoo entry's; else, in this order, the arch kwargs' or the model's ``num_in_ch`` /
        ``in_chans`` (SwinIR), the first convolution's input channels, 3 and 1; :meth:`_probe` keeps the
        first the model runs with (RRDBNet ×2 pixel-unshuffles: its first convolution takes 12)."""
        if self.entry is not None:
            declared = None if self.entry.kernel_size else self.entry.scale
            return [self.entry.in_channels], self.entry.kernel_size, declared
        candidates = [
            source.get(key) if isinstance(source, dict) else getattr(source, key, None)
            for source in (arch_kwargs or {}, model) for key in ('num_in_ch', 'in_chans')
        ]
        first = next((m for m in model.modules() if isinstance(m, torch.nn.Conv2d)), None)
        candidates += [first.in_channels if first is not None else None, 3, 1]
        candidates = list(dict.fromkeys(c for c in candidates if isinstance(c, int) and not isinstance(c, bool)))
        takes_kernel = 'kernel' in inspect.signature(model.forward).parameters
        kernel_size = getattr(model, 'kernel_size', 7) if takes_kernel else 0
        declared = None
        if not takes_kernel:
            for attr in ('upscale', 'scale'):  # BasicSR's archs: MSRResNet/SwinIR/SRVGG 'upscale', RRDBNet 'scale'
                value = getattr(model, attr, None)
                if isinstance(value, int) and not isinstance(value, bool):
                    declared = value
                    break
        return candidates, kernel_size, declared

    @staticmethod
    def _check_sf(scale):
        scale = 1 if scale is None else scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f'scale must be a positive integer, got {scale!r}')
        return scale

    def _forward(self, x, kernel=None, scale=None):
        if self.kernel_size:
            return self.model(x, kernel, self.scale if scale is None else scale)
        return self.model(x)

    @torch.no_grad()
    def _probe_kernel(self):
        """A uniform blur kernel for the probe forwards of a non-blind model (None for the others)."""
        if not self.kernel_size:
            return None
        return torch.full((1, 1, self.kernel_size, self.kernel_size), 1 / self.kernel_size**2, device=self.device,
                          dtype=self.dtype)

    def _probe(self, channel_candidates, sf):
        """(input channels, smallest square input size the model runs on, measured output scale).

        The size is searched by doubling up to ``MAX_PROBE_SIZE`` then bisection (a model that runs
        on a size runs on larger ones), for each channel candidate in turn until one runs; the scale
        is measured on a non-square input: the first power-of-two size that ran (8 at least) by twice that."""
        generator = torch.Generator().manual_seed(0)
        kernel = self._probe_kernel()

        def run(c, h, w):
            x = torch.rand(1, c, h, w, generator=generator).to(self.device, self.dtype)
            return self._forward(x, kernel, sf)

        errors = {}

        def runs(c, size):
            try:
                run(c, size, size)
                return True
            except (RuntimeError, ValueError, TypeError, IndexError, AssertionError) as err:
                errors[c, size] = err
                return False

        for channels in channel_candidates:
            size = 1
            while size <= MAX_PROBE_SIZE and not runs(channels, size):
                size *= 2
            if size <= MAX_PROBE_SIZE:
                break
        else:
            c = channel_candidates[0]
            tried = ', '.join(map(str, channel_candidates))
            raise ValueError(f'model {self.name} does not run on any probe input of {tried} channels up to '
                             f'{MAX_PROBE_SIZE}x{MAX_PROBE_SIZE}; with {c}: {errors[c, size // 2]}')
        low, high = size // 2, size  # low fails (or is 0), high runs
        while high - low > 1:
            mid = (low + high) // 2
            low, high = (low, mid) if runs(channels, mid) else (mid, high)
        h = max(size, 8)
        out = run(channels, h, 2 * h)
        ratio_h, ratio_w = out.shape[-2] / h, out.shape[-1] / (2 * h)
        if ratio_h != ratio_w or ratio_h != int(ratio_h) or ratio_h < 1:
            raise ValueError(f'model {self.name} turns a {2 * h}x{h} input into {out.shape[-1]}x{out.shape[-2]}: '
                             'not an integer scale equal on both axes, which restoration needs')
        return channels, high, int(ratio_h)

    def _check_scale(self, measured, declared, requested):
        if self.kernel_size:  # sf is an argument of the model
            if measured != self.scale:
                raise ValueError(f'model {self.name} was given sf={self.scale} but its output is {measured}x its input')
            return measured
        if declared is not None and declared != measured:
            raise ValueError(f'model {self.name} declares scale {declared} but its output is {measured}x its input '
                             '(measured with a probe input)')
        if requested is not None and requested != measured:
            raise ValueError(f'scale {requested!r} was asked for, but model {self.name} upscales by {measured} '
                             '(measured with a probe input)')
        return measured

    def _kernel(self, kernel):
        if not self.kernel_size:
            raise ImageError(f'model {self.name} is not kernel-conditioned (blind); do not pass a kernel')
        try:
            array = load_kernel(kernel, self.kernel_size, check=self.kernel_check, key='--kernel')
        except (OSError, ValueError) as err:
            raise ImageError(str(err)) from None
        return torch.from_numpy(array.astype(np.float32))[None, None]

    # ------------------------------------------------------------------ memory / tiling
    def _measure_memory(self):
        """(bytes independent of the size, bytes per input pixel) of one forward pass, from the tensors
        it allocates at two probe sizes (see :func:`peak_tensor_bytes`): activations, padded maps,
        spectra, the solve's terms, Converse2D's response cache and an FFT work space."""
        for module in self.model.modules():  # count the responses as built, not as cached by the probe
            if isinstance(getattr(module, '_cache', None), dict):
                module._cache.clear()
        kernel = self._probe_kernel()
        size = max(32, self.min_size)
        peaks = []
        with torch.no_grad():
            for s in (size, 2 * size):
                x = torch.rand(1, self.in_channels, s, s).to(self.device, self.dtype)
                peaks.append(peak_tensor_bytes(lambda t: self._forward(t, kernel), x))
        per_pixel = max(peaks[1] - peaks[0], 0) / (3 * size * size)
        return max(peaks[0] - per_pixel * size * size, 0), per_pixel

    def estimate_bytes(self, h, w):
        """Estimated peak memory of one forward pass on an ``h``×``w`` input: the weights plus a
        size-independent part and a per-pixel part measured from the model's own allocations
        (:meth:`_measure_memory`, once per Restorer)."""
        if self._memory_model is None:
            self._memory_model = self._measure_memory()
        fixed, per_pixel = self._memory_model
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return int(math.ceil(params + fixed + per_pixel * h * w))

    def auto_tile(self, h, w):
        """``None`` when the whole image fits in ``MEMORY_FRACTION`` of the free memory, else the
        largest tile (multiple of 32, at least ``MIN_AUTO_TILE`` and the model's minimum input)
        whose padded size fits."""
        budget = MEMORY_FRACTION * available_memory(self.device)
        if self.estimate_bytes(h, w) <= budget:
            return None
        smallest = max(MIN_AUTO_TILE, self.min_size)
        for tile in range(max(h, w) // 32 * 32, smallest - 1, -32):
            if self.estimate_bytes(min(tile, h) + 2 * self.tile_pad, min(tile, w) + 2 * self.tile_pad) <= budget:
                return tile
        return smallest

    # ------------------------------------------------------------------ restoration
    def _adapt(self, img):
        """float32 HWC with the model's channel count, the notes about it, and whether it was gray-converted."""
        notes, to_gray = [], False
        if img.ndim == 2:
            img = img[..., None]
        if img.shape[2] == 4:
            img = img[..., :3]
            notes.append('alpha channel dropped')
        peak = {np.dtype(np.uint8): 255.0, np.dtype(np.uint16): 65535.0}.get(img.dtype, 1.0)
        img = img.astype(np.float32) / np.float32(peak) if peak != 1.0 else img.astype(np.float32)
        if self.in_channels == 1 and img.shape[2] == 3:
            img = cv2.cvtColor(np.ascontiguousarray(img), cv2.COLOR_RGB2GRAY)[..., None]
            notes.append(f'colour image converted to grayscale for {self.name} (a grayscale model)')
            to_gray = True
        elif self.in_channels == 3 and img.shape[2] == 1:
            img = np.repeat(img, 3, axis=2)
            notes.append(f'grayscale image replicated to 3 channels for {self.name} (an RGB model)')
        elif img.shape[2] != self.in_channels:
            raise ImageError(f'image has {img.shape[2]} channels; model {self.name} takes {self.in_channels}')
        return img, notes, to_gray

    @torch.no_grad()
    def restore(self, img, kernel=None, source='image'):
        """Restore one HW(C) RGB array (uint8, uint16 or float in [0, 1]); returns a :class:`RestoreResult`.
        A non-finite output (e.g. from a broken checkpoint) is an :class:`ImageError`: nothing is returned
        to be written. ``source`` names the image in errors."""
        if self.kernel_size:
            kernel = self.kernel if kernel is None else self._kernel(kernel)
            if kernel is None:
                raise ImageError(f'model {self.name} is non-blind: it needs a {self.kernel_size}x{self.kernel_size} '
                                 'blur kernel (kernel=..., --kernel FILE.npy)')
            kernel = kernel.to(self.device, self.dtype)
        elif kernel is not None:
            self._kernel(kernel)  # raises: blind model
        img = np.asarray(img)
        img = img.astype(np.float32) if img.dtype == np.float64 else img
        src_dtype = img.dtype
        img = check_image(img, source)
        if min(img.shape[:2]) < self.min_size:
            raise ImageError(f'{source}: {img.shape[1]}x{img.shape[0]} is smaller than the smallest input model '
                             f'{self.name} runs on ({self.min_size}x{self.min_size}: its operator pads the image)')
        x_np, notes, to_gray = self._adapt(img)
        x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(2, 0, 1)))[None]
        x = x.to(self.device, self.dtype)
        h, w = x.shape[-2:]
        tile = self.auto_tile(h, w) if self.tile == 'auto' else self.tile
        if tile is not None and tile >= max(h, w):
            tile = None

        def forward(t):
            return self._forward(t, kernel)

        try:
            if tile is None:
                out = forward(x).float().cpu()
            else:
                out = tiled_forward(forward, x, tile, self.tile_pad, self.scale, self.min_size, wrap=self.periodic)
        except torch.cuda.OutOfMemoryError as err:
            raise RuntimeError(f'out of memory on {self.device} for a {w}x{h} image; use a tile size '
                               f'(--tile 256) or --tile auto') from err
        if out.shape[-2:] != (h * self.scale, w * self.scale):
            raise RuntimeError(f'{source}: model {self.name} gave a {out.shape[-1]}x{out.shape[-2]} output for a '
                               f'{w}x{h} input, expected {self.scale}x')
        bad = (~torch.isfinite(out)).sum().item()
        if bad:
            raise ImageError(f'{source}: model {self.name} produced {bad} NaN or infinite output values '
                             '(a broken checkpoint?); nothing written')
        out = out[0].clamp_(0, 1).numpy().transpose(1, 2, 0)
        if out.shape[2] == 1:
            out, x_np = out[..., 0], x_np[..., 0]
        out_dtype = src_dtype if src_dtype in (np.uint8, np.uint16) else np.dtype(np.uint8)
        return RestoreResult(quantise(out, out_dtype), np.ascontiguousarray(out), x_np, notes, to_gray, tile)

    def restore_file(self, path, output_dir, compare=False, kernel=None):
        """Restore ``path`` into ``output_dir`` under :func:`output_names` (``<stem>.png``, or ``.tif`` for
        a TIFF; with ``compare`` also ``<stem>_compare``: input | output). Refuses to overwrite the input;
        files are written atomically and only from a finite result."""
        path, output_dir = Path(path), Path(output_dir)
        out_paths = [output_dir / name for name in output_names(path, compare)]
        check_not_inputs(out_paths, [path])
        result = self.restore(read_image(path), kernel, source=str(path))
        output_dir.mkdir(parents=True, exist_ok=True)
        write_image(out_paths[0], result.image)
        if compare:
            write_image(out_paths[1], side_by_side(result))
        return out_paths[0], result


def side_by_side(result):
    """Model input (resized to the output size by nearest neighbour) | output, in the output's dtype."""
    out = result.image
    inp = quantise(result.input_image, out.dtype)
    if inp.shape[:2] != out.shape[:2]:
        inp = cv2.resize(inp, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([inp, out], axis=1)
