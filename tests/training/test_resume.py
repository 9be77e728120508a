"""Resume and fine-tune through the training entry point, on the CPU.

Resume: 4 iterations, stop, resume to 8 must give exactly the weights of an uninterrupted
8-iteration run (fixed seed, no loader workers) — with the stop in the middle of an epoch and at an
epoch's end, through ``path.resume_state`` and ``--auto_resume``. Training uses the denoising
dataset with random crops, flips and a random noise level per sample, so any replayed batch or
restarted random stream shows in the weights.
"""
import cv2
import numpy as np
import pytest
import torch
import yaml

import basicsr.train
from converse_basicsr import train
from tests.helpers.shared_files import shared_path


def _write_images(folder, count, size=24, seed=0):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(seed)
    for i in range(count):
        img = cv2.resize(rng.rand(4, 4, 3).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f'{i:02d}.png'), np.clip(img * 255, 0, 255).astype(np.uint8))
    return str(folder)


def _options(name, train_root, val_root, total_iter, **path):
    return {
        'name': name,
        'model_type': 'SRModel',
        'scale': 1,
        'num_gpu': 0,
        'manual_seed': 7,
        'datasets': {
            'train': {
                'name': 'tiny', 'type': 'GaussianNoiseDataset', 'dataroot_gt': train_root,
                'io_backend': {'type': 'disk'}, 'color': 'gray', 'sigma_range': [5,
                                                                                 50], 'gt_size': 16, 'use_hflip': True,
                'use_rot': True, 'num_worker_per_gpu': 0, 'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1
            }, 'val': {
                'name': 'tiny_val', 'type': 'GaussianNoiseDataset', 'dataroot_gt': val_root,
                'io_backend': {'type': 'disk'}, 'color': 'gray', 'sigma': 25
            }
        },
        'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 8, 'num_block': 2},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None, **path},
        'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 2e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3, 6], 'gamma': 0.5}, 'total_iter': total_iter,
            'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        },
        'val': {
            'val_freq': 4, 'save_img': False,
            'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': 0, 'test_y_channel': False}}
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 4, 'use_tb_logger': False},
    }


def _run(tmp_path, opt, *flags):
    path = tmp_path / f'{opt["name"]}_{opt["train"]["total_iter"]}.yml'
    path.write_text(yaml.dump(opt))
    train.main(['-opt', str(path), *flags])
    return tmp_path / 'experiments' / opt['name']


def _weights(experiment, label='latest'):
    return torch.load(experiment / 'models' / f'net_g_{label}.pth')['params']


@pytest.mark.parametrize('num_images, how', [(6, 'resume_state'), (4, 'auto_resume')],
                         ids=['mid-epoch/resume_state', 'epoch-end/auto_resume'])
def test_resume_equals_uninterrupted_run(tmp_path, monkeypatch, num_images, how):
    # 6 images, batch 2: 3 iterations per epoch, the stop at 4 is inside epoch 1;
    # 4 images: 2 per epoch, the stop at 4 ends epoch 1.
    monkeypatch.chdir(tmp_path)
    train_root = _write_images(tmp_path / 'train', num_images)
    val_root = _write_images(tmp_path / 'val', 1, seed=1)
    full = _run(tmp_path, _options('full', train_root, val_root, 8))
    part = _run(tmp_path, _options('part', train_root, val_root, 4))
    assert (part / 'training_states' / '4.state').is_file()
    if how == 'resume_state':
        state = str(part / 'training_states' / '4.state')
        resumed = _run(tmp_path, _options('part', train_root, val_root, 8, resume_state=state))
    else:
        resumed = _run(tmp_path, _options('part', train_root, val_root, 8), '--auto_resume')
    expected, got, at_stop = _weights(full), _weights(resumed), _weights(part, 4)
    assert expected.keys() == got.keys()
    for key in expected:
        assert torch.equal(expected[key], got[key]), key
    assert any(not torch.equal(expected[k], at_stop[k]) for k in expected)  # it did train after resuming


def test_finetune_from_published_checkpoint(tmp_path, monkeypatch):
    """pretrain_network_g with the published Converse-DnCNN (a plain state dict) and the default param
    key; ema_decay > 0 also loads the EMA copy from it. (``param_key_g: ~``: see test_compat.py.)"""
    checkpoint = shared_path('reference', 'zoo', 'converse_dncnn.pth')
    monkeypatch.chdir(tmp_path)
    root = _write_images(tmp_path / 'train', 2)
    opt = _options('finetune', root, root, 1, pretrain_network_g=str(checkpoint))
    opt['network_g'] = {'type': 'ConverseDnCNN'}  # the published configuration
    opt['train']['ema_decay'] = 0.999
    opt['datasets']['train']['batch_size_per_gpu'] = 1
    del opt['val']
    loaded = {}
    build_model = basicsr.train.build_model

    def capture(o):
        model = build_model(o)
        loaded['net'] = {k: v.clone() for k, v in model.net_g.state_dict().items()}
        loaded['ema'] = {k: v.clone() for k, v in model.net_g_ema.state_dict().items()}
        return model

    monkeypatch.setattr(basicsr.train, 'build_model', capture)
    experiment = _run(tmp_path, opt)
    published = torch.load(checkpoint)
    for copy in ('net', 'ema'):
        assert loaded[copy].keys() == published.keys()
        for key in published:
            assert torch.equal(loaded[copy][key], published[key]), (copy, key)
    tuned = _weights(experiment)
    assert any(not torch.equal(tuned[k], published[k]) for k in published)
