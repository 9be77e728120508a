"""The paper's archs: registry, published checkpoints, parameter counts, baselines, half precision, bad input."""
import copy

import pytest
import torch

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.archs import converse_arch_names, is_converse_arch
from converse_basicsr.archs.blocks import ConverseBlock, ConverseBlockAlpha, LayerNorm2d
from converse_basicsr.ops import Converse2D

# docs/converse2d.md §3: checkpoint -> (arch, published parameter count)
PUBLISHED = {
    'converse_dncnn': ('ConverseDnCNN', 796_353),
    'converse_srresnet': ('ConverseMSRResNet', 699_072),
    'conversenet': ('ConverseNet', 243_267),
    'converse_usrnet': ('ConverseUSRNet', 307_987),
}

# small configurations for forward/backward: (arch, kwargs, input shape, scale)
SMALL = [
    ('ConverseDnCNN', dict(num_feat=8, num_block=2), (2, 1, 16, 12), 1),
    ('ConverseDnCNN', dict(num_in_ch=3, num_feat=8, num_block=1, padding_mode='reflect', padding=3), (1, 3, 10, 10), 1),
    ('ConverseMSRResNet', dict(num_feat=8, num_block=1), (2, 3, 8, 6), 4),
    ('ConverseMSRResNet', dict(num_feat=8, num_block=1, upscale=2), (1, 3, 8, 6), 2),
    ('ConverseMSRResNet', dict(num_feat=8, num_block=1, upscale=3), (1, 3, 8, 6), 3),
    ('ConverseUpMSRResNet', dict(num_feat=8, num_block=1), (1, 3, 8, 6), 4),
    ('ConverseUpMSRResNet', dict(num_feat=8, num_block=1, upscale=3), (1, 3, 8, 6), 3),
    ('ConverseNet', dict(num_feat=8, num_block=2, num_iter=2), (2, 3, 12, 10), 1),
    ('ConverseUSRNet', dict(num_feat=8, num_block=2, num_iter=2), (2, 3, 12, 10), 1),
]


def load_published(zoo_dir, name):
    arch, _ = PUBLISHED[name]
    net = ARCH_REGISTRY.get(arch)()
    net.load_state_dict(torch.load(zoo_dir / f'{name}.pth', map_location='cpu', weights_only=True), strict=True)
    return net.eval()


def run(net, x, scale=1):
    if isinstance(net, ARCH_REGISTRY.get('ConverseUSRNet')):
        kernel = torch.softmax(torch.randn(x.shape[0], 1, 49), -1).view(-1, 1, 7, 7).to(x.dtype)
        return net(x, kernel, scale)
    return net(x)


@pytest.mark.parametrize('name', sorted(PUBLISHED))
@pytest.mark.parametrize('dtype, tol', [(torch.float32, 1e-5), (torch.float64, 1e-9)])
def test_published_checkpoint_reproduces_official_output(official_outputs, zoo_dir, name, dtype, tol):
    net = load_published(zoo_dir, name).to(dtype)
    case = official_outputs[name]
    args = [case['input'].to(dtype)]
    if 'kernel' in case:
        args += [case['kernel'].to(dtype), case['sf']]
    with torch.no_grad():
        out = net(*args)
    ref = case['output']
    assert out.shape == ref.shape and out.dtype == dtype
    assert ((out.double() - ref).abs().max() / ref.abs().max()).item() < tol


@pytest.mark.parametrize('name', sorted(PUBLISHED))
def test_default_parameter_count_matches_paper(name):
    arch, count = PUBLISHED[name]
    net = ARCH_REGISTRY.get(arch)()
    assert sum(p.numel() for p in net.parameters()) == count


