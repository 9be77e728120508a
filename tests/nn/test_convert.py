"""Reverse convolution in other people's networks: ConverseUpsample, convert_upsamplers and the ConverseUp YAML arch.

Every BasicSR arch the converter knows (MSRResNet, EDSR, RCAN, RRDBNet, SwinIR in each upsampler variant) at a
small width: conversion by call and by YAML, output shapes at the scales the arch supports, forward + backward,
state-dict round trip, loading the original arch's checkpoint, three training iterations through BasicSR's
pipeline; the generic rule on a small U-Net (ConvTranspose2d) and on a model with nn.Upsample; bf16 autocast.
"""
import copy
import io
import logging
import math
import re

import cv2
import numpy as np
import pytest
import torch
import yaml
from torch import nn

from basicsr.archs import build_network
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr import train
from converse_basicsr.nn.converse_up_arch import ConverseUp
from converse_basicsr.nn.convert import ConversionError, convert_upsamplers, load_original_state_dict
from converse_basicsr.nn.layers import ConverseUpsample
from converse_basicsr.ops import Converse2D
from converse_basicsr.ops.literal import literal_converse2d
from tests.helpers.training import LogRecords, plain, smooth_image

SWIN = dict(img_size=8, embed_dim=12, depths=(1, ), num_heads=(2, ), window_size=4, mlp_ratio=1.)
SR = dict(num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1)


def _case(base, scale, converse_layers, removed):
    """A small base config, its scale, the Converse2D layers the conversion must create (name: stage scale)
    and the original layers whose weights it must drop."""
    case_id = f'{base["type"]}-{base.get("upsampler", "")}-x{scale}'
    return pytest.param(base, scale, converse_layers, removed, id=case_id)


def _pixelshuffle_layers(prefix, scale):
    stages = [3] if scale == 3 else [2] * int(math.log2(scale))
    return {f'{prefix}.up{i}': s for i, s in enumerate(stages, 1)}


CASES = [
    _case(dict(type='MSRResNet', **SR, upscale=2), 2, {'upconv1.up1': 2}, ['upconv1']),
    _case(dict(type='MSRResNet', **SR, upscale=3), 3, {'upconv1.up1': 3}, ['upconv1']),
    _case(dict(type='MSRResNet', **SR, upscale=4), 4, {'upconv1.up1': 2, 'upconv2.up1': 2}, ['upconv1', 'upconv2']),
    *[
        _case(
            dict(type='EDSR', **SR, upscale=s), s, _pixelshuffle_layers('upsample', s),
            ['upsample.0', 'upsample.2', 'upsample.4'][:len(_pixelshuffle_layers('', s))]) for s in (2, 3, 4, 8)
    ],
    *[
        _case(
            dict(type='RCAN', **SR, num_group=1, squeeze_factor=4, upscale=s), s, _pixelshuffle_layers('upsample', s),
            ['upsample.0', 'upsample.2'][:1 if s < 4 else 2]) for s in (2, 3, 4)
    ],
    *[
        _case(
            dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, scale=s, num_feat=8, num_block=1, num_grow_ch=4), s,
            {'upsample1.up1': 2, 'upsample2.up1': 2}, []) for s in (2, 4)
    ],
    *[
        _case(
            dict(type='SwinIR', **SWIN, upscale=s, upsampler=variant), s, _pixelshuffle_layers('upsample', s),
            ['upsample.0', 'upsample.2'][:1 if s < 4 or variant == 'pixelshuffledirect' else 2])
        for variant in ('pixelshuffle', 'pixelshuffledirect') for s in (2, 3, 4)
    ],
    _case(
        dict(type='SwinIR', **SWIN, upscale=4, upsampler='nearest+conv'), 4, {'upsample1.up1': 2, 'upsample2.up1': 2},
        []),
]


def _build_original(base, seed=0):
    torch.manual_seed(seed)
    opt = dict(base)
    return ARCH_REGISTRY.get(opt.pop('type'))(**opt)


def _build_converse_up(base, seed=1):
    torch.manual_seed(seed)
    return build_network({'type': 'ConverseUp', 'base': base})


def _converse_layers(model):
    return {name: m.scale for name, m in model.named_modules() if isinstance(m, Converse2D)}


