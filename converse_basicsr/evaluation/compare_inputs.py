"""converse-compare's inputs: the protocol's BasicSR dataset options and metrics, and every test image degraded
once (:class:`Sample`, with the sha256 of what the models receive).

Every model sees the same degraded inputs: they are made once per dataset by the package's own datasets
(``GaussianNoiseDataset``, ``BicubicDownsampleDataset``, ``BlurKernelDataset``) under one of the paper's
protocols. Metrics are BasicSR's ``calculate_psnr``/``calculate_ssim`` on uint8 images with the protocol's crop
and channel (:mod:`converse_basicsr.evaluation.protocols`), so a Converse row equals ``converse-test`` on the same
config.
"""
import hashlib
import sys
from dataclasses import dataclass
from os import path as osp

import numpy as np
import torch

import converse_basicsr  # noqa: F401  (registries)
from basicsr.data import build_dataset
from converse_basicsr.evaluation.protocols import drop_absent_optional_datasets
from converse_basicsr.utils.checks import ConverseError


class CompareError(ConverseError):
    """A comparison option (protocol, dataset or model entry) that cannot be used."""


def protocol_datasets(protocol, datasets):
    """BasicSR dataset options for every entry of ``datasets`` under ``protocol``, and the metric options.

    ``protocol``: ``{task: denoise, sigma, color}``, ``{task: sr, scale}`` or ``{task: deblur, kernel_path,
    sigma}``; optional ``metrics`` (BasicSR metric options) replace the protocol's own.
    """
    protocol = dict(protocol or {})
    task = protocol.pop('task', None)
    user_metrics = protocol.pop('metrics', None)
    if task == 'denoise':
        base = dict(type='GaussianNoiseDataset', color=protocol.pop('color', 'gray'), sigma=protocol.pop('sigma', 25),
                    noise_seed=protocol.pop('noise_seed', 0))
        crop, y_channel, scale = 0, False, 1
    elif task == 'sr':
        scale = protocol.pop('scale', 4)
        base = dict(type='BicubicDownsampleDataset', scale=scale)
        crop, y_channel = scale, True
    elif task == 'deblur':
        if 'kernel_path' not in protocol:
            raise CompareError('protocol deblur needs kernel_path (a .npy kernel, a folder of them, or a list)')
        base = dict(type='BlurKernelDataset', kernel_path=protocol.pop('kernel_path'),
                    sigma=protocol.pop('sigma', 2.55), noise_seed=protocol.pop('noise_seed', 0))
        crop, y_channel, scale = 1, False, 1
    else:
        raise CompareError(f"protocol.task must be 'denoise', 'sr' or 'deblur', got {task!r}")
    base.update(protocol)  # any further dataset key, e.g. mod_crop
    metrics = user_metrics or {
        name: dict(type=f'calculate_{name}', crop_border=crop, test_y_channel=y_channel)
        for name in ('psnr', 'ssim')
    }
    entries = []
    for name, entry in (datasets or {}).items():
        entry = dict(dataroot_gt=entry) if isinstance(entry, str) else dict(entry)
        entries.append(dict(base, name=name, phase='test', io_backend={'type': 'disk'}, **entry))
    if not entries:
        raise CompareError('no datasets given (datasets: {name: folder} or --dataset NAME=FOLDER)')
    return task, scale, entries, metrics


def describe_metrics(metrics):
    """One phrase for the metric setup, e.g. ``Y, crop 4``."""
    first = next(iter(metrics.values()))
    return f"{'Y' if first.get('test_y_channel') else 'all channels'}, crop {first.get('crop_border', 0)}"


@dataclass
class Sample:
    dataset: str
    image: str
    lq: torch.Tensor  # (1, C, h, w)
    gt: torch.Tensor  # (1, C, H, W)
    kernel: torch.Tensor = None  # (1, 1, k, k) for deblurring
    sha256: str = ''


def input_hash(sample):
    """sha256 of what a model receives: the degraded input's float32 bytes and shape (and the kernel's)."""
    digest = hashlib.sha256(str(tuple(sample.lq.shape)).encode())
    digest.update(sample.lq.numpy().astype(np.float32).tobytes())
    if sample.kernel is not None:
        digest.update(sample.kernel.numpy().astype(np.float32).tobytes())
    return digest.hexdigest()


def make_inputs(dataset_opts):
    """Every dataset's samples, degraded once; absent ``optional`` datasets are skipped with a warning."""
    opt = {'datasets': {str(i): entry for i, entry in enumerate(dataset_opts)}}
    skipped = drop_absent_optional_datasets(opt)
    if skipped:
        print(f'WARNING: skipping optional datasets that are not present: {", ".join(skipped)}', file=sys.stderr)
    samples = []
    for entry in opt['datasets'].values():
        dataset = build_dataset(entry)
        if len(dataset) == 0:
            raise CompareError(f"dataset {entry['name']!r} ({entry['dataroot_gt']}) holds no images")
        for index in range(len(dataset)):
            item = dataset[index]
            kernel = item.get('kernel')
            sample = Sample(entry['name'], osp.basename(item['lq_path']), item['lq'][None], item['gt'][None],
                            None if kernel is None else kernel.reshape(1, 1, *kernel.shape[-2:]))
            sample.sha256 = input_hash(sample)
            samples.append(sample)
    return samples
