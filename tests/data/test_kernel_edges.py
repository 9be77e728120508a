"""Kernel loading and training-kernel option edges, as ``data.kernels`` documents them: a kernel is a non-empty
2-D array of finite real numbers whatever ``check`` says; ``kernel_path`` names at least one kernel; random kernels
are odd-sized, their Gaussian widths a positive range ``lo < hi`` (BasicSR's sampler needs it), their motion lengths
a range ``lo <= hi``."""
import numpy as np
import pytest

from converse_basicsr.data.kernels import RandomKernelSampler, kernel_files, load_kernel


@pytest.mark.parametrize('check', [True, False])
@pytest.mark.parametrize('kernel, match', [
    (np.full((3, 3), 1 / 9) + 0j, 'finite real numbers'),
    (np.zeros((0, 3)), r'non-empty 2-D array, got shape \(0, 3\)'),
    (np.zeros((3, 0)), r'non-empty 2-D array, got shape \(3, 0\)'),
])
def test_a_kernel_that_is_no_real_2d_array_is_refused(kernel, match, check):
    with pytest.raises(ValueError, match=f'--kernel: kernel must hold (a )?{match}'):
        load_kernel(kernel, check=check, key='--kernel')


def test_a_complex_kernel_file_is_refused_naming_the_file(tmp_path):
    path = tmp_path / 'k.npy'
    np.save(path, np.full((3, 3), 1 / 9) + 0j)
    with pytest.raises(ValueError, match="kernel_path: kernel file '.*k.npy' must hold finite real numbers"):
        load_kernel(str(path), check=False)


def test_an_empty_kernel_path_list_is_refused():
    with pytest.raises(ValueError, match='kernel_path is an empty list'):
        kernel_files([])


@pytest.mark.parametrize('size', [6, 1, 2])
def test_random_kernels_are_odd_sized(size):
    with pytest.raises(ValueError, match=f'kernel_size must be an odd integer >= 3, got {size}'):
        RandomKernelSampler(size)


@pytest.mark.parametrize('value', [[0, 3], [1.5, 1.5], [2, 1]])
def test_gaussian_widths_are_a_positive_open_range(value):
    with pytest.raises(ValueError, match='blur_sigma_range'):
        RandomKernelSampler(7, ['isotropic'], blur_sigma_range=value)


def test_a_fixed_motion_length_is_accepted():
    np.random.seed(0)
    sampler = RandomKernelSampler(7, ['motion'], motion_length_range=[3, 3])
    kernel = sampler()
    assert sampler.motion_length_range == (3.0, 3.0)
    assert kernel.shape == (7, 7) and abs(kernel.sum() - 1) < 1e-9 and kernel.min() >= 0


def test_an_empty_kernel_types_list_is_refused():
    with pytest.raises(ValueError, match=r'kernel_types must be a non-empty list .*got \[\]'):
        RandomKernelSampler(7, [])