@pytest.mark.parametrize('base, scale, converse_layers, removed', CASES)
def test_convert_by_call(base, scale, converse_layers, removed):
    original = _build_original(base)
    before = {k: v.clone() for k, v in original.state_dict().items()}
    model, report = convert_upsamplers(original)
    assert _converse_layers(model) == converse_layers
    for name in converse_layers:  # the paper's upsampler: kernel = stage scale, padding 2, replicate, eps 1e-3
        layer = model.get_submodule(name)
        assert (layer.kernel_size, layer.padding, layer.padding_mode, layer.eps) == (layer.scale, 2, 'replicate', 1e-3)
    assert isinstance(model, type(original))
    removed_keys = [f'{layer}.{p}' for layer in removed for p in ('weight', 'bias')]
    assert sorted(report.removed_keys) == sorted(removed_keys)
    assert {k.rsplit('.', 1)[0] for k in report.new_keys} >= set(converse_layers)
    assert report.params_before == sum(p.numel() for p in original.parameters())
    assert report.params_after == sum(p.numel() for p in model.parameters())
    # a copy was converted: the caller's model is untouched
    assert not _converse_layers(original) and original.state_dict().keys() == before.keys()

    x = torch.rand(2, 3, 8, 8, requires_grad=True)
    out = model(x)
    assert out.shape == (2, 3, 8 * scale, 8 * scale)
    out.square().mean().backward()
    assert torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0
    for name in converse_layers:
        grad = model.get_submodule(name).weight.grad
        assert grad is not None and torch.isfinite(grad).all() and grad.abs().sum() > 0, name


@pytest.mark.parametrize('base, scale, converse_layers, removed', CASES)
def test_yaml_state_dict_round_trip_and_original_checkpoint(base, scale, converse_layers, removed, tmp_path):
    net = _build_converse_up(base)
    assert type(net).__name__ == 'ConverseUp' and isinstance(net, ConverseUp)
    assert isinstance(net, type(_build_original(base))) or type(net).__mro__[2].__name__.startswith('Converted')
    by_call, _ = convert_upsamplers(_build_original(base))
    assert [(k, v.shape) for k, v in net.state_dict().items()] == \
        [(k, v.shape) for k, v in by_call.state_dict().items()]
    assert _converse_layers(net) == converse_layers

    # a converted model's state dict saves and loads strictly into the same wrapper config
    torch.save({'params': net.state_dict()}, tmp_path / 'net.pth')
    other = _build_converse_up(base, seed=2)
    other.load_state_dict(torch.load(tmp_path / 'net.pth', weights_only=True)['params'], strict=True)
    x = torch.rand(1, 3, 8, 8)
    with torch.no_grad():
        assert torch.equal(net.eval()(x), other.eval()(x))

    # a checkpoint of the original arch: every unchanged layer is reused, the new keys are reported
    original = _build_original(base, seed=3).state_dict()
    fresh = _build_converse_up(base, seed=4)
    new_keys = [k for k in fresh.state_dict() if k not in original]
    assert {k.rsplit('.', 1)[0] for k in new_keys} >= set(converse_layers)
    result = load_original_state_dict(fresh, {'params': original})
    assert result.new_keys == new_keys
    assert sorted(result.dropped_keys) == sorted(f'{layer}.{p}' for layer in removed for p in ('weight', 'bias'))
    state = fresh.state_dict()
    for key in state.keys() & original.keys():
        assert torch.equal(state[key], original[key]), key
    # plain load_state_dict(strict=False) agrees: the converted layers' keys never clash with the original's
    missing, unexpected = _build_converse_up(base).load_state_dict(original, strict=False)
    assert missing == new_keys and sorted(unexpected) == sorted(result.dropped_keys)


TRAIN_CASES = [
    'MSRResNet--x4', 'EDSR--x2', 'RCAN--x3', 'RRDBNet--x4', 'SwinIR-pixelshuffle-x2', 'SwinIR-pixelshuffledirect-x3',
    'SwinIR-nearest+conv-x4'
]


@pytest.fixture(scope='module')
def tiny_folder(tmp_path_factory):
    folder = tmp_path_factory.mktemp('tiny_convert')
    rng = np.random.RandomState(0)
    for i in range(4):
        cv2.imwrite(str(folder / f'img{i}.png'), smooth_image(rng, 32))
    return str(folder)


