"""Every image recipe BasicSR 1.4.2 ships, with every Converse generator: converse-train trains 2 iterations on the
CPU (tiny widths), saves, resumes once (``--auto_resume``) and validates.

Rows: each model_type of :data:`tests.helpers.recipes.MODEL_TYPES` × each generator of ``GENERATORS`` (every
registered Converse arch BasicSR's SR models can call, ConverseUp on RRDBNet/EDSR/SwinIR, a SpandrelNet file).
The default run keeps one row per model_type (the two of issue 37's "done when" among them), with the perceptual
loss off (``perceptual_opt: ~``); ``-m slow`` runs the rest, each with the perceptual loss: BasicSR's own VGG code
on a random-weight VGG19 file written where BasicSR looks for it (``basicsr.archs.vgg_arch.VGG_PRETRAIN_PATH``,
pointed into the test's folder), so nothing is downloaded. The shipped SRGAN- and Real-ESRGAN-style configs
(options/train/gan/) run here too (``-m slow``), shrunk the same way.
"""
import glob
import logging
import math
import re
from os import path as osp

import pytest
import yaml

import basicsr.archs.vgg_arch
from basicsr.utils.options import ordered_yaml
from converse_basicsr import train
from converse_basicsr.training.option_checks import check_color_channels, check_options
from tests.helpers.recipes import GENERATORS, MODEL_TYPES, recipe, write_data, write_random_vgg19
from tests.helpers.training import LogRecords, plain

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
GAN_CONFIGS = sorted(glob.glob(osp.join(REPO, 'options', 'train', 'gan', '*.yml')))
VGG_D = {'type': 'VGGStyleDiscriminator', 'num_in_ch': 3, 'num_feat': 4, 'input_size': 128}
# The default run: one row per model_type, (generator, discriminator, perceptual loss, optimizer, Real-ESRGAN's
# degradations). The perceptual loss (two VGG19 builds per row, ~10 s here) runs in the slow rows and the shipped
# GAN configs. RealESRNetModel trains on paired data there (high_order_degradation: false, BasicSR's fine-tuning
# mode): the synthesis on BasicSR's fixed 400² crops costs ~10 s per iteration here; RealESRGANModel runs it.
DEFAULT_ROWS = {
    'SRModel': ('ConverseDnCNN', None, False, 'AdamW', True),
    'SRGANModel': ('ConverseMSRResNet', VGG_D, False, 'Adam', True),
    'ESRGANModel': ('ConverseUp[EDSR]', None, False, 'RMSprop', True),
    'RealESRNetModel': ('SpandrelNet', None, False, 'Adam', False),
    'RealESRGANModel': ('ConverseUp[RRDBNet]', None, False, 'Adam', True),
    'SwinIRModel': ('ConverseUp[SwinIR]', None, False, 'SGD', True),
}
ROWS = [
    pytest.param(model_type, generator, *(DEFAULT_ROWS[model_type][1:] if default else (None, True, 'Adam', True)),
                 id=f'{model_type}-{generator}', marks=() if default else pytest.mark.slow)
    for model_type in MODEL_TYPES for generator in GENERATORS for default in [DEFAULT_ROWS[model_type][0] == generator]
]


@pytest.fixture(scope='module')
def data(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp('recipe_data'))


@pytest.fixture(scope='module')
def vgg19_file(tmp_path_factory):
    return write_random_vgg19(tmp_path_factory.mktemp('vgg') / 'vgg19-dcbb9e9d.pth')


