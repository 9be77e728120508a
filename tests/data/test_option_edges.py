"""Dataset option edges, as the dataset docstrings state them: ``sigma_range: [lo, hi]`` with ``0 <= lo <= hi``
(a fixed level ``[s, s]`` included) and read for ``phase: train`` only (val/test use ``sigma``)."""
import random

import cv2
import numpy as np
import pytest

from basicsr.data import build_dataset


@pytest.fixture
def gt_folder(tmp_path):
    folder = tmp_path / 'gt'
    folder.mkdir()
    rng = np.random.RandomState(0)
    cv2.imwrite(str(folder / 'a.png'), rng.randint(0, 256, (20, 24, 3), dtype=np.uint8))
    return folder


def _build(folder, **opt):
    return build_dataset(dict(dict(name='t', type='GaussianNoiseDataset', dataroot_gt=str(folder)), **opt))


def _noise(sample):
    return sample['lq'].double().numpy() - sample['gt'].double().numpy()


def test_a_sigma_range_of_one_level_is_that_level(gt_folder):
    dataset = _build(gt_folder, phase='train', gt_size=16, sigma_range=[25, 25])
    np.random.seed(0)
    sample = dataset[0]
    assert sample['sigma'] == 25
    assert abs(_noise(sample).std() * 255 - 25) < 2.5  # 768 draws: the std is within 10 % of 25


@pytest.mark.parametrize('value', [[-5, 10], [-1, -1], [10, 5], [5], 'low'])
def test_a_bad_sigma_range_is_refused_naming_it(gt_folder, value):
    with pytest.raises(ValueError, match='sigma_range'):
        _build(gt_folder, phase='train', gt_size=16, sigma_range=value)


@pytest.mark.parametrize('phase', ['val', 'test'])
def test_the_test_phases_use_sigma_not_sigma_range(gt_folder, phase):
    sample = _build(gt_folder, phase=phase, sigma=15, sigma_range=[40, 50])[0]
    assert sample['sigma'] == 15 and sample['noise_seed'] == 0
    expected = np.random.RandomState(0).normal(0, 15 / 255., (20, 24, 3)).transpose(2, 0, 1)
    assert np.abs(_noise(sample) - expected).max() < 1e-5


def test_flips_and_rotations_are_on_by_default(tmp_path):
    """Without ``use_hflip`` / ``use_rot`` (default True) a whole-image crop comes back as each of its 8
    flips and rotations."""
    img = np.random.RandomState(3).randint(0, 256, (16, 16), dtype=np.uint8)
    cv2.imwrite(str(tmp_path / 'x.png'), img)
    dataset = _build(tmp_path, phase='train', color='gray', gt_size=16, sigma=0)
    transforms = [np.rot90(f, k) for f in (img, img[:, ::-1]) for k in range(4)]
    seen = set()
    random.seed(0), np.random.seed(0)
    for _ in range(64):
        gt = np.rint(dataset[0]['gt'][0].double().numpy() * 255).astype(np.uint8)
        seen.update(k for k, t in enumerate(transforms) if np.array_equal(gt, t))
    assert seen == set(range(8))


@pytest.mark.parametrize('size', [0, -16])
def test_a_gt_size_below_one_is_refused_naming_it(gt_folder, size):
    with pytest.raises(ValueError, match=f'gt_size must be >= 1, got {size}'):
        _build(gt_folder, phase='train', gt_size=size, sigma=5)


def test_one_kernel_keeps_the_image_name_several_append_the_kernel(gt_folder, tmp_path):
    for name in ('k1', 'k2'):
        np.save(tmp_path / f'{name}.npy', np.full((3, 3), 1 / 9))
    one = build_dataset(
        dict(name='t', type='BlurKernelDataset', phase='test', dataroot_gt=str(gt_folder),
             kernel_path=str(tmp_path / 'k1.npy')))
    assert len(one) == 1 and one[0]['lq_path'] == one[0]['gt_path'] == str(gt_folder / 'a.png')
    two = build_dataset(
        dict(name='t', type='BlurKernelDataset', phase='test', dataroot_gt=str(gt_folder),
             kernel_path=[str(tmp_path / 'k1.npy'), str(tmp_path / 'k2.npy')]))
    assert [two[i]['lq_path'] for i in range(2)] == [str(gt_folder / 'a_k1.png'), str(gt_folder / 'a_k2.png')]