@pytest.mark.parametrize('arch, kwargs, shape, scale', SMALL)
@pytest.mark.parametrize('operator', ['converse', 'conv', 'convtranspose'])
def test_arch_builds_runs_forward_and_backward(arch, kwargs, shape, scale, operator):
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get(arch)(operator=operator, **kwargs)
    x = torch.rand(*shape)
    out = run(net, x, scale)
    assert out.shape == (shape[0], shape[1], shape[2] * scale, shape[3] * scale)
    out.square().mean().backward()
    grads = [p.grad for p in net.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize('arch', ['ConverseDnCNN', 'ConverseMSRResNet', 'ConverseNet'])
@pytest.mark.parametrize('operator', ['conv', 'convtranspose'])
def test_baselines_have_the_converse_parameter_count(arch, operator):
    """Paper §3: Converse2D is replaced by a depthwise (transposed) conv of the same kernel size."""
    converse = sum(p.numel() for p in ARCH_REGISTRY.get(arch)().parameters())
    baseline = sum(p.numel() for p in ARCH_REGISTRY.get(arch)(operator=operator).parameters())
    assert baseline == converse


def test_conv_usrnet_differs_only_by_the_data_step_regulariser():
    converse = sum(p.numel() for p in ARCH_REGISTRY.get('ConverseUSRNet')().parameters())
    conv = sum(p.numel() for p in ARCH_REGISTRY.get('ConverseUSRNet')(operator='conv').parameters())
    assert converse - conv == 64  # d.alpha: λ of the closed-form solve, meaningless for a convolution


def test_published_layout_uses_converse_layers():
    net = ARCH_REGISTRY.get('ConverseMSRResNet')()
    assert isinstance(net.up1, Converse2D) and net.up1.scale == 2 and net.up1.eps == 1e-3
    assert isinstance(net.conv_body[0], ConverseBlock)
    assert isinstance(net.conv_body[0].conv1[3], Converse2D) and net.conv_body[0].conv1[3].in_channels == 128
    usr = ARCH_REGISTRY.get('ConverseUSRNet')()
    assert all(isinstance(b, ConverseBlockAlpha) for b in usr.p.m_body)


def test_conversenet_shares_body_weights_across_iterations():
    torch.manual_seed(0)
    net = ARCH_REGISTRY.get('ConverseNet')(num_feat=8, num_block=1, num_iter=3)
    calls = []
    net.p.register_forward_hook(lambda *args: calls.append(1))
    net(torch.rand(1, 3, 8, 8))
    assert len(calls) == 3


def test_layernorm2d_normalises_over_channels():
    torch.manual_seed(0)
    norm = LayerNorm2d(6)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 2)
        norm.bias.uniform_(-1, 1)
    x = torch.randn(2, 6, 5, 4, dtype=torch.float64) * 3 + 1
    mean = x.mean(dim=1, keepdim=True)
    var = x.var(dim=1, keepdim=True, unbiased=False)
    expected = (x - mean) / torch.sqrt(var + 1e-5) * norm.weight.double().view(1, -1, 1, 1) \
        + norm.bias.double().view(1, -1, 1, 1)
    assert torch.allclose(norm.double()(x), expected, atol=1e-12)


def test_alpha_block_starts_as_identity():
    block = ConverseBlockAlpha(8, 8, 3)
    x = torch.rand(1, 8, 6, 6)
    assert torch.equal(block(x), x)


@pytest.mark.parametrize('arch, kwargs, shape, scale', SMALL[:1] + SMALL[2:3] + SMALL[7:])
def test_empty_batch(arch, kwargs, shape, scale):
    net = ARCH_REGISTRY.get(arch)(**kwargs)
    out = run(net, torch.zeros(0, *shape[1:]), scale)
    assert out.shape == (0, shape[1], shape[2] * scale, shape[3] * scale)


@pytest.mark.parametrize('arch, x, error, match', [
    ('ConverseDnCNN', torch.rand(1, 3, 16, 16), ValueError, r'3 channels.*1'),
    ('ConverseDnCNN', torch.rand(16, 16), ValueError, r'4-D.*\(16, 16\)'),
    ('ConverseDnCNN', torch.zeros(1, 1, 16, 16, dtype=torch.uint8), TypeError, r'floating.*uint8'),
    ('ConverseDnCNN', torch.rand(1, 1, 4, 4), ValueError, r"padding=6.*'circular'.*4x4"),
    ('ConverseNet', torch.rand(1, 1, 16, 16), ValueError, r'1 channels.*3'),
    ('ConverseMSRResNet', torch.rand(1, 3, 16), ValueError, r'4-D'),
])
def test_arch_rejects_bad_input(arch, x, error, match):
    net = ARCH_REGISTRY.get(arch)(num_block=1)
    with pytest.raises(error, match=match):
        net(x)


@pytest.mark.parametrize('kernel, match', [
    (torch.rand(1, 1, 5, 5), r'\(N, 1, 7, 7\).*\(1, 1, 5, 5\)'),
    (torch.rand(1, 7, 7), r'\(N, 1, 7, 7\).*\(1, 7, 7\)'),
    (torch.rand(3, 1, 7, 7), r'batch size 2.*\(3, 1, 7, 7\)'),
])
def test_usrnet_rejects_bad_kernel(kernel, match):
    net = ARCH_REGISTRY.get('ConverseUSRNet')(num_feat=8, num_block=1, num_iter=1)
    with pytest.raises(ValueError, match=match):
        net(torch.rand(2, 3, 8, 8), kernel, 1)


def test_usrnet_rejects_bad_scale():
    net = ARCH_REGISTRY.get('ConverseUSRNet')(num_feat=8, num_block=1, num_iter=1)
    with pytest.raises(ValueError, match=r'sf.*2\.5'):
        net(torch.rand(1, 3, 8, 8), torch.rand(1, 1, 7, 7), 2.5)


@pytest.mark.parametrize('arch, kwargs, match', [
    ('ConverseMSRResNet', dict(upscale=5), r'upscale.*5'),
    ('ConverseUpMSRResNet', dict(upscale=8), r'upscale.*8'),
    ('ConverseDnCNN', dict(operator='deconv'), r"operator.*'deconv'"),
    ('ConverseUSRNet', dict(operator='fft'), r"operator.*'fft'"),
])
def test_arch_rejects_bad_arguments(arch, kwargs, match):
    with pytest.raises(ValueError, match=match):
        ARCH_REGISTRY.get(arch)(**kwargs)


