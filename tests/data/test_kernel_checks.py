"""The blur-kernel check is two-sided: a kernel must sum to 1 within 1e-3, from below as from above, both in
``load_kernel`` and when a test dataset loads a kernel file."""
import cv2
import numpy as np
import pytest

from basicsr.data import build_dataset
from converse_basicsr.data.kernels import KERNEL_SUM_TOLERANCE, load_kernel


@pytest.mark.parametrize('total', [0.5, 0.998, 1.002, 1.5])
def test_unnormalised_kernels_are_refused(total):
    with pytest.raises(ValueError, match=f'sum {total:.6g} '):
        load_kernel(np.full((3, 3), total / 9))


@pytest.mark.parametrize('total', [1 - 0.9 * KERNEL_SUM_TOLERANCE, 1.0, 1 + 0.9 * KERNEL_SUM_TOLERANCE])
def test_kernels_within_the_tolerance_load(total):
    kernel = np.full((3, 3), total / 9)
    assert load_kernel(kernel) is not None and load_kernel(kernel, check=False).sum() == pytest.approx(total)


def test_dataset_names_the_half_kernel_file(tmp_path):
    (tmp_path / 'gt').mkdir()
    cv2.imwrite(str(tmp_path / 'gt' / 'a.png'), np.full((16, 16, 3), 100, np.uint8))
    np.save(tmp_path / 'half.npy', np.full((3, 3), 0.5 / 9))
    with pytest.raises(ValueError, match=r"kernel_path: kernel file '.*half\.npy' is not a normalised blur kernel"):
        build_dataset(
            dict(type='BlurKernelDataset', name='t', phase='test', dataroot_gt=str(tmp_path / 'gt'),
                 kernel_path=str(tmp_path / 'half.npy'), io_backend={'type': 'disk'}))
