"""Argument checks of the operator and the archs at their boundary (docs: "messages that name the argument and
the value"): booleans and fractional values are no integers, NumPy integers are, the input and the kernel must
agree on channels, and the minimum input size holds on either side (height or width alone too small)."""
import numpy as np
import pytest
import torch

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.archs.blocks import ConverseBlock, make_operator
from converse_basicsr.ops import Converse2D, converse2d
from converse_basicsr.ops.padding import pad


@pytest.mark.parametrize('kwargs, match', [
    (dict(in_channels=True, out_channels=True), r'in_channels .*True'),
    (dict(kernel_size=True), r'kernel_size .*True'),
    (dict(kernel_size=3.0), r'kernel_size .*3\.0'),
    (dict(scale=True), r'scale .*True'),
    (dict(scale=2.0), r'scale .*2\.0'),
    (dict(padding=True), r'padding .*True'),
    (dict(padding=2.0), r'padding .*2\.0'),
    (dict(eps=True), r'eps .*True'),
    (dict(eps=-1e-3), r'eps .*-0\.001'),
    (dict(padding_mode='circular '), r"padding_mode .*'circular '"),
])
def test_the_layer_refuses_booleans_fractions_and_unknown_modes(kwargs, match):
    args = dict(in_channels=2, out_channels=2, kernel_size=3)
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        Converse2D(**args)


def test_numpy_integers_and_reals_are_taken_as_python_numbers():
    layer = Converse2D(
        np.int64(2), np.int64(2), np.int64(3), scale=np.int64(2), padding=np.int32(1), eps=np.float32(1e-4))
    assert (layer.in_channels, layer.kernel_size, layer.scale, layer.padding) == (2, 3, 2, 1)
    assert all(type(v) is int for v in (layer.in_channels, layer.kernel_size, layer.scale, layer.padding))
    assert type(layer.eps) is float and layer.weight.shape == (1, 2, 3, 3)
    assert layer(torch.rand(1, 2, 5, 6)).shape == (1, 2, 10, 12)


def test_the_function_refuses_booleans_and_a_kernel_of_other_channels():
    x, weight, bias = torch.rand(1, 2, 8, 8), torch.full((1, 2, 3, 3), 1 / 9), torch.zeros(1, 2, 1, 1)
    for kwargs, match in ((dict(scale=True), r'scale .*True'), (dict(padding=False), r'padding .*False'),
                          (dict(eps=True), r'eps .*True')):
        with pytest.raises(ValueError, match=match):
            converse2d(x, weight, bias, **kwargs)
    with pytest.raises(ValueError, match=r'input has 3 channels, expected 2 \(shape \(1, 3, 8, 8\)\)'):
        converse2d(torch.rand(1, 3, 8, 8), weight, bias)
    with pytest.raises(ValueError, match=r'weight must have shape \(1 or N, C, k, k\), got \(1, 2, 9\)'):
        converse2d(x, weight.view(1, 2, 9), bias)


@pytest.mark.parametrize('mode, padding, need', [('circular', 6, 6), ('reflect', 4, 5)])
def test_either_side_below_the_minimum_is_refused(mode, padding, need):
    """``F.pad`` itself refuses these (circular: more than the side, reflect: the side or more); the check names
    the rule and both sides first, for the height and for the width alone."""
    for h, w in ((need - 1, 40), (40, need - 1)):
        with pytest.raises(
                ValueError, match=f"padding={padding} with padding_mode='{mode}' needs an input of at "
                f'least {need}x{need}, got {h}x{w}'):
            pad(torch.zeros(1, 1, h, w), padding, mode)
        with pytest.raises(ValueError, match=f'at least {need}x{need}, got {h}x{w}'):  # channels last: (N, H, W, C)
            pad(torch.zeros(1, h, w, 2), padding, mode, channels_last=True)
        with pytest.raises(ValueError, match=f'at least {need}x{need}, got {h}x{w}'):
            Converse2D(1, 1, 3, padding=padding, padding_mode=mode)(torch.rand(1, 1, h, w))
    assert pad(torch.zeros(1, 1, need, need), padding, mode).shape == (1, 1, need + 2 * padding, need + 2 * padding)


@pytest.mark.parametrize('mode', ['replicate', 'constant'])
def test_replicate_and_constant_pad_a_single_pixel(mode):
    out = pad(torch.full((1, 1, 1, 1), 3.0), 3, mode)
    assert out.shape == (1, 1, 7, 7) and float(out[0, 0, 3, 3]) == 3.0
    assert float(out.sum()) == (3.0 * 49 if mode == 'replicate' else 3.0)


def test_a_residual_block_needs_equal_channels_and_baselines_need_an_integer_scale():
    with pytest.raises(ValueError, match=r'ConverseBlock is residual: in_ch \(4\) must equal out_ch \(8\)'):
        ConverseBlock(4, 8)
    assert ConverseBlock(4, 4)(torch.rand(1, 4, 6, 6)).shape == (1, 4, 6, 6)
    for operator in ('conv', 'convtranspose'):
        with pytest.raises(ValueError, match=r'scale .*1\.5'):
            make_operator(operator, 4, 3, 1.5, 2, 'circular', 1e-5)


@pytest.mark.parametrize('arch', ['ConverseMSRResNet', 'ConverseUpMSRResNet'])
@pytest.mark.parametrize('upscale', [1, 0, 8, True])
def test_super_resolution_archs_take_only_scales_2_3_4(arch, upscale):
    with pytest.raises(ValueError, match=r'upscale must be one of \[2, 3, 4\], got ' + repr(upscale)):
        ARCH_REGISTRY.get(arch)(num_feat=4, num_block=1, upscale=upscale)
