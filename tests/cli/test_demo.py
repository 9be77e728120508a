"""The README's first command, CI-sized: ``scripts/demo.py --iters 3`` on the shipped demo config.

Its printed numbers are checked against independent computations: the operator step against the
literal algorithm (``ops/literal.py``, float64) on a blur computed here, the denoising step against
the noise protocol (``RandomState(0)``, σ = 25) and the PSNRs of the panels of the image it wrote.
"""
import os
import re
import subprocess
import sys

import cv2
import numpy as np
import pytest
import torch
import yaml
from skimage import data

from basicsr.archs import build_network
from tests.helpers.demo import OPERATOR_LINE, operator_step_reference, psnr, to_uint8
from tests.helpers.shared_files import REPO_ROOT

ITERS = 3
GAP = 8  # white columns between the noisy | restored | clean panels


@pytest.fixture(scope='module')
def demo_run(tmp_path_factory):
    """One run of the script from a folder outside the checkout; its stdout and output folder."""
    cwd = tmp_path_factory.mktemp('demo_cwd')
    output = tmp_path_factory.mktemp('demo_output')
    command = [sys.executable, f'{REPO_ROOT}/scripts/demo.py', '--iters', f'{ITERS}', '--output', f'{output}']
    env = dict(os.environ, OMP_NUM_THREADS='1')
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout, output


def test_operator_step_matches_the_literal_algorithm(demo_run):
    stdout, _ = demo_run
    found = re.search(OPERATOR_LINE, stdout)
    assert found, stdout
    printed_blurred, printed_restored = map(float, found.groups())
    blurred, restored = operator_step_reference()
    assert abs(printed_blurred - blurred) < 0.006 and abs(printed_restored - restored) < 0.006  # 2 decimals printed
    assert printed_restored > printed_blurred + 5  # the blur is undone, not just reported


def test_training_step_ran_the_shipped_config_shortened(demo_run):
    stdout, output = demo_run
    with open(output / 'demo_converse_dncnn.yml', encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    with open(REPO_ROOT / 'options' / 'demo' / 'train_demo_dncnn.yml', encoding='utf-8') as f:
        shipped = yaml.safe_load(f)
    assert opt['train']['total_iter'] == ITERS and opt['network_g'] == shipped['network_g']
    assert opt['datasets']['train']['dataroot_gt'] == str(output / 'data' / 'train')
    assert len(os.listdir(output / 'data' / 'train')) == 11 and len(os.listdir(output / 'data' / 'val')) == 3
    log = next((output / 'experiments' / opt['name']).glob('train_*.log')).read_text(encoding='utf-8')
    assert f'iter:{ITERS:8,d}' in log and f'iter:{ITERS + 1:8,d}' not in log
    weights = torch.load(output / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth', weights_only=True)
    assert weights['params'].keys() == build_network(dict(opt['network_g'])).state_dict().keys()
    assert all(torch.isfinite(v).all() for v in weights['params'].values())


def test_result_image_and_printed_psnrs(demo_run):
    stdout, output = demo_run
    found = re.search(r'Held-out "camera", sigma 25: noisy input PSNR (\d+\.\d\d) dB, restored PSNR (\d+\.\d\d) dB',
                      stdout)
    assert found, stdout
    printed_noisy, printed_restored = map(float, found.groups())
    path = output / 'demo_denoising_camera_sigma25.png'
    assert f'noisy | restored | clean: {path}' in stdout
    image = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    clean = data.camera()
    h, w = clean.shape
    assert image.dtype == np.uint8 and image.shape == (h, 3 * w + 2 * GAP)
    noisy, gap1, restored, gap2, shown_clean = np.split(image, [w, w + GAP, 2 * w + GAP, 2 * w + 2 * GAP], axis=1)
    assert np.array_equal(shown_clean, clean) and (gap1 == 255).all() and (gap2 == 255).all()
    # the protocol's noise: normal(0, 25/255) from a fresh RandomState(0), clipped and rounded
    noisy_input = (clean / 255 + np.random.RandomState(0).normal(0, 25 / 255, clean.shape)).astype(np.float32)
    off = np.abs(noisy.astype(np.int16) - to_uint8(noisy_input))
    assert off.max() <= 1 and (off > 0).mean() < 1e-3  # rounding may flip a pixel at a .5 boundary
    # the restored panel is the trained network's output on that input
    with open(output / 'demo_converse_dncnn.yml', encoding='utf-8') as f:
        opt = yaml.safe_load(f)
    net = build_network(dict(opt['network_g'])).eval()
    weights = output / 'experiments' / opt['name'] / 'models' / 'net_g_latest.pth'
    net.load_state_dict(torch.load(weights, weights_only=True)['params'])
    with torch.no_grad():
        expected_restored = net(torch.from_numpy(noisy_input)[None, None])[0, 0].numpy()
    off = np.abs(restored.astype(np.int16) - to_uint8(expected_restored))
    assert off.max() <= 1 and (off > 0).mean() < 1e-3
    assert abs(printed_noisy - psnr(noisy, clean)) < 0.006
    assert abs(printed_restored - psnr(restored, clean)) < 0.006
