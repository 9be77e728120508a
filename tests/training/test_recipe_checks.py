"""The option check agrees with what BasicSR runs (issue 37's table): registry names with the ``_basicsr`` suffix,
``~`` for a loss that is off, the optimizers converse-train builds, frequencies BasicSR divides by, each model's
required entries, the colour rule for RGB-by-default datasets; and ``converse-train --help`` / ``--check-data``
tell the truth."""
import copy
from os import path as osp

import cv2
import numpy as np
import pytest
import yaml

from converse_basicsr import train
from converse_basicsr.training import pipeline
from converse_basicsr.training.compat import OPTIMIZERS
from converse_basicsr.training.option_checks import OptionError, check_color_channels, check_options, load_options
from tests.helpers.recipes import recipe

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
DATA = {
    'gt': 'gt', 'lq': {1: 'lq1', 2: 'lq2', 4: 'lq4'}, 'val_gt': 'v', 'val_lq': {1: 'v1', 2: 'v2', 4: 'v4'},
    'meta': 'meta.txt', 'spandrel': 'net.pth'
}  # never read: check_options does not open files
REAL_ESRGAN = osp.join(REPO, 'options', 'train', 'gan', 'train_ConverseUp_RRDBNet_RealESRGAN_x4.yml')


def _opt(model_type='SRGANModel', generator='ConverseMSRResNet', **kwargs):
    return recipe('checked', model_type, generator, DATA, **kwargs)


def _errors(opt):
    try:
        check_options(opt, 'f.yml')
    except OptionError as error:
        return str(error)
    return ''


def test_basicsr_real_esrgan_recipe_passes():
    """BasicSR's own Real-ESRGAN names: UNetDiscriminatorSN, RealESRGANModel, RealESRGANDataset (all registered
    with the _basicsr suffix, found by Registry.get without it)."""
    opt = load_options(REAL_ESRGAN)
    assert (opt['network_d']['type'], opt['model_type'], opt['datasets']['train']['type']) == \
        ('UNetDiscriminatorSN', 'RealESRGANModel', 'RealESRGANDataset')
    check_options(opt, REAL_ESRGAN)
    check_color_channels(opt)
    opt['network_d']['num_feats'] = 3  # its keys are checked too, once its name resolves
    assert "network_d.num_feats is not an option of UNetDiscriminatorSN (did you mean 'num_feat'?)" in _errors(opt)
    opt['network_d'] = {'type': 'UNetDiscriminatorS'}
    assert "network_d.type 'UNetDiscriminatorS' is not a known arch" in _errors(opt)


@pytest.mark.parametrize('key', ['perceptual_opt', 'pixel_opt'])
def test_tilde_switches_a_loss_off(key):
    opt = _opt(perceptual=True)
    opt['train'][key] = None
    assert _errors(opt) == ''
    opt = _opt('SRModel', 'ConverseDnCNN')
    opt['train']['pixel_opt'] = opt['train']['perceptual_opt'] = None
    assert 'train.pixel_opt and train.perceptual_opt are both off: SRModel needs' in _errors(opt)


@pytest.mark.parametrize('optimizer', OPTIMIZERS)
def test_optimizers_converse_train_builds_pass(optimizer):
    assert _errors(_opt(optimizer=optimizer)) == ''


@pytest.mark.parametrize('optimizer', ['LBFGS', 'SparseAdam', 'Adagrad'])
def test_other_optimizers_are_refused(optimizer):
    message = f'train.optim_g.type {optimizer!r} is not a known torch.optim optimizer'
    assert message in _errors(_opt(optimizer=optimizer))


@pytest.mark.parametrize('where', [('val', 'val_freq'), ('logger', 'print_freq'), ('logger', 'save_checkpoint_freq'),
                                   ('datasets', 'train', 'dataset_enlarge_ratio')])
@pytest.mark.parametrize('value', [0, 0.5, None])
def test_frequencies_basicsr_divides_by_are_at_least_one(where, value):
    opt = _opt()
    entry = opt
    for key in where[:-1]:
        entry = entry[key]
    entry[where[-1]] = value
    expected = 'a number, got None' if value is None else f'a number >= 1, got {value!r}'
    assert f'{".".join(where)} must be {expected}' in _errors(opt)


@pytest.mark.parametrize('change, message', [
    (lambda o: o.pop('network_d'), 'network_d is missing: SRGANModel trains a discriminator'),
    (lambda o: o['train'].pop('optim_d'), 'train.optim_d is missing: SRGANModel reads it'),
    (lambda o: o['train'].update(gan_opt=None), 'train.gan_opt is missing or ~: SRGANModel needs its GAN loss'),
    (lambda o: o['train'].update(gan_opt={'type': 'L1Loss'}), "train.gan_opt.type 'L1Loss' does not fit there"),
    (lambda o: o['train'].update(pixel_opt={'type': 'GANLoss', 'gan_type': 'vanilla'}),
     "train.pixel_opt.type 'GANLoss' does not fit there"),
    (lambda o: o['train'].pop('scheduler'), 'train.scheduler is missing: SRGANModel reads it'),
])
def test_what_the_model_reads_is_required(change, message):
    opt = _opt()
    assert _errors(opt) == ''
    change(opt)
    assert message in _errors(opt)


def test_real_esrgan_degradation_keys_and_queue():
    opt = _opt('RealESRGANModel', 'ConverseUp[RRDBNet]')
    assert _errors(opt) == ''
    bad = copy.deepcopy(opt)
    del bad['jpeg_range2'], bad['gan_gt_usm']
    assert 'RealESRGANModel makes its training pairs from top-level degradation keys; missing: jpeg_range2, ' \
        'gan_gt_usm' in _errors(bad)
    bad = dict(opt, queue_size=5)
    assert 'queue_size (5) must be a multiple of datasets.train.batch_size_per_gpu (2)' in _errors(bad)
    paired = _opt('RealESRNetModel', 'SpandrelNet', degrade=False)  # high_order_degradation: false needs none
    assert _errors(paired) == ''


