"""The model front door (hub/resolver.py) and self-describing checkpoints (hub/description.py): the issue 36 rows
that need no training run."""
import warnings

import numpy as np
import pytest
import spandrel
import torch
import yaml
from spandrel.architectures.DRUNet import DRUNet
from spandrel.architectures.SwinIR import SwinIR

import converse_basicsr.spandrel_support as cs
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.hub.description import KEY, attach, make_description, safetensors_metadata
from converse_basicsr.hub.resolver import default_labels, parse_model_arg, resolve
from converse_basicsr.hub.zoo import ZooError
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.training.basicsr_keys import converse_up_errors

SETTINGS = dict(num_in_ch=1, num_feat=4, num_block=2, padding=3, padding_mode='reflect', eps=1e-2)


def _dncnn(seed=0, **kwargs):
    torch.manual_seed(seed)
    return ARCH_REGISTRY.get('ConverseDnCNN')(**dict(SETTINGS, **kwargs)).eval()


def _described(path, net, kwargs=SETTINGS):
    description = make_description('ConverseDnCNN', kwargs, name='run')
    torch.save({'params': attach(net.state_dict(), description), KEY: description}, path)
    return path


@torch.no_grad()
def test_described_checkpoint_rebuilds_the_saved_settings_everywhere(tmp_path):
    net, x = _dncnn(), torch.rand(1, 1, 19, 23)
    path = _described(tmp_path / 'net_g_latest.pth', net)
    resolved = resolve(path)
    assert resolved.kind == 'described' and resolved.info['kwargs']['padding_mode'] == 'reflect'
    assert torch.equal(resolved.module(x), net(x))
    cs.install()
    assert (spandrel.ModelLoader().load_from_file(path).model(x) - net(x)).abs().max() <= 1e-5
    # the same through a plain state dict (its _metadata) and a .safetensors file (its metadata)
    torch.save(attach(net.state_dict(), make_description('ConverseDnCNN', SETTINGS)), tmp_path / 'plain.pth')
    from safetensors.torch import save_file
    save_file(net.state_dict(), tmp_path / 'n.safetensors',
              metadata=safetensors_metadata(make_description('ConverseDnCNN', SETTINGS)))
    for other in ('plain.pth', 'n.safetensors'):
        assert torch.equal(resolve(tmp_path / other).module(x), net(x)), other


def test_a_value_contradicting_the_file_names_both(tmp_path):
    path = _described(tmp_path / 'a.pth', _dncnn())
    with pytest.raises(ZooError, match=r'eps=1e-05 contradicts .*a.pth.* eps=0.01'):
        resolve(path, arch_kwargs={'eps': 1e-5})
    with pytest.raises(ZooError, match='--arch ConverseNet contradicts .*describes a ConverseDnCNN'):
        resolve(path, arch='ConverseNet')
    assert resolve(path, arch='ConverseDnCNN', arch_kwargs={'eps': 0.01}).kind == 'arch'  # agreeing: fine


def test_plain_state_dict_prints_one_assumed_line(tmp_path, capsys):
    net = _dncnn()
    torch.save(net.state_dict(), tmp_path / 'plain.pth')
    resolved = resolve(tmp_path / 'plain.pth')
    lines = [line for line in capsys.readouterr().err.splitlines() if line]
    assert resolved.kind == 'spandrel' and len(lines) == 1
    assert 'plain.pth' in lines[0] and 'assumed' in lines[0] and '--arch-kwargs' in lines[0]
    for setting in ('padding=6', 'padding_mode="circular"', 'eps=1e-05'):  # ConverseDnCNN's defaults, named
        assert setting in lines[0]


@torch.no_grad()
def test_run_yaml_beside_models_describes_an_old_checkpoint(tmp_path):
    net, x = _dncnn(), torch.rand(1, 1, 17, 17)
    (tmp_path / 'run' / 'models').mkdir(parents=True)
    (tmp_path / 'run' / 'train.yml').write_text(yaml.safe_dump({'network_g': dict(SETTINGS, type='ConverseDnCNN')}))
    torch.save({'params': net.state_dict()}, tmp_path / 'run' / 'models' / 'net_g_4.pth')  # no description
    resolved = resolve(tmp_path / 'run' / 'models' / 'net_g_4.pth')
    assert resolved.kind == 'described' and resolved.info['network_from'].endswith('train.yml')
    assert torch.equal(resolved.module(x), net(x))


def test_labels_parse_and_stay_unique(tmp_path):
    assert parse_model_arg('mine=runs/a.pth') == ('mine', 'runs/a.pth')
    assert parse_model_arg('runs/a=b.pth') == (None, 'runs/a=b.pth')
    assert parse_model_arg('pkg.mod:make') == (None, 'pkg.mod:make')
    first = resolve(_described(tmp_path / 'first.pth', _dncnn(0)))
    second = resolve(_described(tmp_path / 'second.pth', _dncnn(1)))
    assert default_labels([first, second]) == ['first', 'second']
    assert default_labels(['converse_dncnn', 'converse_dncnn']) == ['converse_dncnn', 'converse_dncnn#2']


def _swinir(tmp_path):
    torch.manual_seed(0)
    net = SwinIR(embed_dim=12, depths=[1], num_heads=[2], window_size=4, img_size=16, upscale=2,
                 upsampler='pixelshuffle').eval()
    torch.save({'params_ema': net.state_dict()}, tmp_path / 'swinir_x2.pth')
    return net, tmp_path / 'swinir_x2.pth'


def test_converse_up_on_a_spandrel_net_passes_the_option_check(tmp_path):
    # SwinIR's constructor calls Tensor.item(): the meta-device probe cannot build it, the CPU must
    _, path = _swinir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        assert converse_up_errors('network_g',
                                  {'type': 'ConverseUp', 'base': {'type': 'SpandrelNet', 'path': str(path)}}) == []


@torch.no_grad()
def test_spandrel_net_fine_tune_loads_back_by_path(tmp_path):
    swinir, path = _swinir(tmp_path)
    net = ARCH_REGISTRY.get('SpandrelNet')(path=str(path)).eval()  # wrapped: keys under net.
    assert all(k.startswith('net.') for k in net.state_dict())
    torch.save({'params': net.state_dict()}, tmp_path / 'finetuned.pth')  # as converse-train saves it
    x = torch.rand(1, 3, 13, 10)
    assert torch.equal(resolve(tmp_path / 'finetuned.pth').module(x), net(x))
    cs.install()
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / 'finetuned.pth')
    assert torch.equal(descriptor(x), net(x))


@torch.no_grad()
def test_size_multiple_padding_matches_spandrel(tmp_path):
    torch.manual_seed(0)
    drunet = DRUNet(in_nc=2, out_nc=1, nc=[4, 8, 8, 8], nb=2).eval()  # grey DRUNet: image + noise map
    torch.save(drunet.state_dict(), tmp_path / 'drunet.pth')
    image = (np.random.RandomState(0).rand(61, 83) * 255).astype(np.uint8)  # not a multiple of 8
    ours = Restorer(str(tmp_path / 'drunet.pth')).restore(image).float_image
    descriptor = spandrel.ModelLoader().load_from_file(tmp_path / 'drunet.pth')
    theirs = descriptor(torch.from_numpy(image / np.float32(255))[None, None]).clamp(0, 1)[0, 0].numpy()
    assert np.abs(ours - theirs).max() <= 1e-6
