"""Blur kernels: loading (and checking) ``.npy`` kernels, random training kernels, and the protocol's circular blur.

Shared by the test and the training pipelines (``BlurKernelDataset``). Gaussian kernels come from
``basicsr.data.degradations``; motion kernels are drawn here as short, gently curved trajectories.
"""
import math
import os
from os import path as osp

import numpy as np
from scipy import ndimage

from basicsr.data.degradations import random_bivariate_Gaussian
from converse_basicsr.utils.checks import is_int, is_real

KERNEL_TYPES = ('isotropic', 'anisotropic', 'motion')

NPY_MAGIC = b'\x93NUMPY'
KERNEL_SUM_TOLERANCE = 1e-3  # |sum - 1| allowed; negative taps down to -KERNEL_SUM_TOLERANCE × the largest tap


def load_kernel(kernel, size=None, check=True, key='kernel_path'):
    """The one kernel loader: a 2-D blur kernel from a ``.npy`` file or an array, as saved (dtype untouched).

    Errors name ``key`` (the option or flag, e.g. ``kernel_path`` or ``--kernel``) and the file. ``size``:
    the required ``size``×``size`` shape. ``check`` (``--no-kernel-check`` turns it off): the kernel must
    be a blur kernel, i.e. finite, non-negative (taps down to −1e-3 × the largest are rounding) and
    summing to 1 within 1e-3; an all-zero, negative or unnormalised kernel gives a garbage restoration.
    """
    if isinstance(kernel, (str, os.PathLike)):
        path = str(kernel)
        source = f'{key}: kernel file {path!r}'
        if not osp.isfile(path):
            raise FileNotFoundError(f'{source} does not exist')
        with open(path, 'rb') as f:
            magic = f.read(len(NPY_MAGIC))
        if magic != NPY_MAGIC:
            raise ValueError(f'{source} is not a .npy file (it starts with {magic!r}); save the kernel with '
                             'numpy.save, e.g. np.save("kernel.npy", k)')
        try:
            kernel = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as error:
            raise ValueError(f'{source}: cannot load it as .npy: {error}') from error
    else:
        source = f'{key}: kernel'
        kernel = np.asarray(kernel)
    if kernel.ndim != 2 or 0 in kernel.shape:
        raise ValueError(f'{source} must hold a non-empty 2-D array, got shape {kernel.shape}')
    if size is not None and kernel.shape != (size, size):
        raise ValueError(f'{source} must be {size}x{size} for this model, got shape {kernel.shape}')
    if not np.issubdtype(kernel.dtype, np.number) or np.iscomplexobj(kernel) or not np.all(np.isfinite(kernel)):
        raise ValueError(f'{source} must hold finite real numbers (dtype {kernel.dtype})')
    if check:
        total, low, high = float(kernel.sum()), float(kernel.min()), float(kernel.max())
        if high <= 0 or low < -KERNEL_SUM_TOLERANCE * high or abs(total - 1) > KERNEL_SUM_TOLERANCE:
            raise ValueError(f'{source} is not a normalised blur kernel: sum {total:.6g} (must be 1 within '
                             f'{KERNEL_SUM_TOLERANCE:g}), values in [{low:.4g}, {high:.4g}] (must be >= 0); '
                             'normalise it (k / k.sum()) or pass --no-kernel-check')
    return kernel


def kernel_files(kernel_path):
    """``kernel_path`` (one ``.npy`` file, a folder of them, or a list of files/folders) → list of files."""
    if kernel_path is None:
        raise KeyError("kernel_path is required")
    items = list(kernel_path) if isinstance(kernel_path, (list, tuple)) else [kernel_path]
    if not items:
        raise ValueError('kernel_path is an empty list')
    files = []
    for item in items:
        item = str(item)
        if osp.isdir(item):
            found = sorted(osp.join(item, name) for name in os.listdir(item) if name.endswith('.npy'))
            if not found:
                raise ValueError(f'kernel_path folder {item!r} holds no .npy kernels (empty kernel bank)')
            files.extend(found)
        else:
            files.append(item)
    return files


def load_kernels(kernel_path):
    """``(names, kernels)`` for ``kernel_path``; names are the file stems (``kernel_1``)."""
    files = kernel_files(kernel_path)
    return [osp.splitext(osp.basename(f))[0] for f in files], [load_kernel(f) for f in files]


def circular_blur(img, kernel):
    """The deblurring protocol's blur: ``scipy.ndimage.convolve`` with a circular boundary, per channel.

    ``img`` is HWC; a uint8 image gives a uint8 result (scipy casts back to the input dtype).
    """
    if img.shape[0] < kernel.shape[0] or img.shape[1] < kernel.shape[1]:
        raise ValueError(f'image of size {img.shape[:2]} is smaller than the kernel {kernel.shape}')
    return ndimage.convolve(img, kernel[..., None], mode='wrap')


