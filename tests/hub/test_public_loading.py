"""Checkpoint files by path: SpandrelNet / ConverseUp on it for YAMLs, safetensors, refusal of bad files."""
import importlib.util
import warnings

import pytest
import spandrel
import torch
from spandrel.architectures.Compact import Compact
from spandrel.architectures.SwinIR import SwinIR

import converse_basicsr.spandrel_support as cs
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.hub import zoo
from converse_basicsr.hub.public import load_any
from tests.helpers.shared_files import REPO_ROOT, shared_path


def _swinir(tmp_path):
    torch.manual_seed(0)
    net = SwinIR(embed_dim=12, depths=[1], num_heads=[2], window_size=4, img_size=16, upscale=2,
                 upsampler='pixelshuffle').eval()
    path = tmp_path / 'swinir_x2.ckpt'
    torch.save({'params_ema': net.state_dict()}, path)
    return net, path


def test_spandrel_net_is_the_file_network_and_trains(tmp_path):
    torch.manual_seed(0)
    compact = Compact(num_in_ch=3, num_out_ch=3, num_feat=8, num_conv=2, upscale=4).eval()
    torch.save({'params': compact.state_dict()}, tmp_path / 'c.pt')
    net = ARCH_REGISTRY.get('SpandrelNet')(path=str(tmp_path / 'c.pt'))
    assert net.state_dict().keys() == compact.state_dict().keys()  # what converse-train saves loads by path again
    x = torch.rand(1, 3, 9, 11)
    assert torch.equal(net.eval()(x), compact(x))
    net.train()(x).mean().backward()
    assert all(p.grad is not None for p in net.parameters())


def test_converse_up_on_a_spandrel_net_keeps_the_pretrained_layers(tmp_path):
    swinir, path = _swinir(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        up = ARCH_REGISTRY.get('ConverseUp')(base={'type': 'SpandrelNet', 'path': str(path)})
    new = up.state_dict()
    kept = {k for k, v in swinir.state_dict().items() if f'net.{k}' in new and torch.equal(new[f'net.{k}'], v)}
    converted = {k for k in swinir.state_dict() if k.startswith('upsample.')}
    assert converted and kept == set(swinir.state_dict()) - converted
    assert any('upsample.up1' in k for k in new)
    assert up.eval()(torch.rand(1, 3, 13, 10)).shape == (1, 3, 26, 20)


def test_safetensors_written_by_the_script_load_everywhere(tmp_path):
    spec = importlib.util.spec_from_file_location('convert_checkpoint', REPO_ROOT / 'scripts' / 'convert_checkpoint.py')
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    src = shared_path('reference', 'zoo', 'converse_dncnn.pth')
    out = tmp_path / 'converse_dncnn.safetensors'
    assert script.main([str(src), str(out), '--to', 'plain']) == 0
    assert script.main([str(src), str(tmp_path / 'x.safetensors'), '--to', 'basicsr']) == 2
    reference = zoo.load_pretrained(src)
    x = torch.rand(1, 1, 16, 16)
    with torch.no_grad():
        expected = reference(x)
        assert torch.equal(zoo.load_pretrained(out)(x), expected)  # zoo route: arch inferred from the shapes
        assert torch.equal(load_any(out)[0](x), expected)
    cs.install()
    assert spandrel.ModelLoader().load_from_file(out).architecture.id == 'converse_basicsr.ConverseDnCNN'


@pytest.mark.parametrize('content', [b'', b'not a checkpoint at all', b'PK\x03\x04truncated zip'])
def test_corrupt_files_are_one_error_naming_the_file(tmp_path, content):
    for suffix in ('.pth', '.safetensors'):
        path = tmp_path / f'bad{suffix}'
        path.write_bytes(content)
        with pytest.raises(zoo.ZooError, match=f'{path}.*not a plain state dict'):
            load_any(path)


def test_unsupported_extension_is_refused(tmp_path):
    path = tmp_path / 'model.onnx'
    path.write_bytes(b'x')
    with pytest.raises(zoo.ZooError, match='unsupported checkpoint extension'):
        load_any(path)


class Marker:
    """Unpickling it would run ``__setstate__``: a refused pickle leaves ``loaded`` False."""
    loaded = False

    def __setstate__(self, state):
        Marker.loaded = True


def test_a_pickle_of_more_than_tensors_is_refused_not_run(tmp_path):
    path = tmp_path / 'evil.pth'
    torch.save({'params': {'w': torch.zeros(1)}, 'hook': Marker()}, path)
    with pytest.raises(zoo.ZooError, match=f'{path}.*not a plain state dict'):
        load_any(path)
    assert not Marker.loaded


def test_a_near_miss_of_our_layout_is_not_claimed():
    """Converse-DnCNN keys with one shape changed, or one key more: the exact names-and-shapes check refuses it."""
    from converse_basicsr.hub.shape_inference import infer_arch
    published = torch.load(shared_path('reference', 'zoo', 'converse_dncnn.pth'), weights_only=True)
    assert infer_arch(published)[0] == 'ConverseDnCNN'
    wrong_shape = dict(published, **{'m_body.3.conv2.1.weight': torch.zeros(96, 64, 1, 1)})
    extra = dict(published, **{'m_body.3.conv2.9.weight': torch.zeros(1)})
    assert infer_arch(wrong_shape) is None and infer_arch(extra) is None
