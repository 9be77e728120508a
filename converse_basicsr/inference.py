"""Restore images with a published (or custom) checkpoint: the library side of ``converse-restore``.

``Restorer`` loads the model, adapts the image to the model's channels (a colour image given to
the grayscale denoiser is converted to luma, a grayscale image given to an RGB model is
replicated; the result says so), runs it whole or in tiles, and returns the output in the
input's bit depth (8 or 16 bit; float input gives float and 8-bit output). Arrays are RGB (or
single-channel) HWC; ``read_image``/``write_image`` convert from/to OpenCV's BGR files.
"""
import inspect
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from . import zoo

IMAGE_EXTENSIONS = ('.png', '.jpg', '.jpeg', '.bmp', '.tif', '.tiff', '.webp', '.npy')
# Peak memory of one forward pass ≈ ACTIVATION_FACTOR × (widest feature map in bytes, i.e.
# widest channel count × output pixels × element size): the block input, its LayerNorm and 2C
# hidden maps, the padded map, its complex spectrum and the solve's intermediates, plus FFT
# workspaces. Measured as peak-RSS growth of one float32 CPU forward pass: Converse-DnCNN 30
# (512²) to 41 (256²), ConverseNet / Converse-USRNet 22 (256²), Converse-SRResNet 13-15.
ACTIVATION_FACTOR = 40
MEMORY_FRACTION = 0.5  # share of the free memory that tile='auto' plans to use
MIN_AUTO_TILE = 64


class ImageError(ValueError):
    """An input image (or kernel) that cannot be read or used."""


@dataclass
class RestoreResult:
    image: np.ndarray  # HW or HWC RGB, uint8/uint16 like the input (uint8 for float input)
    float_image: np.ndarray  # the same, float32 in [0, 1] before quantisation
    input_image: np.ndarray  # the model input as float32 HW(C) (after channel conversion)
    notes: list = field(default_factory=list)  # what was changed, e.g. "converted RGB to grayscale"
    converted_to_gray: bool = False
    tile: int = None  # tile size used (None: whole image)


def read_image(path):
    """An image file as an RGB (or single-channel) HW(C) array: uint8/uint16 from image files
    (16-bit PNG/TIFF keep 16 bits), float32 from ``.npy`` (HW or HWC, RGB, nominally in [0, 1])."""
    path = Path(path)
    if not path.is_file():
        raise ImageError(f'input image {path} does not exist')
    if path.suffix.lower() == '.npy':
        try:
            img = np.load(path, allow_pickle=False)
        except Exception as err:
            raise ImageError(f'cannot read {path} as a numpy array: {err}') from err
        if img.dtype.kind == 'f':
            img = img.astype(np.float32)
        return _check_layout(img, path)
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise ImageError(f'cannot read image {path} (not an image file OpenCV can decode)')
    img = _check_layout(img, path)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_BGR2RGB)
    elif img.ndim == 3 and img.shape[2] == 4:
        img = cv2.cvtColor(img, cv2.COLOR_BGRA2RGBA)
    return img


def _check_layout(img, source):
    if img.dtype not in (np.uint8, np.uint16, np.float32):
        raise ImageError(f'{source}: unsupported dtype {img.dtype} (expected uint8, uint16 or float)')
    if not (img.ndim == 2 or (img.ndim == 3 and img.shape[2] in (1, 3, 4))):
        raise ImageError(f'{source}: expected an HW or HWC image with 1, 3 or 4 channels, got shape {img.shape}')
    if img.shape[0] < 1 or img.shape[1] < 1:
        raise ImageError(f'{source}: empty image of shape {img.shape}')
    if img.dtype == np.float32 and not np.isfinite(img).all():
        raise ImageError(f'{source}: contains NaN or infinite values')
    return img


