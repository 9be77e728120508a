"""Every training config under options/train/ trains for two iterations and validates once.

The test is parametrised over a glob, so a new YAML is covered without a new test. Each config is
run through the real entry point (``converse_basicsr.train.main`` → ``basicsr.train.train_pipeline``)
on the CPU, with its dataroots pointed at a tiny generated dataset (a folder, or an LMDB for
``io_backend: lmdb``) and its kernels at generated 7×7 kernels. To keep the whole file at a few
seconds per config the test shrinks what only costs time — patch size, batch, number of blocks,
iterations of the unrolled nets, feature width — and keeps every other key (dataset type and its
degradation settings, arch type and operator, model type, loss, optimizer, scheduler, metrics).
The full-size archs are exercised against the published checkpoints elsewhere.
"""
import glob
import logging
import math
import re
from os import path as osp

import cv2
import numpy as np
import pytest
import torch
import yaml

import basicsr.train
from basicsr.utils.options import ordered_yaml
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr import train
from converse_basicsr.training.option_checks import check_color_channels
from tests.helpers.training import LogRecords, plain, smooth_image  # noqa: E402

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
# options/train/gan/ (GAN recipes, perceptual loss): tests/training/test_recipes.py runs them
CONFIGS = sorted(
    p for p in glob.glob(osp.join(REPO, 'options', 'train', '**', '*.yml'), recursive=True)
    if f'{osp.sep}gan{osp.sep}' not in p)
TINY_IMAGE = 40  # side of the generated images


def _gaussian_kernel(size, sigma):
    ax = np.arange(size) - size // 2
    k = np.exp(-(ax[:, None]**2 + ax[None]**2) / (2 * sigma**2))
    return k / k.sum()


@pytest.fixture(scope='module')
def tiny_data(tmp_path_factory):
    from basicsr.utils.lmdb_util import make_lmdb_from_imgs
    root = tmp_path_factory.mktemp('tiny_data')
    folder = root / 'images'
    folder.mkdir()
    rng = np.random.RandomState(0)
    names = []
    for i in range(3):
        names.append(f'img{i}.png')
        cv2.imwrite(str(folder / names[-1]), smooth_image(rng, TINY_IMAGE))
    lmdb_path = str(root / 'images.lmdb')
    make_lmdb_from_imgs(str(folder), lmdb_path, names, [osp.splitext(n)[0] for n in names])
    kernels = root / 'kernels'
    kernels.mkdir()
    for k in range(1, 6):
        np.save(kernels / f'kernel_{k}.npy', _gaussian_kernel(7, 0.5 + 0.4 * k))
    return {'folder': str(folder), 'lmdb': lmdb_path, 'kernels': str(kernels)}


def shrink_for_test(opt, data, name):
    """The tiny, fast version of a training config (see the module docstring for why)."""
    opt['name'] = name
    opt['num_gpu'] = 0
    for phase, dataset in opt['datasets'].items():
        lmdb = (dataset.get('io_backend') or {}).get('type') == 'lmdb'
        dataset['dataroot_gt'] = data['lmdb'] if lmdb else data['folder']
        dataset.pop('meta_info', None)
        kernel_path = dataset.get('kernel_path')
        if kernel_path is not None:  # val: kernel_<k>.npy → the generated kernel_<k>.npy; train: the bank folder
            names = [osp.basename(p) for p in (kernel_path if isinstance(kernel_path, list) else [kernel_path])]
            dataset['kernel_path'] = ([osp.join(data['kernels'], n)
                                       for n in names] if phase != 'train' or all(n.endswith('.npy')
                                                                                  for n in names) else data['kernels'])
        if phase == 'train':
            dataset['gt_size'] = 8 * opt.get('scale', 1) if opt.get('scale', 1) > 1 else 24
            dataset.update(batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1, prefetch_mode=None)
    for net in (opt['network_g'], opt['network_g'].get('base') or {}):  # base: the arch a ConverseUp wraps
        for key, small in (('num_block', 1), ('num_iter', 2), ('num_feat', 16)):
            if key in net:
                net[key] = small
    opt['train']['total_iter'] = 2
    opt['val']['val_freq'] = 10**9  # no validation during training: only the one after it
    opt['logger'].update(print_freq=1, save_checkpoint_freq=2, use_tb_logger=False)
    opt['logger'].pop('wandb', None)
    return opt


def test_configs_found():
    assert len(CONFIGS) >= 12, CONFIGS