def run_recipe(opt, tmp_path, monkeypatch, vgg19_file=None):
    """converse-train on ``opt``: 1 iteration (a training state saved), then ``--auto_resume`` to 2 and validation.
    Returns the two runs' logs."""
    # no file: a perceptual loss would try to download (and fail here); the rows without one set it off (~)
    monkeypatch.setattr(basicsr.archs.vgg_arch, 'VGG_PRETRAIN_PATH', str(vgg19_file or tmp_path / 'no_vgg.pth'))
    monkeypatch.chdir(tmp_path)
    config = tmp_path / f'{opt["name"]}.yml'
    logs = []
    logger, level = logging.getLogger('basicsr'), logging.getLogger('basicsr').level
    logger.setLevel(logging.INFO)  # BasicSR sets it only if its first logger call is the pipeline's
    try:
        for total_iter, flags in ((1, []), (2, ['--auto_resume'])):
            opt['train']['total_iter'] = total_iter
            config.write_text(yaml.dump(plain(opt)))
            records = LogRecords()
            logger.addHandler(records)
            try:
                assert train.main(['-opt', str(config)] + flags) == 0
            finally:
                logger.removeHandler(records)
            logs.append('\n'.join(records.messages))
    finally:
        logger.setLevel(level)
    experiment = tmp_path / 'experiments' / opt['name']
    assert (experiment / 'models' / 'net_g_latest.pth').is_file()
    assert (experiment / 'training_states' / '1.state').is_file()
    first, second = logs
    assert re.findall(r'iter:\s+(\d+),', first) == ['1'] and re.findall(r'iter:\s+(\d+),', second) == ['2']
    assert 'Resuming training from epoch: ' in second and 'iter: 1.' in second
    psnr = [float(v) for v in re.findall(r'# psnr: (-?[\d.]+|nan|inf)', second)]
    assert len(psnr) == 1 and math.isfinite(psnr[0]), second[-2000:]
    return logs


@pytest.mark.parametrize('model_type, generator, network_d, perceptual, optimizer, degrade', ROWS)
def test_recipe_trains_saves_resumes_and_validates(model_type, generator, network_d, perceptual, optimizer, degrade,
                                                   data, tmp_path, monkeypatch, request):
    name = re.sub(r'\W', '_', f'{model_type}_{generator}')
    opt = recipe(name, model_type, generator, data, network_d, perceptual, optimizer, degrade)
    check_options(opt, name)
    check_color_channels(opt)
    vgg19_file = request.getfixturevalue('vgg19_file') if perceptual else None
    first, _ = run_recipe(opt, tmp_path, monkeypatch, vgg19_file)
    assert ('Loss [PerceptualLoss] is created.' in first) == perceptual
    assert f'Model [{model_type}] is created.' in first
    if perceptual:
        assert re.search(r'l_(g_)?percep: ', first)
    if network_d:
        assert f'Network [{network_d["type"]}] is created.' in first


def shrink_gan_config(opt, data):
    """A shipped GAN config on the test's data, with tiny widths (the recipe, losses and degradations as shipped)."""
    opt['num_gpu'] = 0
    for phase, dataset in opt['datasets'].items():
        val = phase != 'train'
        dataset.update(dataroot_gt=data['val_gt' if val else 'gt'], io_backend={'type': 'disk'})
        if 'dataroot_lq' in dataset:
            dataset['dataroot_lq'] = data['val_lq' if val else 'lq'][opt['scale']]
        if 'meta_info' in dataset:
            dataset['meta_info'] = data['meta']
        if phase == 'train':
            dataset.update(batch_size_per_gpu=2, num_worker_per_gpu=0, dataset_enlarge_ratio=1, prefetch_mode=None)
            dataset['gt_size'] = opt['network_d'].get('input_size', 32)
    if 'gt_size' in opt:
        opt['gt_size'], opt['queue_size'] = opt['datasets']['train']['gt_size'], 4
    for net in (opt['network_g'], opt['network_g'].get('base') or {}, opt['network_d']):
        for key, small in (('num_block', 1), ('num_feat', 8), ('num_grow_ch', 4)):
            if key in net:
                net[key] = small
    opt['path'].update(pretrain_network_g=None, pretrain_network_d=None)
    opt['val']['val_freq'] = 10**9
    opt['logger'].update(print_freq=1, save_checkpoint_freq=1, use_tb_logger=False)
    opt['logger'].pop('wandb', None)
    return opt


def test_shipped_gan_configs_exist():
    names = {osp.basename(p) for p in GAN_CONFIGS}
    assert {'train_ConverseSRResNet_SRGAN_x4.yml', 'train_ConverseUp_RRDBNet_RealESRGAN_x4.yml'} <= names


@pytest.mark.slow
@pytest.mark.parametrize('config', GAN_CONFIGS, ids=osp.basename)
def test_shipped_gan_config_trains(config, data, vgg19_file, tmp_path, monkeypatch):
    with open(config, encoding='utf-8') as f:
        opt = yaml.load(f, Loader=ordered_yaml()[0])
    check_options(opt, config)
    opt = shrink_gan_config(plain(opt), data)
    first, _ = run_recipe(opt, tmp_path, monkeypatch, vgg19_file)
    assert 'l_g_percep: ' in first and 'l_g_gan: ' in first