def write_image(path, img):
    """Write an RGB (or single-channel) uint8/uint16 array; float input is written as 8 bit."""
    if img.dtype.kind == 'f':
        img = quantise(img, np.uint8)
    if img.ndim == 3 and img.shape[2] == 3:
        img = cv2.cvtColor(img, cv2.COLOR_RGB2BGR)
    path = Path(path)
    if not cv2.imwrite(str(path), img):
        raise ImageError(f'cannot write {path}')
    return path


def quantise(img, dtype):
    peak = np.iinfo(dtype).max
    return (np.clip(img, 0, 1) * peak).round().astype(dtype)


def load_kernel(kernel, size):
    """A blur kernel (array or ``.npy`` path) as float32 ``size``×``size``."""
    source = kernel
    if isinstance(kernel, (str, os.PathLike)):
        try:
            kernel = np.load(kernel, allow_pickle=False)
        except Exception as err:
            raise ImageError(f'cannot read kernel file {source}: {err}') from err
        source = f'kernel file {source}'
    else:
        source = 'kernel'
    kernel = np.asarray(kernel)
    if kernel.dtype.kind not in 'fiu' or kernel.shape != (size, size):
        raise ImageError(f'{source} must be a {size}x{size} numeric array for this model, '
                         f'got shape {kernel.shape} dtype {kernel.dtype}')
    kernel = kernel.astype(np.float32)
    if not np.isfinite(kernel).all():
        raise ImageError(f'{source} contains NaN or infinite values')
    return kernel


def available_memory(device):
    """Free bytes on ``device``: ``torch.cuda.mem_get_info`` for CUDA, MemAvailable for CPU."""
    device = torch.device(device)
    if device.type == 'cuda':
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open('/proc/meminfo') as f:
            for line in f:
                if line.startswith('MemAvailable:'):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf('SC_AVPHYS_PAGES') * os.sysconf('SC_PAGE_SIZE')


def tiled_forward(fn, x, tile, tile_pad, scale):
    """``fn`` over ``tile``×``tile`` tiles of ``x`` (N, C, H, W), each run with ``tile_pad`` pixels
    of context (clipped at the image border) which are cropped away from its output. The result
    is assembled on the CPU in float32, so device memory holds one tile at a time."""
    n, _, h, w = x.shape
    out = None
    for y0 in range(0, h, tile):
        for x0 in range(0, w, tile):
            y1, x1 = min(y0 + tile, h), min(x0 + tile, w)
            py0, px0 = max(y0 - tile_pad, 0), max(x0 - tile_pad, 0)
            py1, px1 = min(y1 + tile_pad, h), min(x1 + tile_pad, w)
            patch = fn(x[..., py0:py1, px0:px1]).float().cpu()
            if out is None:
                out = torch.zeros(n, patch.shape[1], h * scale, w * scale)
            oy, ox = (y0 - py0) * scale, (x0 - px0) * scale
            out[..., y0 * scale:y1 * scale, x0 * scale:x1 * scale] = \
                patch[..., oy:oy + (y1 - y0) * scale, ox:ox + (x1 - x0) * scale]
    return out