@pytest.mark.parametrize('config', CONFIGS, ids=lambda p: osp.relpath(p, osp.join(REPO, 'options', 'train')))
def test_config_trains_two_iterations_and_validates(config, tiny_data, tmp_path, monkeypatch):
    with open(config, encoding='utf-8') as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    assert opt['name'] and opt['model_type'] and opt['network_g']['type'] and 'val' in opt
    val_names = [d['name'] for phase, d in opt['datasets'].items() if phase.startswith('val')]
    assert val_names, f'{config} has no validation set'
    name = 'cfg_' + osp.splitext(osp.basename(config))[0]
    opt = shrink_for_test(opt, tiny_data, name)
    small = tmp_path / osp.basename(config)
    with open(small, 'w', encoding='utf-8') as f:
        yaml.dump(dict(plain(opt)), f)

    built = {}
    build_model, build_dataset = basicsr.train.build_model, basicsr.train.build_dataset
    monkeypatch.setattr(basicsr.train, 'build_model', lambda o: built.setdefault('model', build_model(o)))
    monkeypatch.setattr(basicsr.train, 'build_dataset', lambda o: built.setdefault(o['name'], build_dataset(o)))
    records, logger = LogRecords(), logging.getLogger('basicsr')
    level = logger.level  # BasicSR sets INFO only if its first logger call is the pipeline's
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    monkeypatch.chdir(tmp_path)
    try:
        assert train.main(['-opt', str(small)]) == 0
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)

    model = built['model']
    net = model.get_bare_model(model.net_g)
    assert type(model).__name__ == opt['model_type']
    assert type(net).__name__ == opt['network_g']['type']
    for phase, dataset in opt['datasets'].items():
        assert type(built[dataset['name']]).__name__ == dataset['type']
    # a BasicSR arch of its own (the ablation's plain EDSR) has no Converse2D; the package's archs do unless
    # their operator says otherwise
    basicsr_arch = ARCH_REGISTRY.get(opt['network_g']['type']).__module__.startswith('basicsr.')
    operator = opt['network_g'].get('operator', 'conv' if basicsr_arch else 'converse')
    has_converse = any(type(m).__name__ == 'Converse2D' for m in net.modules())
    assert has_converse == (operator == 'converse')

    iters = [int(m) for m in re.findall(r'iter:\s+(\d+),', '\n'.join(records.messages))]
    assert iters == [1, 2]
    experiment = tmp_path / 'experiments' / name
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert (experiment / 'training_states' / '2.state').is_file()
    for val_name in val_names:
        logs = [m for m in records.messages if m.startswith(f'Validation {val_name}\n')]
        assert len(logs) == 1, f'{val_name}: {len(logs)} validations'
        values = [float(v) for v in re.findall(r'# \w+: (-?[\d.]+|nan|inf)', logs[0])]
        assert values and all(math.isfinite(v) for v in values), logs[0]
    saved = torch.load(experiment / 'models' / 'net_g_latest.pth')['params']
    assert saved.keys() == net.state_dict().keys()


@pytest.mark.parametrize('color, network_g, message', [
    ('rgb', {'type': 'ConverseDnCNN'}, "datasets.train.color is 'rgb' (3-channel images) but network_g.num_in_ch is 1"),
    ('gray', {'type': 'ConverseMSRResNet'
              }, "datasets.train.color is 'gray' (1-channel images) but network_g.num_in_ch is 3"),
    ('gray', {'type': 'ConverseNet', 'num_in_ch': 3
              }, "datasets.train.color is 'gray' (1-channel images) but network_g.num_in_ch is 3"),
    ('grey', {'type': 'ConverseDnCNN'}, "datasets.train.color must be one of"),
])
def test_color_channel_mismatch_is_an_error_naming_both_keys(tmp_path, monkeypatch, capsys, color, network_g, message):
    """Checked by the entry point before anything is built (the arch's default channels count too)."""
    opt = {
        'name': 'mismatch', 'model_type': 'SRModel', 'num_gpu': 0, 'network_g': network_g, 'datasets': {
            'train': {
                'name': 't', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(tmp_path), 'color': color, 'sigma': 25,
                'gt_size': 8
            }
        }, 'path': {}, 'logger': {}, 'train': {
            'total_iter': 1, 'optim_g': {'type': 'Adam', 'lr': 1e-3}, 'pixel_opt': {'type': 'L1Loss'},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10]}
        }
    }
    config = tmp_path / 'mismatch.yml'
    config.write_text(yaml.dump(opt))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config)]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / 'experiments').exists()


def test_matching_channels_pass_the_check():
    check_color_channels({'network_g': {'type': 'ConverseDnCNN'}, 'datasets': {'val': {'color': 'gray'}}})
    check_color_channels(
        {'network_g': {'type': 'ConverseMSRResNet'},
         'datasets': {'val': {'type': 'BicubicDownsampleDataset'}}})  # rgb by default
    check_color_channels({'network_g': {'type': 'ConverseDnCNN'}, 'datasets': {'val': {'type': 'Other'}}})
    check_color_channels({
        'network_g': {'type': 'MSRResNet', 'num_in_ch': 1},
        'datasets': {'train': {'type': 'PairedImageDataset', 'color': 'y'}}
    })