def _training_options(name, base, scale, folder):
    return {
        'name': name, 'model_type': 'SRModel', 'scale': scale, 'num_gpu': 0, 'manual_seed': 0, 'datasets': {
            'train': {
                'name': 'tiny', 'type': 'BicubicDownsampleDataset', 'dataroot_gt': folder,
                'io_backend': {'type': 'disk'}, 'color': 'rgb', 'gt_size': 8 * scale, 'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None
            }
        }, 'network_g': {'type': 'ConverseUp', 'base': base},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None}, 'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 3, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        }, 'logger': {'print_freq': 1, 'save_checkpoint_freq': 1000,
                      'use_tb_logger': False}, 'dist_params': {'backend': 'gloo', 'port': 29500}
    }


@pytest.mark.parametrize('base, scale, converse_layers, removed', [c for c in CASES if c.id in TRAIN_CASES],
                         ids=TRAIN_CASES)
def test_three_basicsr_training_iterations_from_yaml(base, scale, converse_layers, removed, tiny_folder, tmp_path,
                                                     monkeypatch):
    name = 'convert_' + re.sub(r'\W', '_', f'{base["type"]}_{base.get("upsampler", "")}_x{scale}')
    opt = _training_options(name, base, scale, tiny_folder)
    if base['type'] == 'EDSR':  # BasicSR's own loader with a checkpoint of the original arch, strict_load_g: false
        torch.save({'params': _build_original(base).state_dict()}, tmp_path / 'edsr.pth')
        opt['path'].update(pretrain_network_g=str(tmp_path / 'edsr.pth'), strict_load_g=False)
    config = tmp_path / 'train.yml'
    config.write_text(yaml.dump(plain(opt)))
    records, logger = LogRecords(), logging.getLogger('basicsr')
    level = logger.level
    logger.addHandler(records)
    logger.setLevel(logging.INFO)
    monkeypatch.chdir(tmp_path)
    try:
        train.main(['-opt', str(config)])
    finally:
        logger.removeHandler(records)
        logger.setLevel(level)
    log = '\n'.join(records.messages)
    assert [int(m) for m in re.findall(r'iter:\s+(\d+),', log)] == [1, 2, 3]
    losses = [float(v) for v in re.findall(r'l_pix: (\S+)', log)]
    assert len(losses) == 3 and all(math.isfinite(v) for v in losses), losses
    assert 'Network [ConverseUp] is created.' in log
    if base['type'] == 'EDSR':
        assert 'upsample.conv1.weight' in log and 'upsample.0.weight' in log  # BasicSR lists the differing keys
    saved = torch.load(tmp_path / 'experiments' / name / 'models' / 'net_g_latest.pth', weights_only=True)['params']
    _build_converse_up(base).load_state_dict(saved, strict=True)


def test_converted_msrresnet_is_the_papers_converse_up_srresnet():
    """MSRResNet ×4 converted computes ConverseUpMSRResNet (the paper's ConverseUp-SRResNet, written by hand)."""
    reference = ARCH_REGISTRY.get('ConverseUpMSRResNet')(num_feat=8, num_block=2).double().eval()
    net = _build_converse_up(dict(type='MSRResNet', num_feat=8, num_block=2)).double().eval()
    state = {
        re.sub(r'^upconv(\d)\.up1\.', r'up\1.', re.sub(r'^upconv(\d)\.conv1\.', r'upconv\1.', k)): v
        for k, v in net.state_dict().items()
    }
    reference.load_state_dict(state, strict=True)
    x = torch.rand(1, 3, 10, 12, dtype=torch.float64)
    with torch.no_grad():
        torch.testing.assert_close(net(x), reference(x), rtol=0, atol=1e-12)
    default = ConverseUp()
    assert sum(p.numel() for p in default.parameters()) == \
        sum(p.numel() for p in ARCH_REGISTRY.get('ConverseUpMSRResNet')().parameters())
    # the new convs get MSRResNet's init: kaiming normal (fan_in 64·3·3) scaled by 0.1, zero bias
    for conv in (default.upconv1.conv1, default.upconv2.conv1):
        assert abs(conv.weight.std().item() / (0.1 * math.sqrt(2 / 576)) - 1) < 0.05
        assert not conv.bias.any()


