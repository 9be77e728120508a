"""The generic rule "a Conv2d right before a PixelShuffle inside a longer nn.Sequential": the converted network runs
forward and backward at the upsampled size, with the channel counts of the layers around it unchanged."""
import torch
from torch import nn

from converse_basicsr.convert import convert_upsamplers
from converse_basicsr.nn.layers import ConverseUpsample


def small_net():
    """3 → 16 features, Conv2d(16 → 8·2²) + PixelShuffle(2) inside the body, 8 → 3 after it."""
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 8 * 4, 3, padding=1), nn.PixelShuffle(2),
        nn.LeakyReLU(0.1), nn.Conv2d(8, 3, 3, padding=1))


def test_conv_before_shuffle_in_a_longer_sequential_trains():
    model, report = convert_upsamplers(small_net())
    assert [name for name, _, _ in report.replaced] == ['2', '3']
    assert isinstance(model[2], ConverseUpsample) and isinstance(model[3], nn.Identity)
    assert isinstance(model[5], nn.Conv2d) and model[5].in_channels == 8  # the layers around it are kept
    x = torch.rand(2, 3, 10, 12)
    out = model(x)
    assert out.shape == (2, 3, 20, 24)
    assert model[2](torch.rand(1, 16, 5, 6)).shape == (1, 8, 10, 12)  # 16 in, 8 out, ×2 like the shuffle
    out.square().mean().backward()
    grads = {name: p.grad for name, p in model.named_parameters()}
    assert all(g is not None and torch.isfinite(g).all() and g.abs().sum() > 0 for g in grads.values()), \
        [n for n, g in grads.items() if g is None or not g.abs().sum() > 0]
    assert any(name.startswith('2.') for name in grads)  # the new upsampler's own weights train too
