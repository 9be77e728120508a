"""What the three degradation datasets share: ground truth, the train-phase crop and augmentation,
option checks and the sample dict. Shared by the test and the training pipelines."""
import random

import numpy as np
import torch
from torch.utils import data

from basicsr.data.transforms import augment
from basicsr.utils import img2tensor
from converse_basicsr.utils.checks import is_int, is_real

from .io import GroundTruthImages


def check_number(opt, key, default=None, minimum=0.0, integer=False):
    """``opt[key]`` (or ``default``) as a number ``>= minimum``; errors name the key and the value."""
    value = opt.get(key, default)
    if value is None:
        raise KeyError(f'dataset option {key!r} is required')
    if not (is_int(value) if integer else is_real(value)):
        kind = 'an integer' if integer else 'a number'
        raise ValueError(f'{key} must be {kind}, got {value!r}')
    if value < minimum:
        raise ValueError(f'{key} must be >= {minimum}, got {value!r}')
    return int(value) if integer else float(value)


def check_sigma(opt, default=None):
    """Noise level: ``sigma`` (0–255 units), or for training ``sigma_range: [lo, hi]`` drawn per sample.

    Returns ``(lo, hi)``; a fixed ``sigma`` gives ``lo == hi``."""
    if opt.get('phase') == 'train' and opt.get('sigma_range') is not None:
        value = opt['sigma_range']
        if (not isinstance(value, (list, tuple)) or len(value) != 2 or not all(is_real(v) for v in value)
                or value[0] < 0 or value[1] < value[0]):
            raise ValueError(f'sigma_range must be [lo, hi] with 0 <= lo <= hi (0-255 units), got {value!r}')
        return float(value[0]), float(value[1])
    sigma = check_number(opt, 'sigma', default)
    return sigma, sigma


def add_noise(img, sigma, rng):
    """``img`` (float32) plus ``normal(0, sigma/255)`` drawn in float64 by ``rng``; float32, not clipped."""
    return (img + rng.normal(0, sigma / 255., img.shape)).astype(np.float32)


def draw_noise_level(sigma_range):
    """A training sample's noise: ``(sigma, noise_seed)``, σ uniform in ``sigma_range`` and the seed of the
    ``np.random.RandomState`` its noise comes from, both drawn from numpy's global stream (so seeded runs
    repeat) and returned in the sample, so a sample can be checked against its own degradation."""
    return float(np.random.uniform(*sigma_range)), int(np.random.randint(0, 2**31 - 1))


class DegradationDataset(data.Dataset):
    """Base of the degradation datasets: ground truth read by ``GroundTruthImages`` (keys ``dataroot_gt``,
    ``io_backend``, ``meta_info``, ``color``) and, for ``phase: train``, a random ``gt_size`` crop plus
    ``use_hflip`` / ``use_rot`` augmentation. Subclasses implement ``__getitem__`` with these helpers.

    ``OPTIONS`` maps every key a dataset entry may hold to the kind of value it takes (the vocabulary of
    ``converse_basicsr.training.option_checks``): these keys, the loader keys BasicSR reads, and the subclass's own
    (``OPTIONS = dict(DegradationDataset.OPTIONS, ...)``). Any other key is an error before training starts.
    """

    OPTIONS = {
        'name': 'str',
        'type': 'str',
        'phase': 'str',
        'scale': 'int',
        'optional': 'bool',
        'dataroot_gt': 'str',
        'io_backend': 'dict',
        'meta_info': 'str',
        'color': 'str',
        'gt_size': 'int',
        'use_hflip': 'bool',
        'use_rot': 'bool',
        # read by BasicSR's build_dataloader / train_pipeline
        'batch_size_per_gpu': 'int',
        'num_worker_per_gpu': 'int',
        'dataset_enlarge_ratio': 'number',
        'use_shuffle': 'bool',
        'prefetch_mode': 'str',
        'pin_memory': 'bool',
        'persistent_workers': 'bool',
    }

    def __init__(self, opt):
        super().__init__()
        self.opt = opt
        self.is_train = opt.get('phase') == 'train'
        self.gt_images = GroundTruthImages(opt)
        if self.is_train:
            self.gt_size = check_number(opt, 'gt_size', minimum=1, integer=True)
            self.use_hflip = bool(opt.get('use_hflip', True))
            self.use_rot = bool(opt.get('use_rot', True))

    def __len__(self):
        return len(self.gt_images)

    def read_gt(self, index):
        return self.gt_images.read(index), self.gt_images.paths[index]

    def random_crop(self, img, path):
        """A random ``gt_size`` square of ``img`` (python ``random``, as BasicSR's crops)."""
        h, w = img.shape[:2]
        size = self.gt_size
        if h < size or w < size:
            raise ValueError(f'gt_size {size} is larger than image {path!r} of size {h}x{w}')
        top, left = random.randint(0, h - size), random.randint(0, w - size)
        return np.ascontiguousarray(img[top:top + size, left:left + size])

    def crop_and_augment(self, img, path):
        return np.ascontiguousarray(augment(self.random_crop(img, path), self.use_hflip, self.use_rot))

    @staticmethod
    def sample(lq, gt, gt_path, lq_path=None, **extra):
        """BasicSR's sample dict: CHW float32 tensors (already RGB, so no channel swap); ``extra`` arrays become
        float32 tensors, numbers stay numbers (the loader batches them)."""
        lq, gt = img2tensor([lq, gt], bgr2rgb=False, float32=True)
        out = {'lq': lq, 'gt': gt, 'lq_path': lq_path or gt_path, 'gt_path': gt_path}
        out.update({
            k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) if isinstance(v, np.ndarray) else v
            for k, v in extra.items()
        })
        return out