@pytest.mark.parametrize('scale, stages', [(2, [2]), (3, [3]), (4, [2, 2]), (8, [2, 2, 2])])
def test_converse_upsample_stages_shapes_and_defaults(scale, stages):
    up = ConverseUpsample(6, scale)
    assert [m.scale for m in up if isinstance(m, Converse2D)] == stages
    assert [type(m).__name__ for m in up] == ['Conv2d', 'Converse2D'] * len(stages)
    assert all((m.kernel_size, m.padding, m.padding_mode, m.eps) == (m.scale, 2, 'replicate', 1e-3) for m in up
               if isinstance(m, Converse2D))
    assert up(torch.rand(2, 6, 5, 7)).shape == (2, 6, 5 * scale, 7 * scale)
    one_step = ConverseUpsample(6, scale, num_out_ch=3)
    assert one_step(torch.rand(1, 6, 4, 4)).shape == (1, 3, 4 * scale, 4 * scale)
    bare = ConverseUpsample(6, scale, conv_kernel_size=0)
    assert all(isinstance(m, Converse2D) for m in bare) and len(bare) == len(stages)


def test_converse_upsample_is_the_stages_of_the_literal_algorithm():
    """Without convs, ×4 is two literal ×2 reverse convolutions (the float64 oracle of ops/literal.py)."""
    up = ConverseUpsample(3, 4, conv_kernel_size=0).double()
    with torch.no_grad():
        for m in up:
            m.bias.uniform_(-1, 1)
    x = torch.rand(2, 3, 6, 5, dtype=torch.float64)
    expected = x
    for m in up:
        expected = literal_converse2d(expected, m.weight, m.bias, 2, 2, 'replicate', 1e-3)
    with torch.no_grad():
        torch.testing.assert_close(up(x), expected, rtol=0, atol=1e-9 * expected.abs().max().item())


@pytest.mark.parametrize('kwargs, message', [
    (dict(num_feat=4, scale=5), 'scale must be 2^n (2, 4, 8, ...) or 3, got 5'),
    (dict(num_feat=4, scale=6), 'got 6'),
    (dict(num_feat=4, scale=1), 'got 1'),
    (dict(num_feat=4, scale=2.0), 'got 2.0'),
    (dict(num_feat=None, scale=2), 'num_feat must be a positive integer, got None'),
    (dict(num_feat=4, scale=2, num_out_ch=0), 'num_out_ch must be a positive integer, got 0'),
    (dict(num_feat=4, scale=2, conv_kernel_size=2), 'conv_kernel_size must be 0'),
    (dict(num_feat=4, scale=2, num_out_ch=3, conv_kernel_size=0), 'needs a convolution'),
    (dict(num_feat=4, scale=2, padding_mode='zeros'), 'padding_mode'),
])
def test_converse_upsample_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        ConverseUpsample(**kwargs)


class TinyUNet(nn.Module):
    """Two-level U-Net decoder with transposed convolutions (one dense with a channel change, one depthwise)."""

    def __init__(self):
        super().__init__()
        self.block = nn.Module()
        self.block.register_module('downsample', None)  # a slot holding no module, as in torchvision's ResNet
        self.enc = nn.Sequential(nn.Conv2d(3, 8, 3, 1, 1), nn.ReLU())
        self.down1 = nn.Conv2d(8, 16, 3, 2, 1)
        self.down2 = nn.Conv2d(16, 16, 3, 2, 1)
        self.up2 = nn.ConvTranspose2d(16, 16, 4, 2, 1, groups=16)
        self.up1 = nn.ConvTranspose2d(32, 8, 2, 2)
        self.out = nn.Sequential(nn.Conv2d(16, 3, 3, 1, 1), nn.ConvTranspose2d(3, 3, 3, 1, 1))

    def forward(self, x):
        e = self.enc(x)
        d1 = self.down1(e)
        d = torch.cat([self.up2(self.down2(d1)), d1], 1)
        return self.out(torch.cat([self.up1(d), e], 1))


def test_generic_rule_unet_conv_transpose():
    unet = TinyUNet().double()
    model, report = convert_upsamplers(unet)
    assert [name for name, _, _ in report.replaced] == ['up2', 'up1']
    assert [type(m).__name__ for m in model.up1] == ['Conv2d', 'Converse2D']
    conv = model.up1.conv1
    assert conv.kernel_size == (1, 1) and (conv.in_channels, conv.out_channels) == (32, 8)
    assert [type(m).__name__ for m in model.up2] == ['Converse2D']  # depthwise ConvT: a bare Converse2D
    assert report.skipped == [('out.1', 'ConvTranspose2d of stride 1: a convolution, not an upsampler')]
    assert isinstance(model.out[1], nn.ConvTranspose2d)
    # parameters: ConvT(32→8, 2×2) 32·8·4 + 8 → 1×1 conv 32·8 + 8 and Converse2D 8·(2·2) + 8;
    # depthwise ConvT(16, 4×4) 16·16 + 16 → Converse2D 16·(2·2) + 16
    dense, depthwise = 32 * 8 * 4 + 8 - (32 * 8 + 8 + 8 * 4 + 8), 16 * 16 - 16 * 4
    assert report.params_before - report.params_after == dense + depthwise
    assert next(model.up1.parameters()).dtype == torch.float64  # new layers follow the model's dtype
    x = torch.rand(2, 3, 16, 16, dtype=torch.float64)
    out = model(x)
    assert out.shape == unet(x).shape == (2, 3, 16, 16) and out.dtype == torch.float64
    out.mean().backward()
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


