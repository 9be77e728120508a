import numpy as np

from basicsr.utils.registry import DATASET_REGISTRY

from .base import DegradationDataset, add_noise, check_number, check_sigma, draw_noise_level
from .io import uint8_to_float


@DATASET_REGISTRY.register()
class GaussianNoiseDataset(DegradationDataset):
    """Additive white Gaussian noise on ground-truth images (the denoising protocol; Converse-DnCNN).

    Keys (besides ``name``/``type``):
        dataroot_gt (str): image folder, or ``*.lmdb`` folder with ``io_backend: {type: lmdb}``.
        io_backend (dict): ``{type: disk}`` (default) or ``{type: lmdb}``; other keys go to FileClient.
        meta_info (str, optional): list of image names (see ``converse_basicsr.data.io``).
        color (str): ``gray`` (one channel, the denoising tables) or ``rgb`` (default).
        sigma (float): noise level in 0–255 units (e.g. 25). Required for val/test; for train unless
            ``sigma_range`` is given.
        noise_seed (int): val/test only; every image draws its noise from a fresh
            ``np.random.RandomState(noise_seed)`` (default 0, the protocol), so results are per-image
            reproducible whatever the order.
        gt_size (int): train only; side of the random square GT patch.
        use_hflip, use_rot (bool): train only; BasicSR's ``augment`` (default True).
        sigma_range ([lo, hi]): train only; a noise level drawn uniformly per sample.

    Noise is drawn in float64, added to the float32 image and the result kept float32, not clipped.
    Samples: ``lq``, ``gt`` (CHW float32), ``lq_path``, ``gt_path``, and the sample's noise: ``sigma`` and
    ``noise_seed`` (``lq == float32(gt + RandomState(noise_seed).normal(0, sigma / 255, gt.shape))``).
    """

    OPTIONS = dict(DegradationDataset.OPTIONS, sigma='number', sigma_range='range', noise_seed='int')

    def __init__(self, opt):
        super().__init__(opt)
        self.sigma_range = check_sigma(opt)
        self.noise_seed = check_number(opt, 'noise_seed', 0, integer=True)

    def __getitem__(self, index):
        gt, path = self.read_gt(index)
        if self.is_train:
            gt = uint8_to_float(self.crop_and_augment(gt, path))
            sigma, seed = draw_noise_level(self.sigma_range)
        else:
            gt = uint8_to_float(gt)
            sigma, seed = self.sigma_range[0], self.noise_seed
        lq = add_noise(gt, sigma, np.random.RandomState(seed))
        return self.sample(lq, gt, path, sigma=sigma, noise_seed=seed)
