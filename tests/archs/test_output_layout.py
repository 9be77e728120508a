"""Every registered Converse arch, ``ConverseUpsample``, ``ConverseUp`` and ``SpandrelNet`` return their output in
the memory format of their input: contiguous NCHW for an NCHW input (BasicSR's discriminators call ``.view`` on
it), channels last for a channels-last input."""
import pytest
import torch

from basicsr.archs.discriminator_arch import VGGStyleDiscriminator
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.archs import converse_arch_names
from converse_basicsr.nn.layers import ConverseUpsample

SMALL = {
    'ConverseDnCNN': dict(num_in_ch=3, num_feat=8, num_block=1),
    'ConverseNet': dict(num_feat=8, num_block=1, num_iter=1),
    'ConverseMSRResNet': dict(num_feat=8, num_block=1),
    'ConverseUpMSRResNet': dict(num_feat=8, num_block=1),
    'ConverseUSRNet': dict(num_feat=8, num_block=1, num_iter=2),
    'ConverseUp': dict(base=dict(type='RRDBNet', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, num_grow_ch=4)),
}


def _spandrel_net(tmp_path):
    torch.manual_seed(0)
    path = tmp_path / 'srresnet.pth'
    torch.save(ARCH_REGISTRY.get('ConverseMSRResNet')(num_feat=8, num_block=1).state_dict(), path)
    return ARCH_REGISTRY.get('SpandrelNet')(path=str(path))


def _call(name, net, x):
    if name == 'ConverseUSRNet':
        return net(x, torch.full((1, 1, 7, 7), 1 / 49), 1)
    return net(x)


def test_every_registered_arch_is_covered():
    assert set(converse_arch_names()) == set(SMALL) | {'SpandrelNet'}


@pytest.mark.parametrize('grad', [True, False], ids=['train', 'eval'])
@pytest.mark.parametrize('name', sorted(set(SMALL) | {'SpandrelNet'}))
def test_output_in_the_input_memory_format(name, grad, tmp_path):
    torch.manual_seed(0)
    net = _spandrel_net(tmp_path) if name == 'SpandrelNet' else ARCH_REGISTRY.get(name)(**SMALL[name])
    net.train(grad)
    x = torch.rand(2, 3, 16, 12)
    with torch.set_grad_enabled(grad):
        out = _call(name, net, x)
        assert out.is_contiguous(), f'{name}: NCHW in, strides {out.stride()} out'
        out.view(out.shape[0], -1)  # what BasicSR's discriminators do
        last = _call(name, net, x.contiguous(memory_format=torch.channels_last))
    assert last.is_contiguous(memory_format=torch.channels_last) and not last.is_contiguous()
    assert torch.allclose(last, out, atol=1e-5)


@pytest.mark.parametrize('memory_format', [torch.contiguous_format, torch.channels_last])
def test_converse_upsample_keeps_the_input_memory_format(memory_format):
    up = ConverseUpsample(8, 4)
    out = up(torch.rand(1, 8, 6, 5).contiguous(memory_format=memory_format))
    assert out.shape == (1, 8, 24, 20) and out.is_contiguous(memory_format=memory_format)


def test_basicsr_discriminator_takes_the_output():
    """The crash of issue 37: VGGStyleDiscriminator's ``.view`` on a Converse generator's output."""
    net = ARCH_REGISTRY.get('ConverseMSRResNet')(num_feat=8, num_block=1)
    d = VGGStyleDiscriminator(num_in_ch=3, num_feat=4, input_size=128)
    assert d(net(torch.rand(1, 3, 32, 32))).shape == (1, 1)
