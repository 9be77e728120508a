"""What converse-train writes describes its network: restored by path (copied alone), compared and loaded through
spandrel as trained; and a user's own arch, imported with ``custom_imports`` / ``--import``, trains and restores."""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import spandrel
import torch
import yaml

import converse_basicsr.spandrel_support as cs
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr import train
from converse_basicsr.evaluation.model_entries import check_paths, load_model
from converse_basicsr.export import cli as export_cli
from converse_basicsr.export.runtime import load_onnx
from converse_basicsr.inference.restorer import Restorer
from tests.helpers.shared_files import REPO_ROOT

MY_ARCH = '''
from torch import nn
from basicsr.utils.registry import ARCH_REGISTRY


@ARCH_REGISTRY.register()
class TinyDn(nn.Module):
    def __init__(self, num_in_ch=1, num_feat=4):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 3, padding=1), nn.ReLU(),
                                  nn.Conv2d(num_feat, num_in_ch, 3, padding=1))

    def forward(self, x):
        return x - self.body(x)
'''


def _images(folder, count=4, size=24):
    folder.mkdir(parents=True)
    rng = np.random.RandomState(0)
    for i in range(count):
        img = cv2.resize(rng.rand(5, 5).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f'{i}.png'), np.clip(img * 255, 0, 255).astype(np.uint8))
    return str(folder)


def _train(tmp_path, name, network, **top):
    opt = {
        'name': name, 'model_type': 'SRModel', 'scale': 1, 'num_gpu': 0, 'manual_seed': 7, **top, 'datasets': {
            'train': {
                'name': 'tiny', 'type': 'GaussianNoiseDataset', 'dataroot_gt': _images(tmp_path / f'{name}_data'),
                'io_backend': {'type': 'disk'}, 'color': 'gray', 'sigma': 25, 'gt_size': 16, 'use_hflip': False,
                'use_rot': False, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2
            }
        }, 'network_g': network, 'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-2}, 'total_iter': 2, 'warmup_iter': -1,
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10],
                          'gamma': 0.5}, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}
        }, 'logger': {'print_freq': 1, 'save_checkpoint_freq': 10, 'use_tb_logger': False}
    }
    (tmp_path / f'{name}.yml').write_text(yaml.safe_dump(opt))
    assert train.main(['-opt', str(tmp_path / f'{name}.yml')], root_path=str(tmp_path)) == 0
    return tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth'


def test_trained_converse_dncnn_keeps_its_settings_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = dict(num_in_ch=1, num_feat=4, num_block=2, padding=3, padding_mode='reflect', eps=1e-2)
    saved = _train(tmp_path, 'dncnn_p3', dict(settings, type='ConverseDnCNN'))
    alone = tmp_path / 'elsewhere' / 'dncnn_p3.pth'  # no run folder, no YAML beside it
    alone.parent.mkdir()
    shutil.copy(saved, alone)
    trained = ARCH_REGISTRY.get('ConverseDnCNN')(**settings).eval()
    trained.load_state_dict(torch.load(saved, weights_only=True)['params'])
    image = (np.random.RandomState(1).rand(29, 37) * 255).astype(np.uint8)
    x = torch.from_numpy(image / np.float32(255))[None, None]
    with torch.no_grad():
        expected = trained(x)
        restored = Restorer(str(alone)).restore(image).image.astype(int)
        assert np.abs(restored - np.round(expected.clamp(0, 1)[0, 0].numpy() * 255)).max() <= 1
        check_paths([str(alone)], 1, 1)
        spec = load_model(str(alone), 'denoise', 1)
        assert spec.name == 'ConverseDnCNN' and torch.equal(spec.module(x), expected)
        cs.install()
        assert (spandrel.ModelLoader().load_from_file(alone).model(x) - expected).abs().max() <= 1e-5
    # converse-export takes the same file through the front door; ONNX Runtime runs it as trained
    onnx_path = tmp_path / 'dncnn_p3.onnx'
    assert export_cli.main(['--model', str(alone), '--output', str(onnx_path)]) == 0
    with torch.no_grad():
        assert (load_onnx(onnx_path)(x) - expected).abs().max() <= 1e-4


def test_own_arch_trains_with_custom_imports_and_restores_with_import(tmp_path, monkeypatch):
    user = tmp_path / 'user'
    user.mkdir()
    (user / 'my_arch.py').write_text(MY_ARCH)
    monkeypatch.chdir(user)
    monkeypatch.setattr('sys.path', [p for p in __import__('sys').path if p not in ('', str(user))])
    saved = _train(user, 'tiny', {'type': 'TinyDn', 'num_feat': 4}, custom_imports=['my_arch'])
    image_dir = user / 'in'
    image_dir.mkdir()
    cv2.imwrite(str(image_dir / 'a.png'), (np.random.RandomState(2).rand(20, 20) * 255).astype(np.uint8))
    # a fresh process, run from the user's folder: nothing but --import registers TinyDn; the console script
    # (unlike python -m) does not put the current folder on sys.path
    script = Path(sys.executable).parent / 'converse-restore'
    command = [str(script)] if script.is_file() else [sys.executable, '-m', 'converse_basicsr.restore']
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    proc = subprocess.run(
        command +
        ['--import', 'my_arch', '--model',
         str(saved), '-i', str(image_dir), '-o',
         str(user / 'out')], cwd=user, env=env, capture_output=True, text=True)
    assert proc.returncode == 0 and (user / 'out' / 'a.png').is_file(), proc.stderr
