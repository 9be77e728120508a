"""BlurKernelDataset's training kernels: a kernel bank alone is always drawn from; with random-kernel keys beside
it, random kernels are drawn unless ``kernel_bank_prob`` says otherwise."""
import cv2
import numpy as np
import pytest

from converse_basicsr.data.blur_dataset import BlurKernelDataset

BANK = np.zeros((7, 7), np.float32)
BANK[3, 1:6] = 0.2  # a horizontal 5-pixel line: no Gaussian or motion draw gives exactly this


@pytest.fixture
def root(tmp_path):
    folder = tmp_path / 'gt'
    folder.mkdir()
    cv2.imwrite(str(folder / 'a.png'), np.random.RandomState(0).randint(0, 256, (20, 20, 3), dtype=np.uint8))
    np.save(tmp_path / 'bank.npy', BANK)
    return tmp_path


def _kernels(root, draws=12, **keys):
    dataset = BlurKernelDataset(
        dict(name='t', type='BlurKernelDataset', phase='train', dataroot_gt=str(root / 'gt'), gt_size=16,
             kernel_path=str(root / 'bank.npy'), **keys))
    np.random.seed(0)
    return [dataset[0]['kernel'][0].numpy() for _ in range(draws)]


def _from_bank(kernel):
    return np.allclose(kernel, BANK, atol=1e-6)


def test_a_bank_alone_is_always_drawn_from(root):
    assert all(_from_bank(k) for k in _kernels(root))


@pytest.mark.parametrize('keys', [
    dict(blur_sigma_range=[0.5, 2.0]),
    dict(kernel_types=['motion']),
    dict(kernel_types=['isotropic', 'anisotropic'], kernel_probs=[0.5, 0.5]),
    dict(motion_length_range=[2, 5]),
])
def test_random_kernel_keys_beside_a_bank_draw_random_kernels_by_default(root, keys):
    kernels = _kernels(root, **keys)
    assert not any(_from_bank(k) for k in kernels)
    assert all(abs(float(k.sum()) - 1) < 1e-5 for k in kernels)


def test_kernel_bank_prob_mixes_the_two(root):
    kernels = _kernels(root, draws=40, blur_sigma_range=[0.5, 2.0], kernel_bank_prob=0.5)
    from_bank = sum(_from_bank(k) for k in kernels)
    assert 5 <= from_bank <= 35  # binomial(40, 0.5): outside this range with probability < 1e-5