class UpsampleNet(nn.Module):

    def __init__(self):
        super().__init__()
        self.head = nn.Conv2d(3, 8, 3, 1, 1)
        self.tail = nn.Sequential(
            nn.Upsample(scale_factor=2, mode='nearest'), nn.Conv2d(8, 8, 3, 1, 1), nn.ReLU(),
            nn.Upsample(scale_factor=2.0, mode='bilinear'), nn.ReLU(), nn.Conv2d(8, 3, 3, 1, 1))
        self.skip = nn.Upsample(scale_factor=4, mode='bicubic')  # on the image itself: no neighbour tells its channels

    def forward(self, x):
        return self.tail(self.head(x)) + self.skip(x)


def test_generic_rule_nn_upsample():
    net = UpsampleNet()
    with pytest.raises(ConversionError, match=r"cannot convert skip \(Upsample\(.*example_input=.*exclude=\['skip'\]"):
        convert_upsamplers(net, inplace=True)
    assert not _converse_layers(net) and isinstance(net.tail[0], nn.Upsample)  # nothing half-converted

    model, report = convert_upsamplers(net, exclude=['skip'])
    assert _converse_layers(model) == {'tail.0.up1': 2, 'tail.3.up1': 2}
    assert model.tail[0].up1.in_channels == 8 and model.tail[3].up1.in_channels == 8
    assert report.skipped == [('skip', 'excluded')] and isinstance(model.skip, nn.Upsample)
    assert report.params_after - report.params_before == 2 * (8 * 2 * 2 + 8)

    x = torch.rand(1, 3, 8, 8)
    model, report = convert_upsamplers(net, example_input=x)
    assert _converse_layers(model) == {'tail.0.up1': 2, 'tail.3.up1': 2, 'skip.up1': 2, 'skip.up2': 2}
    assert model.skip.up1.in_channels == 3
    out = model(x)
    assert out.shape == (1, 3, 32, 32)
    out.mean().backward()
    assert torch.isfinite(model.skip.up2.weight.grad).all()


class _StrayShuffle(nn.Module):

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(4, 16, 3, 1, 1)
        self.shuffle = nn.PixelShuffle(2)

    def forward(self, x):
        return self.shuffle(self.conv(x))


@pytest.mark.parametrize('model, message', [
    (_StrayShuffle(), r"cannot convert shuffle \(PixelShuffle\(upscale_factor=2\)\): .*only right after a Conv2d"),
    (nn.Sequential(nn.Conv2d(3, 4, 3), nn.ConvTranspose2d(4, 4, 3, 2)), r'cannot convert 1 \(ConvTranspose2d.*not H·s'),
    (nn.Sequential(nn.ConvTranspose2d(4, 4, 2, (2, 1))), r'cannot convert 0 .*stride \(2, 1\)'),
    (nn.Sequential(nn.ConvTranspose2d(4, 8, 2, 2, groups=2)), r'cannot convert 0 .*grouped \(2 groups\)'),
    (nn.Sequential(nn.Upsample(size=(16, 16)), nn.Conv2d(4, 4, 3)), r'cannot convert 0 .*only one integer scale'),
    (nn.Sequential(nn.Upsample(scale_factor=1.5), nn.Conv2d(4, 4, 3)), r'cannot convert 0 .*only one integer'),
    (nn.Sequential(nn.Upsample(scale_factor=5), nn.Conv2d(4, 4, 3)), r'cannot convert 0 .*2\^n .* or 3, got 5'),
    (nn.Sequential(
        nn.Conv2d(4, 16, 3, 1, 1), nn.PixelShuffle(2), nn.ReLU(), nn.Conv2d(4, 100, 3, 2, 1),
        nn.PixelShuffle(5)), r'cannot convert 3 .*stride 1'),
    (nn.Sequential(nn.Conv2d(3, 3, 3)), r'Sequential: found no upsampler to convert'),
    (_build_original(dict(type='SwinIR', **SWIN,
                          upscale=1)), r"SwinIR\(upsampler=''\) is the ×1 denoising / JPEG model and has no upsampler"),
])
def test_unconvertible_layers_are_errors_naming_the_layer(model, message):
    with pytest.raises(ConversionError, match=message):
        convert_upsamplers(model)


