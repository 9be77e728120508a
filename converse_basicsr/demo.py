"""The demo (``converse-demo``, ``make demo``): reverse convolution, then a Converse-DnCNN trained on the CPU.

1. The operator: blur scikit-image's ``camera`` with a known 7×7 kernel (depthwise circular convolution)
   and undo the blur with ``converse2d`` given that kernel; print both PSNRs.
2. The main job: write scikit-image's bundled sample images (no download) to ``<output>/data/{train,val}``,
   train a small Converse-DnCNN for grayscale denoising at σ = 25 through BasicSR's training pipeline
   with the shipped demo config (``options/demo/train_demo_dncnn.yml``, its dataroots pointed at
   ``<output>/data``; a few minutes), validating on the held-out images; then restore the held-out
   ``camera`` image, write noisy | restored | clean side by side to
   ``<output>/demo_denoising_camera_sigma25.png`` and print the PSNR of the noisy input and of the result.

``--iters N`` trains N iterations instead of the config's (a smoke test: ``--iters 4``);
``--operator-only`` runs step 1 alone. Everything is written under ``--output`` (default ``demo_output``
in the current directory; ``scripts/demo.py`` uses the checkout's ``demo_output/``).
"""
import argparse
import os
import shutil
import sys
import time
from os import path as osp

import numpy as np
import torch
import yaml
from torch.nn import functional as F

import converse_basicsr  # noqa: F401  (basicsr compatibility fixes and registries, before any basicsr import)
from converse_basicsr.data.io import quantise, write_image, write_text_atomic
from converse_basicsr.utils.configs import resolve_config
from converse_basicsr.utils.runtime import retain_freed_memory

CONFIG = 'train_demo_dncnn'  # options/demo/train_demo_dncnn.yml
TRAIN_IMAGES = ('astronaut', 'brick', 'chelsea', 'coffee', 'grass', 'gravel', 'immunohistochemistry', 'moon', 'page',
                'rocket', 'text')
VAL_IMAGES = ('camera', 'coins', 'clock')  # held out; camera is the one shown
SHOWN = 'camera'
PANEL_GAP = 8  # white columns between the panels of the saved comparison


def psnr(img, ref):
    """BasicSR's PSNR of two uint8 images (crop_border 0), as the denoising protocol."""
    from basicsr.metrics import calculate_psnr
    return calculate_psnr(img, ref, crop_border=0)


def to_uint8(x):
    return quantise(x.squeeze().cpu().numpy(), np.uint8)


def display_path(path):
    """``path`` relative to the current directory when it lies below it, else absolute."""
    rel = osp.relpath(path)
    return path if rel.startswith(os.pardir) else rel


def write_sample_images(folder):
    """scikit-image's bundled sample images as PNGs (RGB or grayscale, as shipped)."""
    from skimage import data
    for split, names in (('train', TRAIN_IMAGES), ('val', VAL_IMAGES)):
        os.makedirs(osp.join(folder, split), exist_ok=True)
        for name in names:
            img = getattr(data, name)()
            write_image(osp.join(folder, split, f'{name}.png'), img[..., :3] if img.ndim == 3 else img)


def show_operator():
    """Blur ``camera`` with a known Gaussian kernel, then invert it with ``converse2d``; return both PSNRs."""
    from skimage import data

    from converse_basicsr import converse2d
    clean = torch.from_numpy(data.camera()).float().div(255)[None, None]
    ax = torch.arange(7, dtype=torch.float32) - 3
    kernel = torch.exp(-(ax[:, None]**2 + ax[None]**2) / (2 * 1.2**2))
    kernel = (kernel / kernel.sum())[None, None]  # (1, 1, 7, 7)
    blurred = F.conv2d(F.pad(clean, (3, 3, 3, 3), mode='circular'), kernel)  # depthwise, circular
    # λ = sigmoid(bias − 9) + eps: bias −4 gives λ ≈ 1e-6, a nearly exact inverse of a noise-free blur.
    bias = torch.full((1, 1, 1, 1), -4.0)
    restored = converse2d(blurred, kernel, bias, scale=1, padding=0, padding_mode='circular', eps=1e-7)
    blurred_psnr, restored_psnr = psnr(to_uint8(blurred), to_uint8(clean)), psnr(to_uint8(restored), to_uint8(clean))
    print('[1/2] Converse2D, the operator: circular blur of "camera" by a 7x7 Gaussian (sigma 1.2), undone '
          'by converse2d with the same kernel')
    print(f'      PSNR blurred {blurred_psnr:.2f} dB -> reverse-convolved {restored_psnr:.2f} dB', flush=True)
    return blurred_psnr, restored_psnr


