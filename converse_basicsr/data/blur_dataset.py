from os import path as osp

import numpy as np

from basicsr.data.transforms import mod_crop
from basicsr.utils.registry import DATASET_REGISTRY

from .base import DegradationDataset, add_noise, check_number, check_sigma, draw_noise_level
from .io import uint8_to_float
from .kernels import KERNEL_TYPES, RandomKernelSampler, circular_blur, load_kernels

RANDOM_KERNEL_KEYS = ('kernel_types', 'kernel_probs', 'blur_sigma_range', 'motion_length_range')


@DATASET_REGISTRY.register()
class BlurKernelDataset(DegradationDataset):
    """Circular blur by a kernel plus Gaussian noise (the deblurring protocol; ConverseNet, Converse-USRNet).

    Keys (besides ``name``/``type``):
        dataroot_gt, io_backend, meta_info, color: as for ``GaussianNoiseDataset``.
        kernel_path (str | list[str]): a ``.npy`` file holding a 2-D kernel, a folder of them, or a list
            of files/folders. Val/test: required; one entry per kernel is the usual config; with several
            kernels every (kernel, image) pair is a sample, kernel-major, and ``lq_path`` gets the
            kernel name appended (``101085_kernel_2.png``) so saved results do not collide.
            Train: optional kernel bank, used with probability ``kernel_bank_prob``.
        sigma (float): noise level in 0–255 units (default 2.55, i.e. 1 %).
        noise_seed (int): val/test only; each sample's noise comes from a fresh
            ``np.random.RandomState(noise_seed)`` (default 0, the protocol).
        mod_crop (int): val/test only; GT cropped to a multiple of it (default 8, the protocol).
        gt_size (int): train only; side of the random square GT patch.
        use_hflip, use_rot (bool): train only; BasicSR's ``augment`` (default True).
        sigma_range ([lo, hi]): train only; noise level drawn uniformly per sample (else ``sigma``).
        kernel_size (int): train only; side of the random kernels (odd, default 7).
        kernel_types (list): train only; any of ``isotropic``, ``anisotropic`` (Gaussian, from
            ``basicsr.data.degradations``), ``motion`` (default all three).
        kernel_probs (list): train only; mixing probabilities, one per ``kernel_types`` entry (default equal).
        blur_sigma_range ([lo, hi]): train only; Gaussian widths in pixels (default [0.2, 3.0]).
        motion_length_range ([lo, hi]): train only; motion trajectory length in pixels (default [1, kernel_size]).
        kernel_bank_prob (float): train only; probability of drawing from the ``kernel_path`` bank instead of a
            random kernel (default 1 when ``kernel_path`` is given and no random-kernel key is, else 0).

    The uint8 GT is blurred with ``scipy.ndimage.convolve(img, k[..., None], mode='wrap')`` (uint8 result),
    scaled to float32, and noise drawn in float64 is added (float32, not clipped). Samples: ``lq``, ``gt``,
    ``lq_path``, ``gt_path``, ``kernel`` (``(1, k, k)`` float32; a batch gives ``(N, 1, k, k)``) and the
    sample's noise, ``sigma`` and ``noise_seed`` (the noise is ``RandomState(noise_seed).normal(0, sigma / 255)``).
    """

    OPTIONS = dict(DegradationDataset.OPTIONS, kernel_path='paths', sigma='number', sigma_range='range',
                   noise_seed='int', mod_crop='int', kernel_size='int', kernel_types='list', kernel_probs='numbers',
                   blur_sigma_range='range', motion_length_range='range', kernel_bank_prob='number')

    def __init__(self, opt):
        super().__init__(opt)
        scale = opt.get('scale', 1)
        if scale != 1:
            raise ValueError(f'BlurKernelDataset makes deblurring pairs, scale must be 1, got {scale!r}')
        self.sigma_range = check_sigma(opt, default=2.55)
        if self.is_train:
            names, bank = load_kernels(opt['kernel_path']) if opt.get('kernel_path') is not None else ([], [])
            random_keys = any(opt.get(key) is not None for key in RANDOM_KERNEL_KEYS)
            bank_prob = opt.get('kernel_bank_prob', 1.0 if bank and not random_keys else 0.0)
            self.sampler = RandomKernelSampler(
                kernel_size=opt.get('kernel_size', 7), kernel_types=opt.get('kernel_types') or KERNEL_TYPES,
                kernel_probs=opt.get('kernel_probs'), blur_sigma_range=opt.get('blur_sigma_range', (0.2, 3.0)),
                motion_length_range=opt.get('motion_length_range'), bank=bank, bank_prob=bank_prob)
        else:
            if opt.get('kernel_path') is None:
                raise KeyError(f"dataset option 'kernel_path' is required for phase {opt.get('phase')!r}")
            self.kernel_names, self.kernels = load_kernels(opt['kernel_path'])
            self.noise_seed = check_number(opt, 'noise_seed', 0, integer=True)
            self.mod_crop = check_number(opt, 'mod_crop', 8, minimum=1, integer=True)

    def __len__(self):
        return len(self.gt_images) * (1 if self.is_train else len(self.kernels))

    def __getitem__(self, index):
        if self.is_train:
            gt, path = self.read_gt(index)
            gt = self.crop_and_augment(gt, path)
            kernel = self.sampler()
            sigma, seed = draw_noise_level(self.sigma_range)
            lq = add_noise(uint8_to_float(circular_blur(gt, kernel)), sigma, np.random.RandomState(seed))
            return self.sample(lq, uint8_to_float(gt), path, kernel=kernel[None], sigma=sigma, noise_seed=seed)
        k, i = divmod(index, len(self.gt_images))
        gt, path = self.read_gt(i)
        kernel = self.kernels[k]
        if gt.shape[0] < max(self.mod_crop, kernel.shape[0]) or gt.shape[1] < max(self.mod_crop, kernel.shape[1]):
            raise ValueError(f'image {path!r} of size {gt.shape[0]}x{gt.shape[1]} is smaller than the kernel '
                             f'{self.kernel_names[k]} {kernel.shape} or mod_crop {self.mod_crop}')
        gt = mod_crop(gt, self.mod_crop)
        lq = add_noise(
            uint8_to_float(circular_blur(gt, kernel)), self.sigma_range[0], np.random.RandomState(self.noise_seed))
        lq_path = path
        if len(self.kernels) > 1:
            stem, ext = osp.splitext(path)
            lq_path = f'{stem}_{self.kernel_names[k]}{ext}'
        return self.sample(lq, uint8_to_float(gt), path, lq_path, kernel=kernel[None], sigma=self.sigma_range[0],
                           noise_seed=self.noise_seed)