def random_motion_kernel(kernel_size, length_range, curvature=0.3, rng=np.random):
    """A motion-blur kernel: a random trajectory of random length and direction, drawn anti-aliased.

    The path starts in a random direction and, at each of its quarter-pixel steps, turns by
    ``N(0, curvature · step length)`` radians; it is centred on the kernel, rasterised with bilinear
    weights and normalised to sum 1.
    """
    length = rng.uniform(*length_range)
    steps = max(int(math.ceil(length * 4)), 2)
    heading = rng.uniform(0, 2 * math.pi) + np.cumsum(rng.normal(0, curvature * length / steps, steps))
    points = np.concatenate([[[0., 0.]], np.cumsum(np.stack([np.cos(heading), np.sin(heading)], 1), 0)])
    points *= length / steps
    points += (kernel_size - 1) / 2 - (points.min(0) + points.max(0)) / 2
    points = np.clip(points, 0, kernel_size - 1)
    kernel = np.zeros((kernel_size, kernel_size))
    base = np.minimum(np.floor(points).astype(int), kernel_size - 2)
    frac = points - base
    for (x, y), (fx, fy) in zip(base, frac):
        kernel[y, x] += (1 - fx) * (1 - fy)
        kernel[y, x + 1] += fx * (1 - fy)
        kernel[y + 1, x] += (1 - fx) * fy
        kernel[y + 1, x + 1] += fx * fy
    return kernel / kernel.sum()


def _check_range(value, key, low=0.0, allow_equal=True):
    if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_real(v) for v in value) or value[0] < low
            or value[1] < value[0] or (not allow_equal and value[0] == value[1])):
        rule = '<' if not allow_equal else '<='
        raise ValueError(f'{key} must be [lo, hi] with {low} <= lo {rule} hi, got {value!r}')
    return float(value[0]), float(value[1])


class RandomKernelSampler:
    """Draws training kernels: from a kernel bank with probability ``bank_prob``, otherwise a random
    isotropic / anisotropic Gaussian or motion kernel mixed by ``kernel_probs``. Uses ``np.random``
    (seeded per dataloader worker by BasicSR)."""

    def __init__(self, kernel_size=7, kernel_types=KERNEL_TYPES, kernel_probs=None, blur_sigma_range=(0.2, 3.0),
                 motion_length_range=None, bank=(), bank_prob=0.0):
        if not is_int(kernel_size) or kernel_size < 3 or kernel_size % 2 == 0:
            raise ValueError(f'kernel_size must be an odd integer >= 3, got {kernel_size!r}')
        self.kernel_size = int(kernel_size)
        kernel_types = list(kernel_types)
        unknown = [t for t in kernel_types if t not in KERNEL_TYPES]
        if not kernel_types or unknown:
            raise ValueError(f'kernel_types must be a non-empty list from {KERNEL_TYPES}, got {kernel_types!r}')
        if kernel_probs is None:
            kernel_probs = [1.0 / len(kernel_types)] * len(kernel_types)
        if len(kernel_probs) != len(kernel_types) or any(p < 0 for p in kernel_probs) or sum(kernel_probs) <= 0:
            raise ValueError(f'kernel_probs must be {len(kernel_types)} non-negative numbers (one per kernel_types '
                             f'entry) with a positive sum, got {kernel_probs!r}')
        self.kernel_types = kernel_types
        self.kernel_probs = np.asarray(kernel_probs, dtype=np.float64) / sum(kernel_probs)
        self.blur_sigma_range = _check_range(blur_sigma_range, 'blur_sigma_range', allow_equal=False)
        if self.blur_sigma_range[0] <= 0:
            raise ValueError(f'blur_sigma_range must be positive, got {blur_sigma_range!r}')
        if motion_length_range is None:
            motion_length_range = (1.0, float(self.kernel_size))
        self.motion_length_range = _check_range(motion_length_range, 'motion_length_range')
        if not 0 <= bank_prob <= 1:
            raise ValueError(f'kernel_bank_prob must be in [0, 1], got {bank_prob!r}')
        if bank_prob > 0 and not bank:
            raise ValueError('kernel_bank_prob > 0 needs a non-empty kernel bank (kernel_path)')
        for kernel in bank:
            if kernel.shape != (self.kernel_size, self.kernel_size):
                raise ValueError(f'kernel bank kernels must be {self.kernel_size}x{self.kernel_size} (kernel_size) '
                                 f'so that a batch stacks, got {kernel.shape}')
        self.bank, self.bank_prob = list(bank), float(bank_prob)

    def __call__(self):
        if self.bank and np.random.uniform() < self.bank_prob:
            return self.bank[np.random.randint(len(self.bank))]
        kind = self.kernel_types[np.random.choice(len(self.kernel_types), p=self.kernel_probs)]
        if kind == 'motion':
            return random_motion_kernel(self.kernel_size, self.motion_length_range)
        return random_bivariate_Gaussian(self.kernel_size, self.blur_sigma_range, self.blur_sigma_range,
                                         (-math.pi, math.pi), isotropic=kind == 'isotropic')
