"""The demo's first step recomputed independently (used by the demo and packaging tests)."""
import numpy as np
import torch
from skimage import data

from basicsr.metrics import calculate_psnr
from converse_basicsr.ops.literal import literal_converse2d

OPERATOR_LINE = r'PSNR blurred (\d+\.\d\d) dB -> reverse-convolved (\d+\.\d\d) dB'


def psnr(img, ref):
    return calculate_psnr(img, ref, crop_border=0)


def to_uint8(img):
    return np.round(np.clip(img, 0, 1) * 255).astype(np.uint8)


def operator_step_reference():
    """PSNRs of the demo's first step, computed here: ``camera`` blurred by circular correlation with the
    7×7 Gaussian (σ 1.2), then reverse-convolved by the literal algorithm in float64 (bias −4, eps 1e-7)."""
    clean = data.camera().astype(np.float64) / 255
    ax = np.arange(7) - 3
    kernel = np.exp(-(ax[:, None]**2 + ax[None]**2) / (2 * 1.2**2))
    kernel /= kernel.sum()
    # circular correlation (the kernel is symmetric, so also the convolution), centred
    blurred = sum(kernel[i, j] * np.roll(clean, (3 - i, 3 - j), axis=(0, 1)) for i in range(7) for j in range(7))
    bias = torch.full((1, 1, 1, 1), -4.0, dtype=torch.float64)
    restored = literal_converse2d(
        torch.from_numpy(blurred)[None, None],
        torch.from_numpy(kernel)[None, None], bias, scale=1, padding=0, padding_mode='circular', eps=1e-7)[0,
                                                                                                           0].numpy()
    reference = to_uint8(clean)
    return psnr(to_uint8(blurred), reference), psnr(to_uint8(restored), reference)
