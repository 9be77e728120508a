from basicsr.data.transforms import mod_crop
from basicsr.utils.matlab_functions import imresize
from basicsr.utils.registry import DATASET_REGISTRY

from .base import DegradationDataset, check_number
from .io import uint8_to_float


@DATASET_REGISTRY.register()
class BicubicDownsampleDataset(DegradationDataset):
    """×s bicubic downscaling of ground-truth images (the SR protocol; Converse-SRResNet).

    Keys (besides ``name``/``type``):
        dataroot_gt, io_backend, meta_info, color: as for ``GaussianNoiseDataset``.
        scale (int >= 1): the downscaling factor; BasicSR copies the top-level ``scale`` into every dataset.
        gt_size (int): train only; side of the random square GT patch, a multiple of ``scale``.
        use_hflip, use_rot (bool): train only; BasicSR's ``augment`` (default True).

    Val/test: the GT is mod-cropped to a multiple of ``scale``; train: a random ``gt_size`` crop.
    The LR image is BasicSR's MATLAB-style ``imresize(gt, 1/scale)`` (antialiased bicubic) of the
    float32 GT, kept in float (not re-quantised). Samples: ``lq``, ``gt``, ``lq_path``, ``gt_path``.
    """

    OPTIONS = DegradationDataset.OPTIONS

    def __init__(self, opt):
        super().__init__(opt)
        self.scale = check_number(opt, 'scale', minimum=1, integer=True)
        if self.is_train and self.gt_size % self.scale:
            raise ValueError(f'gt_size must be a multiple of scale {self.scale}, got {self.gt_size}')

    def __getitem__(self, index):
        gt, path = self.read_gt(index)
        if gt.shape[0] < self.scale or gt.shape[1] < self.scale:
            raise ValueError(f'image {path!r} of size {gt.shape[0]}x{gt.shape[1]} is smaller than scale {self.scale}')
        gt = self.crop_and_augment(gt, path) if self.is_train else mod_crop(gt, self.scale)
        gt = uint8_to_float(gt)
        lq = imresize(gt, 1 / self.scale) if self.scale > 1 else gt.copy()
        return self.sample(lq, gt, path)