@pytest.mark.parametrize('arch, upscale, stages', [
    ('ConverseMSRResNet', 2, 1),
    ('ConverseMSRResNet', 3, 1),
    ('ConverseMSRResNet', 4, 2),
    ('ConverseUpMSRResNet', 2, 1),
    ('ConverseUpMSRResNet', 3, 1),
    ('ConverseUpMSRResNet', 4, 2),
])
def test_srresnet_upsampler_stages(arch, upscale, stages):
    """×4 is two ×2 stages (upconv1/up1, upconv2/up2, the published layout); ×2 and ×3 one stage."""
    net = ARCH_REGISTRY.get(arch)(num_feat=8, num_block=1, upscale=upscale)
    names = {k.split('.')[0] for k in net.state_dict()}
    expected = {'upconv1', 'up1', 'upconv2', 'up2'} if stages == 2 else {'upconv1', 'up1'}
    assert {n for n in names if n.startswith('up')} == expected
    stage_scale = 3 if upscale == 3 else 2
    assert all(getattr(net, f'up{i}').scale == stage_scale for i in range(1, stages + 1))


def test_is_converse_arch():
    ours = ['ConverseDnCNN', 'ConverseMSRResNet', 'ConverseUpMSRResNet', 'ConverseNet', 'ConverseUSRNet']
    assert set(ours) <= set(converse_arch_names())
    assert 'MSRResNet' in ARCH_REGISTRY and 'MSRResNet' not in converse_arch_names()  # BasicSR's own
    assert all(is_converse_arch(name) for name in ours)
    assert is_converse_arch(ARCH_REGISTRY.get('ConverseNet'))  # a class
    assert is_converse_arch(ARCH_REGISTRY.get('ConverseNet')(num_block=1, num_iter=1))  # an instance
    assert not is_converse_arch('MSRResNet') and not is_converse_arch('NoSuchArch')
    assert not is_converse_arch(ARCH_REGISTRY.get('MSRResNet'))
    # a package whose name merely starts with ours is not ours
    fork = type('ForkNet', (torch.nn.Module, ), {'__module__': 'converse_basicsr_fork.archs.fork_arch'})
    assert not is_converse_arch(fork) and not is_converse_arch(fork())


def usrnet_published(zoo_dir):
    net = ARCH_REGISTRY.get('ConverseUSRNet')()
    net.load_state_dict(torch.load(zoo_dir / 'converse_usrnet.pth', map_location='cpu', weights_only=True))
    return net.eval()


def test_usrnet_half_model(official_outputs, zoo_dir):
    """``model.half()`` (converse-restore --half): runs, returns float16, within half precision of the truth.

    Measured 2.9e-3 (max |half − truth| / max |truth|); half precision's unit roundoff is 4.9e-4 and the
    blocks compute in float16, so 5e-3 bounds the accumulated rounding.
    """
    case = official_outputs['converse_usrnet']
    net = usrnet_published(zoo_dir).half()
    with torch.no_grad():
        out = net(case['input'].half(), case['kernel'].half(), case['sf'])
    ref = case['output']
    assert out.dtype == torch.float16 and out.shape == ref.shape and torch.isfinite(out).all()
    assert ((out.double() - ref).abs().max() / ref.abs().max()).item() < 5e-3


def test_usrnet_half_model_computes_kernels_in_float32():
    """The kernel path of a ``.half()`` model runs in float32 on the upcast (exact) half weights: bit for bit
    the float32 computation with the same weights."""
    torch.manual_seed(0)
    half = ARCH_REGISTRY.get('ConverseUSRNet')(num_feat=8, num_block=1, num_iter=2).half()
    upcast = copy.deepcopy(half).float()
    kernel = torch.softmax(torch.randn(2, 49), -1).view(2, 1, 7, 7)
    with torch.no_grad():
        feat = half.kernelnet(kernel)
        assert feat.dtype == torch.float32
        assert torch.equal(feat, upcast.kernelnet(kernel))


@pytest.mark.parametrize('operator', ['converse', 'conv', 'convtranspose'])
def test_usrnet_half_model_runs_every_operator(operator):
    """Half-precision features, float32 kernels: each data step (and baseline) takes them and returns
    float16 close to the float32 model with the same (half-rounded) weights (measured 5e-4 to 2.0e-3)."""
    torch.manual_seed(0)
    half = ARCH_REGISTRY.get('ConverseUSRNet')(num_feat=8, num_block=1, num_iter=2, operator=operator).eval().half()
    upcast = copy.deepcopy(half).float()
    x = torch.rand(1, 3, 12, 10).half()
    kernel = torch.softmax(torch.randn(1, 49), -1).view(1, 1, 7, 7).half()
    with torch.no_grad():
        out = half(x, kernel, 2)
        ref = upcast(x.float(), kernel.float(), 2)
    assert out.dtype == torch.float16 and out.shape == (1, 3, 24, 20)
    assert ((out.float() - ref).abs().max() / ref.abs().max()).item() < 5e-3
