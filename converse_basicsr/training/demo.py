"""The demo's steps (``converse-demo``, ``make demo``; the command line is :mod:`converse_basicsr.demo`): the
operator undoing a known blur, then a small Converse-DnCNN trained on scikit-image's sample images through
BasicSR's training pipeline and the held-out ``camera`` image restored (:func:`run_demo`)."""
import os
import shutil
import time
from os import path as osp

import numpy as np
import torch
from torch.nn import functional as F

import converse_basicsr  # noqa: F401  (basicsr compatibility fixes and registries, before any basicsr import)
from converse_basicsr.data.io import quantise, write_image, write_text_atomic
from converse_basicsr.training.pipeline import run_command
from converse_basicsr.utils.configs import resolve_config
from converse_basicsr.utils.safe_yaml import dump_yaml, load_yaml

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
    """A float tensor in [0, 1] as a uint8 array (quantised as BasicSR does)."""
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

    from converse_basicsr.ops import converse2d
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
    opt = load_yaml(config)
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
    opt_file = osp.join(output, f'{opt["name"]}.yml')
    write_text_atomic(opt_file, dump_yaml(opt))
    shutil.rmtree(osp.join(output, 'experiments', opt['name']), ignore_errors=True)  # the previous demo run
    net_opt = opt['network_g']
    network = f'{net_opt["type"]} ({net_opt["num_block"]} blocks, {net_opt["num_feat"]} features)'
    iters = opt['train']['total_iter']
    print(f'[2/2] training {network} for {iters} iterations on the CPU with {display_path(opt_file)} ...', flush=True)
    start = time.time()
    status = run_command(['-opt', opt_file], output)
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


def run_demo(output, config=CONFIG, iters=None, operator_only=False):
    """The whole demo (the steps of :mod:`converse_basicsr.demo`'s docstring) under ``output``; exit status 0."""
    start = time.time()
    show_operator()
    if operator_only:
        return 0
    output = osp.abspath(output)
    opt = demo_options(resolve_config(config, 'demo'), osp.join(output, 'data'), iters)
    write_sample_images(osp.join(output, 'data'))
    seconds = train(opt, output)
    noisy_psnr, restored_psnr, path = restore_held_out(opt, output)
    print(f'\nTraining took {seconds / 60:.1f} min; the whole demo {(time.time() - start) / 60:.1f} min.')
    print(f'Held-out "{SHOWN}", sigma {opt["datasets"]["val"]["sigma"]}: noisy input PSNR {noisy_psnr:.2f} dB, '
          f'restored PSNR {restored_psnr:.2f} dB ({restored_psnr - noisy_psnr:+.2f} dB)')
    print(f'noisy | restored | clean: {display_path(path)}')
    return 0