def demo_options(config, data_root, iters=None):
    """The demo config with its dataroots at ``data_root``; with ``iters``, shortened to that many iterations."""
    with open(config, encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    for split in ('train', 'val'):
        opt['datasets'][split]['dataroot_gt'] = osp.join(data_root, split)
    if iters is not None:
        opt['train']['total_iter'] = iters
        opt['train']['scheduler']['periods'] = [iters]
        # validation and the latest weights also come at the end of training: no periodic ones needed
        opt['logger']['print_freq'] = min(opt['logger']['print_freq'], iters)
    return opt


def train(opt, output):
    """Train with ``opt`` (written to ``<output>/<name>.yml``, the exact options of the run) under ``output``."""
    from converse_basicsr import train as train_entry
    opt_file = osp.join(output, f'{opt["name"]}.yml')
    write_text_atomic(opt_file, yaml.safe_dump(opt, sort_keys=False))
    shutil.rmtree(osp.join(output, 'experiments', opt['name']), ignore_errors=True)  # the previous demo run
    net_opt = opt['network_g']
    network = f'{net_opt["type"]} ({net_opt["num_block"]} blocks, {net_opt["num_feat"]} features)'
    iters = opt['train']['total_iter']
    print(f'[2/2] training {network} for {iters} iterations on the CPU with {display_path(opt_file)} ...', flush=True)
    start = time.time()
    status = train_entry.main(['-opt', opt_file], root_path=output)
    if status:
        raise SystemExit(f'converse-demo: training failed (converse-train exit status {status})')
    return time.time() - start


def restore_held_out(opt, output):
    """Restore the noisy held-out image with the trained weights, the validation protocol's noise;
    write noisy | restored | clean; return the two PSNRs and the image's path."""
    from basicsr.archs import build_network
    from basicsr.utils.registry import DATASET_REGISTRY
    val_opt = dict(opt['datasets']['val'], phase='val')
    dataset = DATASET_REGISTRY.get(val_opt['type'])(val_opt)
    index = next(i for i in range(len(dataset)) if osp.basename(dataset[i]['gt_path']).startswith(SHOWN))
    sample = dataset[index]
    net = build_network(dict(opt['network_g']))
    weights = osp.join(output, 'experiments', opt['name'], 'models', 'net_g_latest.pth')
    net.load_state_dict(torch.load(weights, map_location='cpu', weights_only=True)['params'])
    net.eval()
    with torch.no_grad():
        restored = net(sample['lq'][None])
    noisy, result, clean = to_uint8(sample['lq']), to_uint8(restored), to_uint8(sample['gt'])
    gap = np.full((clean.shape[0], PANEL_GAP), 255, np.uint8)
    path = osp.join(output, f'demo_denoising_{SHOWN}_sigma{opt["datasets"]["val"]["sigma"]}.png')
    write_image(path, np.concatenate([noisy, gap, result, gap, clean], axis=1))
    return psnr(noisy, clean), psnr(result, clean), path


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f'must be a positive integer, got {text}')
    return value


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog='converse-demo', description=__doc__.split('\n')[0])
    parser.add_argument('--output', default='demo_output',
                        help='folder for the data, experiments and result image (default: ./demo_output)')
    parser.add_argument('--config', default=CONFIG,
                        help=f'demo config, a shipped name or a YAML path (default: {CONFIG})')
    parser.add_argument('--iters', type=positive_int,
                        help="train this many iterations instead of the config's total_iter")
    parser.add_argument('--operator-only', action='store_true', help='run step 1 (the operator) only')
    return parser.parse_args(argv)


def main(argv=None):
    """Console entry point (``converse-demo``): exit status 0 on success."""
    args = parse_args(argv)
    retain_freed_memory()
    torch.set_num_threads(1)  # on a busy or small CPU, more threads spin and get slower, not faster
    start = time.time()
    show_operator()
    if args.operator_only:
        return 0
    output = osp.abspath(args.output)
    opt = demo_options(resolve_config(args.config, 'demo'), osp.join(output, 'data'), args.iters)
    write_sample_images(osp.join(output, 'data'))
    seconds = train(opt, output)
    noisy_psnr, restored_psnr, path = restore_held_out(opt, output)
    print(f'\nTraining took {seconds / 60:.1f} min; the whole demo {(time.time() - start) / 60:.1f} min.')
    print(f'Held-out "{SHOWN}", sigma {opt["datasets"]["val"]["sigma"]}: noisy input PSNR {noisy_psnr:.2f} dB, '
          f'restored PSNR {restored_psnr:.2f} dB ({restored_psnr - noisy_psnr:+.2f} dB)')
    print(f'noisy | restored | clean: {display_path(path)}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
