"""The demo behind ``make demo``: reverse convolution, then a Converse-DnCNN trained on the CPU.

1. The operator: blur a sample image with a known 7×7 kernel (depthwise circular convolution) and
   undo the blur with ``converse2d`` given that kernel; print both PSNRs.
2. The main job: write scikit-image's bundled sample images (no download) to
   ``demo_output/data/{train,val}``, train a small Converse-DnCNN for grayscale denoising at σ = 25
   through BasicSR's training pipeline with ``options/demo/train_demo_dncnn.yml`` (a few minutes),
   validating on the held-out images; then restore the held-out ``camera`` image, write
   noisy | restored | clean side by side to ``demo_output/demo_denoising_camera_sigma25.png`` and
   print the PSNR of the noisy input and of the result.

Run from anywhere: ``python scripts/demo.py`` (``make demo`` also creates the environment).
"""
import os
import shutil
import sys
import time
from os import path as osp

import cv2
import numpy as np
import torch
import yaml
from torch.nn import functional as F

import converse_basicsr  # noqa: F401  (basicsr compatibility fixes and registries, before any basicsr import)
from converse_basicsr.runtime import retain_freed_memory  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.abspath(__file__)))
CONFIG = osp.join(REPO, 'options', 'demo', 'train_demo_dncnn.yml')
OUTPUT = osp.join(REPO, 'demo_output')
TRAIN_IMAGES = ('astronaut', 'brick', 'chelsea', 'coffee', 'grass', 'gravel', 'immunohistochemistry', 'moon', 'page',
                'rocket', 'text')
VAL_IMAGES = ('camera', 'coins', 'clock')  # held out; camera is the one shown
SHOWN = 'camera'


def psnr(img, ref):
    """BasicSR's PSNR of two uint8 images (crop_border 0), as the denoising protocol."""
    from basicsr.metrics import calculate_psnr
    return calculate_psnr(img, ref, crop_border=0)


def to_uint8(x):
    return (x.clamp(0, 1) * 255).round().to(torch.uint8).squeeze().cpu().numpy()


def write_sample_images(folder):
    """scikit-image's bundled sample images as PNGs (RGB or grayscale, as shipped)."""
    from skimage import data
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        os.makedirs(osp.join(folder, split), exist_ok=True)
        for name in names:
            img = getattr(data, name)()
            if img.ndim == 3:
                img = cv2.cvtColor(img[..., :3], cv2.COLOR_RGB2BGR)
            cv2.imwrite(osp.join(folder, split, f'{name}.png'), img)


def show_operator():
    """Blur ``camera`` with a known Gaussian kernel, then invert it with ``converse2d``."""
    from skimage import data

    from converse_basicsr import converse2d
    clean = torch.from_numpy(data.camera()).float().div(255)[None, None]
    ax = torch.arange(7, dtype=torch.float32) - 3
    kernel = torch.exp(-(ax[:, None] ** 2 + ax[None] ** 2) / (2 * 1.2 ** 2))
    kernel = (kernel / kernel.sum())[None, None]  # (1, 1, 7, 7)
    blurred = F.conv2d(F.pad(clean, (3, 3, 3, 3), mode='circular'), kernel)  # depthwise, circular
    # λ = sigmoid(bias − 9) + eps: bias −4 gives λ ≈ 1e-6, a nearly exact inverse of a noise-free blur.
    bias = torch.full((1, 1, 1, 1), -4.0)
    restored = converse2d(blurred, kernel, bias, scale=1, padding=0, padding_mode='circular', eps=1e-7)
    print('[1/2] Converse2D, the operator: circular blur of "camera" by a 7x7 Gaussian (sigma 1.2), undone '
          'by converse2d with the same kernel')
    print(f'      PSNR blurred {psnr(to_uint8(blurred), to_uint8(clean)):.2f} dB -> reverse-convolved '
          f'{psnr(to_uint8(restored), to_uint8(clean)):.2f} dB')


def train(config):
    from converse_basicsr import train as train_entry
    with open(config, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    shutil.rmtree(osp.join(OUTPUT, 'experiments', opt['name']), ignore_errors=True)  # the previous demo run
    print(f'[2/2] training {opt["network_g"]["type"]} ({opt["network_g"]["num_block"]} blocks, '
          f'{opt["network_g"]["num_feat"]} features) for {opt["train"]["total_iter"]} iterations on the CPU '
          f'with {osp.relpath(config, REPO)} ...', flush=True)
    start = time.time()
    train_entry.main(['-opt', config], root_path=OUTPUT)
    return opt, time.time() - start


def restore_held_out(opt):
    """Restore the noisy held-out image with the trained weights, the validation protocol's noise."""
    from basicsr.archs import build_network
    from basicsr.utils.registry import DATASET_REGISTRY
    val_opt = dict(opt['datasets']['val'], phase='val')
    dataset = DATASET_REGISTRY.get(val_opt['type'])(val_opt)
    index = next(i for i in range(len(dataset)) if osp.basename(dataset[i]['gt_path']).startswith(SHOWN))
    sample = dataset[index]
    net = build_network(dict(opt['network_g']))
    weights = osp.join(OUTPUT, 'experiments', opt['name'], 'models', 'net_g_latest.pth')
    net.load_state_dict(torch.load(weights, map_location='cpu')['params'])
    net.eval()
    with torch.no_grad():
        restored = net(sample['lq'][None])
    noisy, result, clean = to_uint8(sample['lq']), to_uint8(restored), to_uint8(sample['gt'])
    gap = np.full((clean.shape[0], 8), 255, np.uint8)
    path = osp.join(OUTPUT, f'demo_denoising_{SHOWN}_sigma{opt["datasets"]["val"]["sigma"]}.png')
    cv2.imwrite(path, np.concatenate([noisy, gap, result, gap, clean], axis=1))
    return psnr(noisy, clean), psnr(result, clean), path


def main():
    retain_freed_memory()
    torch.set_num_threads(1)  # on a busy or small CPU, more threads spin and get slower, not faster
    start = time.time()
    show_operator()
    write_sample_images(osp.join(OUTPUT, 'data'))
    os.chdir(REPO)  # the config's dataroots are relative to the repository root
    opt, seconds = train(CONFIG)
    noisy_psnr, restored_psnr, path = restore_held_out(opt)
    print(f'\nTraining took {seconds / 60:.1f} min; the whole demo {(time.time() - start) / 60:.1f} min.')
    print(f'Held-out "{SHOWN}", sigma {opt["datasets"]["val"]["sigma"]}: noisy input PSNR {noisy_psnr:.2f} dB, '
          f'restored PSNR {restored_psnr:.2f} dB ({restored_psnr - noisy_psnr:+.2f} dB)')
    print(f'noisy | restored | clean: {osp.relpath(path, REPO)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