class Restorer:
    """Run a restoration model on images.

    Args:
        model: a zoo name (see ``converse_basicsr.zoo.ZOO``), a checkpoint path, or an ``nn.Module``.
        device: torch device string. ``half``: float16 weights and inputs on CUDA; on the CPU it
            falls back to float32 with a warning (recorded in ``self.messages``).
        tile: ``None`` (whole image), a tile size in input pixels, or ``'auto'``: tile only when
            the estimated peak memory (see ``estimate_bytes``) exceeds half the free memory.
        tile_pad: context pixels around each tile. ``scale``: the ``sf`` of a kernel-conditioned
            model (USRNet); for a fixed-scale SR model it must be ``None`` or that scale.
        kernel: default blur kernel (array or ``.npy``) for non-blind models.
        model_dir, arch, arch_kwargs, url: passed to :func:`converse_basicsr.zoo.load_pretrained`.
    """

    def __init__(self, model, device='cpu', half=False, tile=None, tile_pad=32, scale=None, kernel=None,
                 model_dir=None, arch=None, arch_kwargs=None, url=None):
        self.messages = []
        self.device = torch.device(device)
        if self.device.type == 'cuda' and not torch.cuda.is_available():
            raise ValueError(f'device {device!r} requested but CUDA is not available')
        if half and self.device.type != 'cuda':
            self._warn(f'half precision is only used on CUDA; running in float32 on {self.device}')
            half = False
        self.half = bool(half)
        self.tile, self.tile_pad = self._check_tile(tile, tile_pad)
        if isinstance(model, torch.nn.Module):
            self.model, self.entry, self.name = model, None, type(model).__name__
        else:
            self.model, self.entry = zoo.load_pretrained(model, device='cpu', model_dir=model_dir, arch=arch,
                                                         arch_kwargs=arch_kwargs, url=url, return_entry=True)
            self.name = self.entry.name if self.entry else str(model)
        self.model = self.model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.in_channels, self.kernel_size, model_scale = self._describe(self.model)
        self.scale = self._check_scale(scale, model_scale)
        self._widest = max(m.out_channels for m in self.model.modules() if isinstance(m, torch.nn.Conv2d))
        self.kernel = None if kernel is None else self._kernel(kernel)

    # ------------------------------------------------------------------ set-up checks
    def _warn(self, message):
        self.messages.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    @staticmethod
    def _check_tile(tile, tile_pad):
        if tile is not None and tile != 'auto' and (isinstance(tile, bool) or not isinstance(tile, int) or tile < 8):
            raise ValueError(f"tile must be None, 'auto' or an integer >= 8, got {tile!r}")
        if isinstance(tile_pad, bool) or not isinstance(tile_pad, int) or tile_pad < 0:
            raise ValueError(f'tile_pad must be a non-negative integer, got {tile_pad!r}')
        return tile, tile_pad

    def _describe(self, model):
        """(input channels, kernel size or 0, fixed output scale or None) of the model."""
        if self.entry is not None:
            return self.entry.in_channels, self.entry.kernel_size, (None if self.entry.kernel_size else
                                                                     self.entry.scale)
        in_channels = getattr(model, 'num_in_ch', None)
        if in_channels is None:
            first = next(m for m in model.modules() if isinstance(m, torch.nn.Conv2d))
            in_channels = first.in_channels
        takes_kernel = 'kernel' in inspect.signature(model.forward).parameters
        kernel_size = getattr(model, 'kernel_size', 7) if takes_kernel else 0
        return in_channels, kernel_size, (None if takes_kernel else getattr(model, 'upscale', 1))

    def _check_scale(self, scale, model_scale):
        if model_scale is not None:  # fixed by the architecture
            if scale not in (None, model_scale):
                raise ValueError(f'scale {scale!r} is not available: model {self.name} upscales by {model_scale}')
            return model_scale
        scale = 1 if scale is None else scale
        if isinstance(scale, bool) or not isinstance(scale, int) or scale < 1:
            raise ValueError(f'scale must be a positive integer, got {scale!r}')
        return scale

    def _kernel(self, kernel):
        if not self.kernel_size:
            raise ImageError(f'model {self.name} is not kernel-conditioned (blind); do not pass a kernel')
        return torch.from_numpy(load_kernel(kernel, self.kernel_size))[None, None]

    # ------------------------------------------------------------------ memory / tiling
    def estimate_bytes(self, h, w):
        """Estimated peak memory of one forward pass on an ``h``×``w`` input:
        ``ACTIVATION_FACTOR × widest channel count × h·w·scale² × bytes per element`` plus the weights."""
        widest = self._widest
        elem = 2 if self.half else 4
        params = sum(p.numel() * p.element_size() for p in self.model.parameters())
        return ACTIVATION_FACTOR * widest * h * w * self.scale ** 2 * elem + params

    def auto_tile(self, h, w):
        """``None`` when the whole image fits in ``MEMORY_FRACTION`` of the free memory, else the
        largest tile (multiple of 32, at least ``MIN_AUTO_TILE``) whose padded size fits."""
        budget = MEMORY_FRACTION * available_memory(self.device)
        if self.estimate_bytes(h, w) <= budget:
            return None
        for tile in range(max(h, w) // 32 * 32, MIN_AUTO_TILE - 1, -32):
            if self.estimate_bytes(min(tile, h) + 2 * self.tile_pad, min(tile, w) + 2 * self.tile_pad) <= budget:
                return tile
        return MIN_AUTO_TILE

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
    def restore(self, img, kernel=None):
        """Restore one HW(C) RGB array (uint8, uint16 or float in [0, 1]); returns a :class:`RestoreResult`."""
        if self.kernel_size:
            kernel = self.kernel if kernel is None else self._kernel(kernel)
            if kernel is None:
                raise ImageError(f'model {self.name} is non-blind: it needs a {self.kernel_size}x{self.kernel_size} '
                                 'blur kernel (kernel=..., --kernel FILE.npy)')
            kernel = kernel.to(self.device, torch.float16 if self.half else torch.float32)
        elif kernel is not None:
            self._kernel(kernel)  # raises: blind model
        img = np.asarray(img)
        img = img.astype(np.float32) if img.dtype == np.float64 else img
        src_dtype = img.dtype
        img = _check_layout(img, 'image')
        x_np, notes, to_gray = self._adapt(img)
        x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(2, 0, 1)))[None]
        x = x.to(self.device, torch.float16 if self.half else torch.float32)
        h, w = x.shape[-2:]
        tile = self.auto_tile(h, w) if self.tile == 'auto' else self.tile
        if tile is not None and tile >= max(h, w):
            tile = None

        def forward(t):
            return self.model(t, kernel, self.scale) if self.kernel_size else self.model(t)

        try:
            out = forward(x).float().cpu() if tile is None else tiled_forward(forward, x, tile, self.tile_pad,
                                                                               self.scale)
        except torch.cuda.OutOfMemoryError as err:
            raise RuntimeError(f'out of memory on {self.device} for a {w}x{h} image; use a tile size '
                               f'(--tile 256) or --tile auto') from err
        out = out[0].clamp_(0, 1).numpy().transpose(1, 2, 0)
        if out.shape[2] == 1:
            out, x_np = out[..., 0], x_np[..., 0]
        out_dtype = src_dtype if src_dtype in (np.uint8, np.uint16) else np.dtype(np.uint8)
        return RestoreResult(quantise(out, out_dtype), np.ascontiguousarray(out), x_np, notes, to_gray, tile)

    def restore_file(self, path, output_dir, compare=False, kernel=None):
        """Restore ``path`` into ``output_dir/<stem>.png`` (and ``<stem>_compare.png``: input | output)."""
        path, output_dir = Path(path), Path(output_dir)
        out_path = output_dir / f'{path.stem}.png'
        if out_path.resolve() == path.resolve():
            raise ImageError(f'output {out_path} would overwrite the input; choose another output directory')
        result = self.restore(read_image(path), kernel)
        output_dir.mkdir(parents=True, exist_ok=True)
        write_image(out_path, result.image)
        if compare:
            write_image(output_dir / f'{path.stem}_compare.png', side_by_side(result))
        return out_path, result


def side_by_side(result):
    """Model input (resized to the output size by nearest neighbour) | output, in the output's dtype."""
    out = result.image
    inp = quantise(result.input_image, out.dtype)
    if inp.shape[:2] != out.shape[:2]:
        inp = cv2.resize(inp, (out.shape[1], out.shape[0]), interpolation=cv2.INTER_NEAREST)
    return np.concatenate([inp, out], axis=1)