def test_bad_options_and_exclude_names():
    with pytest.raises(ConversionError, match=r"exclude names no layer of TinyUNet: \['up3'\]"):
        convert_upsamplers(TinyUNet(), exclude=['up3'])
    with pytest.raises(ValueError, match='padding_mode'):
        convert_upsamplers(TinyUNet(), padding_mode='mirror')
    with pytest.raises(ValueError, match="network_g.base needs a 'type'"):
        ConverseUp(base={'num_feat': 8})
    with pytest.raises(ValueError, match='cannot be ConverseUp itself'):
        ConverseUp(base={'type': 'ConverseUp'})


def test_load_original_state_dict_refuses_another_arch():
    net = _build_converse_up(dict(type='EDSR', **SR, upscale=2))
    wider = _build_original(dict(type='EDSR', **{**SR, 'num_feat': 16}, upscale=2)).state_dict()
    with pytest.raises(ValueError, match=r'conv_first.weight has shape \(16, 3, 3, 3\), the model \(8, 3, 3, 3\)'):
        load_original_state_dict(net, wider)
    partial = {
        k: v
        for k, v in _build_original(dict(type='EDSR', **SR, upscale=2)).state_dict().items()
        if not k.startswith('body.')
    }
    with pytest.raises(ValueError, match='lacks 4 key'):
        load_original_state_dict(net, partial)


def test_converse_up_pickles_and_deep_copies():
    net = _build_converse_up(dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4))
    buffer = io.BytesIO()
    torch.save(net, buffer)
    buffer.seek(0)
    x = torch.rand(1, 3, 6, 6)
    for other in (torch.load(buffer, weights_only=False), copy.deepcopy(net)):
        assert type(other) is type(net) and other is not net
        with torch.no_grad():
            assert torch.equal(other(x), net(x))


class Neck(nn.Module):
    """The README's detection-neck pattern: P5 upsampled by reverse convolution and fused with P4."""

    def __init__(self, c5=16, c4=8):
        super().__init__()
        self.up = ConverseUpsample(c5, 2, conv_kernel_size=0)  # was nn.Upsample(scale_factor=2, mode='nearest')
        self.fuse = nn.Conv2d(c5 + c4, c4, 3, 1, 1)

    def forward(self, p5, p4):
        return self.fuse(torch.cat([self.up(p5).to(p4.dtype), p4], 1))


def test_bf16_autocast_training_step():
    """Converse2D runs in float32 and returns float32 under autocast; the rest of the model runs in bfloat16."""
    torch.manual_seed(0)
    model, _ = convert_upsamplers(_build_original(dict(type='EDSR', **SR, upscale=2)))
    neck = Neck()
    dtypes = []
    for m in [*model.modules(), *neck.modules()]:
        if isinstance(m, (Converse2D, nn.Conv2d)):
            m.register_forward_hook(lambda mod, args, out: dtypes.append((type(mod).__name__, out.dtype)))
    params = [*model.parameters(), *neck.parameters()]
    start = [p.detach().clone() for p in params]
    optimizer = torch.optim.Adam(params, lr=1e-3)
    x, target = torch.rand(2, 3, 8, 8), torch.rand(2, 3, 16, 16)
    with torch.autocast('cpu', dtype=torch.bfloat16):
        sr = model(x)
        p4 = neck.fuse(torch.cat([torch.rand(2, 16, 4, 4), torch.rand(2, 8, 4, 4)], 1))  # some bf16 feature map
        fused = neck(torch.rand(2, 16, 2, 2), p4)
        loss = (sr.float() - target).abs().mean() + fused.float().square().mean()
    assert fused.dtype == torch.bfloat16
    assert {d for name, d in dtypes if name == 'Converse2D'} == {torch.float32}
    assert {d for name, d in dtypes if name == 'Conv2d'} == {torch.bfloat16}
    loss.backward()
    optimizer.step()
    assert torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in params)
    assert all(not torch.equal(p, s) for p, s in zip(params, start))
