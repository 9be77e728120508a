"""BlurKernelDataset's errors for bad options and images, each naming the option or the image: a kernel bank
probability outside [0, 1] or without a bank, a test phase without kernels, an image narrower than the kernel."""
import cv2
import numpy as np
import pytest

from converse_basicsr.data.blur_dataset import BlurKernelDataset


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / 'gt'
    folder.mkdir()
    cv2.imwrite(str(folder / 'wide.png'), np.random.RandomState(0).randint(0, 256, (24, 24, 3), dtype=np.uint8))
    np.save(tmp_path / 'k7.npy', np.full((7, 7), 1 / 49, np.float32))
    return tmp_path


def _dataset(root, **opt):
    base = dict(name='t', type='BlurKernelDataset', phase='train', dataroot_gt=str(root / 'gt'), gt_size=16)
    return BlurKernelDataset(dict(base, **opt))


@pytest.mark.parametrize('prob', [1.5, -0.1])
def test_a_bank_probability_outside_0_1_is_refused(root, prob):
    with pytest.raises(ValueError, match=r'kernel_bank_prob must be in \[0, 1\], got ' + str(prob)):
        _dataset(root, kernel_path=str(root / 'k7.npy'), kernel_bank_prob=prob)


def test_a_bank_probability_without_a_bank_is_refused(root):
    with pytest.raises(ValueError, match='kernel_bank_prob > 0 needs a non-empty kernel bank'):
        _dataset(root, kernel_bank_prob=0.5)
    _dataset(root, kernel_bank_prob=0.0)  # zero needs none


def test_the_test_phase_needs_kernels(root):
    with pytest.raises(KeyError, match="'kernel_path' is required for phase 'test'"):
        _dataset(root, phase='test')


def test_an_image_narrower_than_the_kernel_names_the_image(root):
    cv2.imwrite(str(root / 'gt' / 'wide.png'), np.zeros((24, 6, 3), np.uint8))  # tall enough, too narrow
    dataset = _dataset(root, phase='test', kernel_path=str(root / 'k7.npy'))
    with pytest.raises(ValueError, match=r"wide.png' of size 24x6 is smaller than the kernel"):
        dataset[0]