def test_checks_for_training_only_leave_test_configs_alone():
    opt = _opt()
    del opt['network_d'], opt['train']['optim_d']
    check_options(opt, 'test.yml', is_train=False)


def test_rgb_by_default_dataset_into_a_gray_network_is_refused(tmp_path, monkeypatch, capsys):
    """GaussianNoiseDataset without ``color`` delivers RGB: a 1-channel ConverseDnCNN is refused before training."""
    (tmp_path / 'img').mkdir()
    opt = {
        'name': 'default_rgb', 'model_type': 'SRModel', 'num_gpu': 0, 'network_g': {'type': 'ConverseDnCNN'},
        'datasets': {
            'train': {
                'name': 't', 'type': 'GaussianNoiseDataset', 'dataroot_gt': str(tmp_path / 'img'), 'sigma': 25,
                'gt_size': 8
            }
        }, 'path': {}, 'train': {
            'total_iter': 1, 'optim_g': {'type': 'Adam', 'lr': 1e-3},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [10]}, 'pixel_opt': {'type': 'L1Loss'}
        }, 'logger': {'print_freq': 1, 'save_checkpoint_freq': 1}
    }
    config = tmp_path / 'c.yml'
    config.write_text(yaml.dump(opt))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config)]) == 2
    assert "datasets.train.color is 'rgb' (3-channel images) but network_g.num_in_ch is 1" in capsys.readouterr().err
    assert not (tmp_path / 'experiments').exists()
    for dataset, net in (('RealESRGANDataset', {'type': 'ConverseDnCNN'}),
                         ('PairedImageDataset', {'type': 'ConverseUp', 'base': {'type': 'EDSR', 'num_in_ch': 1}})):
        with pytest.raises(OptionError, match='3-channel images'):
            check_color_channels({'network_g': net, 'datasets': {'train': {'type': dataset}}})


def test_help_lists_every_flag(monkeypatch, capsys):
    assert train.main(['--help']) == 0
    out = capsys.readouterr().out
    ours = [s for action in pipeline.entry_parser()._actions for s in action.option_strings]
    assert {'-opt', '--config', '--check-data', '--import'} <= set(ours)
    for flag in ours + ['--launcher', '--auto_resume', '--debug', '--local_rank', '--force_yml']:
        assert flag in out, flag
    assert 'exit status' in out and '3 --check-data could check none' in out
    original = pipeline.entry_parser

    def with_a_new_flag():  # a flag added to the package's parser later shows without touching the help
        parser = original()
        parser.add_argument('--extra-flag', action='store_true', help='a flag added later')
        return parser

    monkeypatch.setattr(pipeline, 'entry_parser', with_a_new_flag)
    assert train.main(['-h']) == 0
    assert '--extra-flag' in capsys.readouterr().out


def test_check_data_says_what_it_could_not_check(tmp_path, monkeypatch, capsys):
    """A config of BasicSR datasets only: named as not checked, and a distinct exit status (3), not a pass."""
    for folder in ('gt', 'lq4', 'v', 'v4'):
        (tmp_path / folder).mkdir()
        cv2.imwrite(str(tmp_path / folder / '0.png'), np.zeros((8, 8, 3), np.uint8))
    opt = recipe(
        'paired', 'SRModel', 'ConverseMSRResNet', {
            'gt': str(tmp_path / 'gt'), 'lq': {4: str(tmp_path / 'lq4')}, 'val_gt': str(tmp_path / 'v'),
            'val_lq': {4: str(tmp_path / 'v4')}, 'spandrel': ''
        })
    config = tmp_path / 'paired.yml'
    config.write_text(yaml.dump(opt))
    monkeypatch.chdir(tmp_path)
    assert train.main(['-opt', str(config), '--check-data']) == pipeline.NOTHING_CHECKED == 3
    err = capsys.readouterr().err
    assert 'datasets.train: NOT CHECKED: PairedImageDataset' in err
    assert (f'checked 0 image(s) of {config}: 0 bad; NOT CHECKED: datasets.train (PairedImageDataset), '
            'datasets.val (PairedImageDataset)') in err
    assert 'nothing was checked' in err


@pytest.mark.parametrize('change, message', [
    (lambda o: o['datasets']['train'].pop('sinc_prob2'), 'datasets.train.sinc_prob2 is missing: RealESRGANDataset'),
    (lambda o: o['datasets']['train'].update(blur_sigmaa=[0.2, 3]),
     "datasets.train.blur_sigmaa is not an option of RealESRGANDataset (did you mean 'blur_sigma'?)"),
    (lambda o: o['datasets']['train'].update(kernel_prob='x'), 'datasets.train.kernel_prob must be a list of numbers'),
    (lambda o: o['train'].update(perceptual_opt={'type': 'PerceptualLoss', 'layer_weights': {'conv54': 1}}),
     "train.perceptual_opt.layer_weights.conv54 is not a layer of vgg19 (did you mean 'conv5_4'?)"),
    (lambda o: o['train'].update(perceptual_opt={'type': 'PerceptualLoss', 'layer_weights': 5}),
     'train.perceptual_opt.layer_weights must be a mapping of VGG layer names to weights'),
])
def test_real_esrgan_dataset_and_perceptual_entries_are_checked(change, message):
    opt = load_options(REAL_ESRGAN)
    change(opt)
    assert message in _errors(opt)
