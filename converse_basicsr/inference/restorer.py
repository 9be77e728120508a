"""Restore images with a published (or custom) checkpoint: the library side of ``converse-restore``.

``Restorer`` loads the model, measures what it does (its output scale and the smallest input it
runs on, with small probe forwards), adapts the image to the model's channels (a colour image
given to the grayscale denoiser is converted to luma, a grayscale image given to an RGB model is
replicated; the result says so), runs it whole or in tiles, refuses a non-finite output, and
returns the output in the input's bit depth (8 or 16 bit; float input gives float and 8-bit
output). Arrays are RGB (or single-channel) HWC; ``read_image``/``write_image`` (from
:mod:`converse_basicsr.data.io`) convert from/to OpenCV's BGR files.
"""
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
import torch

from converse_basicsr.data.io import (ARRAY_EXTENSIONS, IMG_EXTENSIONS, TIFF_EXTENSIONS, ImageError, check_image,
                                      check_not_inputs, quantise, read_image, write_image)
from converse_basicsr.data.kernels import load_kernel
from converse_basicsr.hub.resolver import resolve
from converse_basicsr.hub.zoo import ZOO
from converse_basicsr.inference.description import check_device, declared, describe
from converse_basicsr.inference.memory import MemoryPlanner, available_memory, peak_tensor_bytes
from converse_basicsr.inference.run import choose_tile, run
from converse_basicsr.inference.tiling import check_tile, tiled_forward

__all__ = [
    'Restorer', 'RestoreResult', 'tiled_forward', 'read_image', 'write_image', 'quantise', 'ImageError',
    'available_memory', 'peak_tensor_bytes', 'output_names', 'IMAGE_EXTENSIONS'
]

IMAGE_EXTENSIONS = IMG_EXTENSIONS + ARRAY_EXTENSIONS  # what converse-restore takes from a folder


@dataclass
class RestoreResult:
    image: np.ndarray  # HW or HWC RGB, uint8/uint16 like the input (uint8 for float input)
    float_image: np.ndarray  # the same, float32 in [0, 1] before quantisation
    input_image: np.ndarray  # the model input as float32 HW(C) (after channel conversion)
    notes: list = field(default_factory=list)  # what was changed, e.g. "converted RGB to grayscale"
    converted_to_gray: bool = False
    tile: int = None  # tile size used (None: whole image)


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
        model_dir, arch, arch_kwargs, url: passed to :func:`converse_basicsr.hub.resolver.resolve` (the file's
            own description wins where they are silent; a value contradicting it is an error).

    On construction the model is probed with small inputs: ``self.min_size`` is the smallest square
    input it runs on (the operator pads, so tiny inputs fail) and ``self.scale`` the measured ratio of
    output to input size, an integer and the same on both axes, cross-checked against the model's
    declared ``upscale``/``scale`` attribute (or zoo entry) and against ``scale``.
    """

    def __init__(self, model, device='cpu', half=False, tile=None, tile_pad=32, scale=None, kernel=None, model_dir=None,
                 arch=None, arch_kwargs=None, url=None, kernel_check=True):
        self.messages = []
        self.device = check_device(device)
        if half and self.device.type != 'cuda':
            self._warn(f'half precision is only used on CUDA; running in float32 on {self.device}')
            half = False
        self.half = bool(half)
        self.dtype = torch.float16 if self.half else torch.float32
        self.tile, self.tile_pad = check_tile(tile, tile_pad)
        if isinstance(model, torch.nn.Module):
            self.model, self.entry, self.name = model, None, type(model).__name__
        else:  # the one front door: zoo name, checkpoint (described, detected), arch, callable
            resolved = resolve(model, arch=arch, arch_kwargs=arch_kwargs, model_dir=model_dir, url=url)
            self.model, self.entry = resolved.module, resolved.info['entry']
            arch_kwargs = resolved.info['kwargs']
            # a file is named by its path even when its arch was recognised from the zoo
            self.name = resolved.label if resolved.kind == 'zoo' and str(model) in ZOO else str(model)
        self.model = self.model.to(self.device).eval()
        if self.half:
            self.model.half()
        self.kernel_check = kernel_check
        self.kernel_size = declared(self.model, self.entry, arch_kwargs)[1]
        self.kernel = None if kernel is None else self._kernel(kernel)  # a bad kernel fails before the probe
        self.info = describe(self.model, self.name, self.device, self.dtype, self.entry, arch_kwargs, scale=scale)
        self.scale, self.in_channels, self.min_size = self.info.scale, self.info.in_channels, self.info.min_size
        self.periodic = self.info.periodic
        if isinstance(self.tile, int) and self.tile < self.min_size:
            raise ValueError(f'tile {self.tile} is smaller than the smallest input model {self.name} runs on '
                             f'({self.min_size}x{self.min_size})')
        self.planner = MemoryPlanner(self.info, self.tile_pad)

    def _warn(self, message):
        self.messages.append(message)
        warnings.warn(message, RuntimeWarning, stacklevel=3)

    def _kernel(self, kernel):
        if not self.kernel_size:
            raise ImageError(f'model {self.name} is not kernel-conditioned (blind); do not pass a kernel')
        try:
            array = load_kernel(kernel, self.kernel_size, check=self.kernel_check, key='--kernel')
        except (OSError, ValueError) as err:
            raise ImageError(str(err)) from None
        return torch.from_numpy(array.astype(np.float32))[None, None]

    def estimate_bytes(self, h, w):
        """Estimated peak memory of one forward pass on an ``h``×``w`` input (see :class:`MemoryPlanner`)."""
        return self.planner.estimate_bytes(h, w)

    def auto_tile(self, h, w):
        """The tile ``tile='auto'`` picks for an ``h``×``w`` input (see :meth:`MemoryPlanner.auto_tile`)."""
        return self.planner.auto_tile(h, w)

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

    def _run_kernel(self, kernel):
        """The kernel for one image: ``kernel`` or the default one; a blind model refuses any."""
        if not self.kernel_size:
            if kernel is not None:
                self._kernel(kernel)  # raises: blind model
            return None
        kernel = self.kernel if kernel is None else self._kernel(kernel)
        if kernel is None:
            raise ImageError(f'model {self.name} is non-blind: it needs a {self.kernel_size}x{self.kernel_size} '
                             'blur kernel (kernel=..., --kernel FILE.npy)')
        return kernel.to(self.device, self.dtype)

    def restore(self, img, kernel=None, source='image'):
        """Restore one HW(C) RGB array (uint8, uint16 or float in [0, 1]); returns a :class:`RestoreResult`.
        A non-finite output (e.g. from a broken checkpoint) is an :class:`ImageError`: nothing is returned
        to be written. ``source`` names the image in errors."""
        kernel = self._run_kernel(kernel)
        img = np.asarray(img)
        img = img.astype(np.float32) if img.dtype == np.float64 else img
        src_dtype = img.dtype
        img = check_image(img, source)
        if min(img.shape[:2]) < self.min_size:
            raise ImageError(f'{source}: {img.shape[1]}x{img.shape[0]} is smaller than the smallest input model '
                             f'{self.name} runs on ({self.min_size}x{self.min_size}: its operator pads the image)')
        x_np, notes, to_gray = self._adapt(img)
        x = torch.from_numpy(np.ascontiguousarray(x_np.transpose(2, 0, 1)))[None].to(self.device, self.dtype)
        tile = choose_tile(self.tile, *x.shape[-2:], self.planner)
        out = run(self.info, x, kernel, tile, self.tile_pad, source=source)
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
