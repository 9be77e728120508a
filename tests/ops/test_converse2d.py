"""Converse2D: published numbers, the literal oracle, gradients, inversion properties, dtypes, errors."""
import math
import re

import pytest
import torch
from torch.nn import functional as F

from converse_basicsr.ops import PADDING_MODES, Converse2D, converse2d
from converse_basicsr.ops.literal import literal_converse2d


def rel_err(out, ref):
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max()).item()


def random_case(channels, kernel_size, batch=2, size=(9, 11), seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    weight = torch.softmax(torch.randn(1, channels, kernel_size * kernel_size, generator=g), -1)
    weight = weight.view(1, channels, kernel_size, kernel_size).to(dtype)
    bias = torch.randn(1, channels, 1, 1, generator=g, dtype=dtype)
    x = torch.randn(batch, channels, *size, generator=g, dtype=dtype)
    return x, weight, bias


def circular_blur(x, kernel):
    """Circular convolution (not correlation) with a kernel centred at ⌊k/2⌋, by F.conv2d."""
    k = kernel.shape[-1]
    c = k // 2
    padded = F.pad(x, (k - 1 - c, c, k - 1 - c, c), mode='circular')
    flipped = torch.flip(kernel, dims=(-2, -1)).transpose(0, 1)  # (C, 1, k, k)
    return F.conv2d(padded, flipped, groups=x.shape[1])


def smooth_image(n, c, h, w, seed=0):
    g = torch.Generator().manual_seed(seed)
    coarse = torch.rand(n, c, h // 4 + 1, w // 4 + 1, generator=g, dtype=torch.float64)
    return F.interpolate(coarse, size=(h, w), mode='bicubic', align_corners=False)


def psnr(a, b):
    mse = (a - b).pow(2).mean().item()
    return 10 * math.log10(1.0 / mse)


# --- published numbers -----------------------------------------------------------------------

# The README's accuracy table (scripts/accuracy.py) measures float32 operator errors of 1.9e-7 to 7.5e-7 and
# float64 errors up to 1.8e-12 against the float64 truth; the bounds are twice the largest. The published
# float32 code is off by 5e-5 to 7e-4 and fails them.
FLOAT32_OPERATOR_BOUND = 2 * 7.5e-7
FLOAT64_OPERATOR_BOUND = 2 * 1.8e-12


@pytest.mark.parametrize('index', range(7))
@pytest.mark.parametrize('dtype, tol', [(torch.float32, FLOAT32_OPERATOR_BOUND),
                                        (torch.float64, FLOAT64_OPERATOR_BOUND)])
def test_official_operator_cases(official_outputs, index, dtype, tol):
    case = official_outputs['operator_cases'][index]
    cfg = case['cfg']
    out = converse2d(case['input'].to(dtype), case['weight'].to(dtype), case['bias'].to(dtype), cfg['scale'],
                     cfg['padding'], cfg['padding_mode'], cfg['eps'])
    assert out.dtype == dtype
    assert out.shape == case['output'].shape
    assert rel_err(out, case['output']) < tol


@pytest.mark.parametrize('index', range(7))
def test_official_operator_cases_through_module(official_outputs, index):
    case = official_outputs['operator_cases'][index]
    cfg = case['cfg']
    layer = Converse2D(cfg['channels'], cfg['channels'], cfg['kernel_size'], cfg['scale'], cfg['padding'],
                       cfg['padding_mode'], cfg['eps'])
    layer.load_state_dict({'weight': case['weight'], 'bias': case['bias']}, strict=True)
    out_train = layer(case['input'])
    layer.eval()
    x_last = case['input'].contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        outs = [layer(case['input']), layer(case['input']), layer(x_last), layer(x_last)]  # each twice: cached
    assert len(layer._cache) == (2 if x_last.shape[1] > 1 else 1)  # one response per layout
    for out in [out_train] + outs:
        assert rel_err(out, case['output']) < FLOAT32_OPERATOR_BOUND


def test_published_float32_is_the_inaccurate_one(official_outputs):
    """Our float32 is closer to the float64 truth than the published float32 code (no division by λ)."""
    worst_ours, worst_published = 0.0, 0.0
    for case in official_outputs['operator_cases']:
        cfg = case['cfg']
        out = converse2d(case['input'], case['weight'], case['bias'], cfg['scale'], cfg['padding'], cfg['padding_mode'],
                         cfg['eps'])
        worst_ours = max(worst_ours, rel_err(out, case['output']))
        worst_published = max(worst_published, rel_err(case['output_float32'], case['output']))
    assert worst_ours < worst_published / 50


# --- the literal oracle ------------------------------------------------------------------------


def channels_last(x):
    return x.contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize('scale', [1, 2, 3])
@pytest.mark.parametrize('padding_mode', PADDING_MODES)
@pytest.mark.parametrize('kernel_size, padding', [(3, 2), (4, 0), (5, 3)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_accurate_solve_equals_literal_algorithm(scale, padding_mode, kernel_size, padding, layout):
    """Both computations: channels first, and (channels-last input, no autograd) channels last."""
    x, weight, bias = random_case(3, kernel_size, seed=scale * 7 + kernel_size)
    expected = literal_converse2d(x, weight, bias, scale, padding, padding_mode, 1e-5)
    if layout == 'channels_last':
        x = channels_last(x)
    out = converse2d(x, weight, bias, scale, padding, padding_mode, 1e-5)
    assert out.shape == (2, 3, 9 * scale, 11 * scale)
    assert out.is_contiguous(memory_format=torch.channels_last) == (layout == 'channels_last')
    assert rel_err(out, expected) < 1e-9


@pytest.mark.parametrize('padding_mode', PADDING_MODES)
@pytest.mark.parametrize('scale, kernel_size, padding', [(1, 4, 0), (1, 7, 6), (2, 3, 2)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_channel_groups_equal_literal_algorithm(monkeypatch, padding_mode, scale, kernel_size, padding, layout):
    """Forced into groups of two channels and blocks of one row (large maps run so): output and gradients
    unchanged."""
    import converse_basicsr.ops.execution as execution
    monkeypatch.setattr(execution, 'CHUNK_BYTES', 1)
    x, weight, bias = random_case(5, kernel_size, seed=kernel_size, size=(12, 10))
    weight = torch.cat((weight, weight.flip(-1)))  # one kernel per sample
    group_scale = 1 if layout == 'channels_last' else scale  # channels last, groups are sized without the phases
    per_channel = execution.spectrum_bytes(2, group_scale, (12 + 2 * padding, 10 + 2 * padding), torch.complex128)
    groups = []
    monkeypatch.setattr(execution, 'group_bytes', lambda device, last: groups.append(device) or 2 * per_channel)
    arrange = channels_last if layout == 'channels_last' else (lambda t: t)
    expected = literal_converse2d(x, weight, bias, scale, padding, padding_mode, 1e-5)
    assert rel_err(converse2d(arrange(x), weight, bias, scale, padding, padding_mode, 1e-5), expected) < 1e-9
    assert len(groups) == 1
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    literal_converse2d(*leaves, scale, padding, padding_mode, 1e-5).pow(2).sum().backward()
    expected_grads = [t.grad for t in leaves]
    leaves = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
    converse2d(arrange(leaves[0]), *leaves[1:], scale, padding, padding_mode, 1e-5).pow(2).sum().backward()
    for ours, theirs in zip([t.grad for t in leaves], expected_grads):
        assert rel_err(ours, theirs) < 1e-8


@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_per_sample_kernels_equal_literal_algorithm(layout):
    """The kernel-conditioned data step of Converse-USRNet: one kernel per sample."""
    x, _, bias = random_case(4, 7, batch=3, size=(10, 12))
    weight = torch.softmax(torch.randn(3, 4, 49, dtype=torch.float64), -1).view(3, 4, 7, 7)
    for scale in (1, 2):
        out = converse2d(channels_last(x) if layout == 'channels_last' else x, weight, bias, scale, 0, 'circular', 1e-3)
        expected = literal_converse2d(x, weight, bias, scale, 0, 'circular', 1e-3)
        assert rel_err(out, expected) < 1e-9


@pytest.mark.parametrize('scale', [1, 2])
def test_channels_last_input_with_autograd(scale):
    """With autograd the channels-first solve runs; a channels-last input still gets a channels-last
    output, and the gradients are those of the contiguous input."""
    x, weight, bias = random_case(3, 3, batch=2, size=(6, 7), seed=5)
    results = []
    for layout in (lambda t: t, channels_last):
        inputs = [
            layout(x.detach().clone()).requires_grad_(True),
            weight.clone().requires_grad_(True),
            bias.clone().requires_grad_(True)
        ]
        out = converse2d(*inputs, scale, 2, 'reflect', 1e-4)
        out.pow(2).sum().backward()
        results.append((out, [t.grad for t in inputs]))
    (out_cf, grads_cf), (out_cl, grads_cl) = results
    assert out_cl.is_contiguous(memory_format=torch.channels_last) and not out_cl.is_contiguous()
    assert rel_err(out_cl, out_cf) < 1e-12
    for ours, theirs in zip(grads_cl, grads_cf):
        assert rel_err(ours, theirs) < 1e-12


# --- gradients ---------------------------------------------------------------------------------


@pytest.mark.parametrize('scale', [1, 2, 3])
@pytest.mark.parametrize('padding_mode', PADDING_MODES)
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_gradcheck(scale, padding_mode, layout):
    """Both backward passes: channels first, and channels last."""
    x, weight, bias = random_case(2, 3, batch=1, size=(5, 6), seed=scale)
    bias = bias + 6.0  # λ ~ 0.05: a well-conditioned problem for finite differences
    if layout == 'channels_last':
        x = channels_last(x)
    inputs = tuple(t.clone().requires_grad_(True) for t in (x, weight, bias))

    def fn(x_, w_, b_):
        return converse2d(x_, w_, b_, scale, 2, padding_mode, 1e-5)

    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-6, rtol=1e-4)


@pytest.mark.parametrize('scale, kernel_batch', [(1, 1), (2, 1), (2, 2), (3, 2)])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_gradients_match_literal_algorithm(scale, kernel_batch, layout):
    x, weight, bias = random_case(2, 3, batch=2, size=(6, 7), seed=3)
    weight = weight.expand(kernel_batch, -1, -1, -1) * (1 + 0.1 * torch.arange(kernel_batch)).view(-1, 1, 1, 1)
    grads = []
    for fn in (converse2d, literal_converse2d):
        inputs = [t.clone().requires_grad_(True) for t in (x, weight, bias)]
        arg = channels_last(inputs[0]) if (fn is converse2d and layout == 'channels_last') else inputs[0]
        fn(arg, *inputs[1:], scale, 1, 'replicate', 1e-4).pow(2).sum().backward()
        grads.append([t.grad for t in inputs])
    for ours, theirs in zip(*grads):
        assert rel_err(ours, theirs) < 1e-8


# --- what the operator computes ------------------------------------------------------------------


def blur_kernel(channels, k=7, sigma=1.2):
    r = torch.arange(k, dtype=torch.float64) - k // 2
    g = torch.exp(-(r[:, None]**2 + r[None, :]**2) / (2 * sigma**2))
    g = g / g.sum()
    delta = torch.zeros(k, k, dtype=torch.float64)
    delta[k // 2, k // 2] = 1.0
    kernel = 0.5 * delta + 0.5 * g  # a blur whose spectrum stays away from zero
    return kernel.expand(1, channels, k, k).contiguous()


def test_undoes_circular_convolution():
    clean = smooth_image(2, 3, 48, 40)
    kernel = blur_kernel(3)
    blurred = circular_blur(clean, kernel)
    bias = torch.full((1, 3, 1, 1), -30.0, dtype=torch.float64)  # λ = sigmoid(-39) + eps ≈ eps
    restored = converse2d(blurred, kernel, bias, scale=1, padding=0, padding_mode='circular', eps=1e-9)
    assert psnr(blurred, clean) < 35
    assert psnr(restored, clean) > 40


def test_scale2_inverts_convolve_then_subsample():
    y = smooth_image(1, 2, 16, 20, seed=1)
    kernel = blur_kernel(2, k=5, sigma=1.0)
    bias = torch.full((1, 2, 1, 1), -30.0, dtype=torch.float64)
    x = converse2d(y, kernel, bias, scale=2, padding=0, padding_mode='circular', eps=1e-9)
    assert x.shape == (1, 2, 32, 40)
    reblurred = circular_blur(x, kernel)[..., ::2, ::2]
    assert psnr(reblurred, y) > 40


def test_large_lambda_gives_nearest_upsampling():
    """λ → ∞ makes the prior X0 (nearest upsampling) win."""
    x, weight, _ = random_case(2, 3, batch=1, size=(6, 5))
    bias = torch.full((1, 2, 1, 1), 9.0, dtype=torch.float64)
    out = converse2d(x, weight, bias, scale=2, padding=0, padding_mode='circular', eps=1e6)
    assert rel_err(out, F.interpolate(x, scale_factor=2, mode='nearest')) < 1e-5


def test_batch_independence():
    x, weight, bias = random_case(3, 5, batch=4, size=(10, 9), dtype=torch.float32)
    whole = converse2d(x, weight, bias, 2, 2, 'reflect')
    parts = torch.cat([converse2d(x[i:i + 1], weight, bias, 2, 2, 'reflect') for i in range(4)])
    assert torch.allclose(whole, parts, atol=1e-6)


@pytest.mark.parametrize('dtype', [torch.float16, torch.bfloat16])
@pytest.mark.parametrize('layout', ['contiguous', 'channels_last'])
def test_half_precision_is_float32_rounded(dtype, layout):
    """A half input is computed in float32 and rounded once: exactly the float32 result cast to the half
    type (a computation in half precision would differ in most elements)."""
    x, weight, bias = random_case(3, 5, batch=1, size=(12, 10), dtype=torch.float32)
    x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
    arrange = channels_last if layout == 'channels_last' else (lambda t: t)
    out = converse2d(arrange(x), weight, bias, 2, 4, 'replicate')
    # the float32 reference in the same layout: channels first and last may use different FFTs (threads > 1)
    ref = converse2d(arrange(x.float()), weight.float(), bias.float(), 2, 4, 'replicate')
    assert out.dtype == dtype
    assert torch.equal(out, ref.to(dtype))


def test_empty_batch():
    layer = Converse2D(4, 4, 3, scale=2)
    x = torch.zeros(0, 4, 8, 8, requires_grad=True)
    out = layer(x)
    assert out.shape == (0, 4, 16, 16)
    assert out.grad_fn is not None  # part of the graph like any other batch: a loss over it backpropagates
    out.sum().backward()
    assert x.grad.shape == x.shape
    assert torch.equal(layer.weight.grad, torch.zeros_like(layer.weight))
    assert torch.equal(layer.bias.grad, torch.zeros_like(layer.bias))
    with torch.no_grad():
        assert layer.eval()(x).shape == (0, 4, 16, 16)


def test_initialisation():
    torch.manual_seed(0)
    layer = Converse2D(8, 8, 5)
    assert layer.weight.shape == (1, 8, 5, 5) and layer.bias.shape == (1, 8, 1, 1)
    assert (layer.weight > 0).all()
    assert torch.allclose(layer.weight.sum(dim=(-2, -1)), torch.ones(1, 8))
    assert (layer.bias == 0).all()
    assert len(set(layer.weight.flatten().tolist())) > 100  # random, not uniform


def test_matches_depthwise_inverse_in_frequency_domain_for_scale1():
    """s = 1 is the fixed response (conj(FK) + λ) / (|FK|² + λ), built here with an FFT of the padded kernel."""
    x, weight, bias = random_case(2, 3, batch=1, size=(8, 8))
    lam = torch.sigmoid(bias - 9) + 1e-5
    otf = torch.zeros(1, 2, 8, 8, dtype=torch.float64)
    otf[..., :3, :3] = weight
    fk = torch.fft.fft2(torch.roll(otf, (-1, -1), (-2, -1)))
    expected = torch.fft.ifft2((fk.conj() + lam) / (fk.abs()**2 + lam) * torch.fft.fft2(x)).real
    assert rel_err(converse2d(x, weight, bias, 1, 0, 'circular'), expected) < 1e-10


# --- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=4, out_channels=8, kernel_size=3), r'in_channels \(4\).*out_channels \(8\)'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, scale=0), r'scale.*0'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, scale=1.5), r'scale.*1\.5'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, padding_mode='zeros'), r"padding_mode.*'zeros'"),
    (dict(in_channels=4, out_channels=4, kernel_size=3, padding=-1), r'padding.*-1'),
    (dict(in_channels=4, out_channels=4, kernel_size=0), r'kernel_size.*0'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, eps=0), r'eps.*0'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, eps=float('inf')), r'eps.*inf'),
    (dict(in_channels=4, out_channels=4, kernel_size=3, eps=float('nan')), r'eps.*nan'),
    (dict(in_channels=None, out_channels=None, kernel_size=3), r'in_channels.*None'),
    (dict(in_channels=4, out_channels='4', kernel_size=3), r"out_channels.*'4'"),
])
def test_module_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Converse2D(**kwargs)


def test_function_rejects_bad_arguments():
    x, weight, bias = random_case(2, 3, batch=1, size=(6, 6), dtype=torch.float32)
    with pytest.raises(ValueError, match=r'scale.*-2'):
        converse2d(x, weight, bias, scale=-2)
    with pytest.raises(ValueError, match=r"padding_mode.*'mirror'"):
        converse2d(x, weight, bias, padding_mode='mirror')
    with pytest.raises(ValueError, match=r'padding.*-3'):
        converse2d(x, weight, bias, padding=-3)
    with pytest.raises(ValueError, match=r"padding=6.*'reflect'.*6x6"):
        converse2d(x, weight, bias, padding=6, padding_mode='reflect')
    with pytest.raises(ValueError, match=r'weight.*\(2, 2, 3, 3\)'):
        converse2d(x, weight.expand(2, 2, 3, 3), bias)


@pytest.mark.parametrize('eps', [0, 0.0, -1e-5, float('inf'), float('nan'), None, '1e-5'])
def test_function_rejects_bad_eps(eps):
    x, weight, bias = random_case(2, 3, batch=1, size=(6, 6), dtype=torch.float32)
    with pytest.raises(ValueError, match=r'eps.*' + re.escape(repr(eps))):
        converse2d(x, weight, bias, eps=eps)


@pytest.mark.parametrize('x, error, match', [
    (torch.zeros(4, 6, 6), ValueError, r'4-D.*\(4, 6, 6\)'),
    (torch.zeros(1, 3, 6, 6), ValueError, r'3 channels, expected 4'),
    (torch.zeros(1, 4, 6, 6, dtype=torch.int64), TypeError, r'floating.*int64'),
    (torch.zeros(1, 4, 3, 3), ValueError, r"padding=4.*'reflect'.*3x3"),
])
def test_module_rejects_bad_input(x, error, match):
    layer = Converse2D(4, 4, 3, padding=4, padding_mode='reflect')
    with pytest.raises(error, match=match):
        layer(x)
