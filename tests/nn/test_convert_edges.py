"""The converter's edges (nn/convert.py, nn/converse_up_arch.py): exclude as one name, the original left alone,
the channel probe leaving no trace, scale factors that do not convert, skipped and excluded layers, dtypes, and
ConverseUp's base entry."""
from collections import OrderedDict

import pytest
import torch
from torch import nn

from converse_basicsr.nn.converse_up_arch import ConverseUp
from converse_basicsr.nn.convert import ConversionError, convert_upsamplers
from converse_basicsr.nn.layers import ConverseUpsample


def _two_upsamplers():
    return nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(4, 16, 3, 1, 1), shuffle=nn.PixelShuffle(2), act=nn.ReLU(),
            up=nn.ConvTranspose2d(4, 4, 2, 2)))


def test_exclude_takes_one_name_as_a_string():
    converted, report = convert_upsamplers(_two_upsamplers(), exclude='up')
    assert isinstance(converted.up, nn.ConvTranspose2d) and isinstance(converted.conv, ConverseUpsample)
    assert ('up', 'excluded') in report.skipped


def test_the_original_is_left_alone_unless_inplace():
    model = _two_upsamplers()
    converted, _ = convert_upsamplers(model)
    assert converted is not model
    assert isinstance(model.shuffle, nn.PixelShuffle) and isinstance(model.up, nn.ConvTranspose2d)
    same, _ = convert_upsamplers(model, inplace=True)
    assert same is model and isinstance(model.up, ConverseUpsample)


class _ForwardUpsample(nn.Module):
    """An nn.Upsample whose channels only a forward tells (not in an nn.Sequential)."""

    def __init__(self):
        super().__init__()
        self.conv, self.norm, self.drop = nn.Conv2d(3, 4, 3, 1, 1), nn.BatchNorm2d(4), nn.Dropout(0.5)
        self.up = nn.Upsample(scale_factor=2)

    def forward(self, x):
        return self.up(self.drop(self.norm(self.conv(x))))


def test_the_channel_probe_leaves_modes_and_statistics_untouched():
    model = _ForwardUpsample().train()
    converted, _ = convert_upsamplers(model, example_input=torch.rand(2, 3, 6, 6) + 5)
    assert converted.up.num_feat == 4
    assert all(m.training for m in converted.modules())
    assert torch.equal(converted.norm.running_mean, torch.zeros(4)) and converted.norm.num_batches_tracked == 0


@pytest.mark.parametrize('factor', [2.5, (2, 3)])
def test_an_upsample_by_other_than_one_integer_is_an_error(factor):
    model = nn.Sequential(nn.Conv2d(3, 4, 3, 1, 1), nn.Upsample(scale_factor=factor))
    with pytest.raises(ConversionError, match='cannot convert 1 .*only one integer scale_factor'):
        convert_upsamplers(model)


def test_stride_one_transpose_is_reported_as_left_alone():
    model = nn.Sequential(nn.ConvTranspose2d(4, 4, 3, 1, 1), nn.ConvTranspose2d(4, 4, 2, 2))
    converted, report = convert_upsamplers(model)
    assert isinstance(converted[0], nn.ConvTranspose2d) and isinstance(converted[1], ConverseUpsample)
    assert [name for name, _ in report.skipped] == ['0'] and 'stride 1' in report.skipped[0][1]
    assert 'left alone: 0' in str(report)


def test_grouped_but_not_depthwise_transpose_is_an_error():
    with pytest.raises(ConversionError, match=r'cannot convert 0 .*grouped \(4 groups\) but not depthwise'):
        convert_upsamplers(nn.Sequential(nn.ConvTranspose2d(4, 8, 2, 2, groups=4)))


def test_an_excluded_shuffle_keeps_its_conv():
    model = nn.Sequential(
        OrderedDict(
            conv=nn.Conv2d(4, 16, 3, 1, 1), shuffle=nn.PixelShuffle(2), act=nn.ReLU(),
            up=nn.ConvTranspose2d(4, 4, 2, 2)))
    converted, report = convert_upsamplers(model, exclude=['shuffle'])
    assert isinstance(converted.conv, nn.Conv2d) and isinstance(converted.shuffle, nn.PixelShuffle)
    assert [name for name, _, _ in report.replaced] == ['up']


@torch.no_grad()
def test_new_layers_take_the_model_dtype():
    converted, _ = convert_upsamplers(_two_upsamplers().double())
    assert {p.dtype for p in converted.parameters()} == {torch.float64}
    assert converted(torch.rand(1, 4, 5, 5, dtype=torch.float64)).shape == (1, 4, 20, 20)


EDSR = dict(type='EDSR', num_in_ch=3, num_out_ch=3, num_feat=8, num_block=1, upscale=2)


def test_converse_up_leaves_its_base_entry_alone_and_shares_one_class_per_base():
    base = dict(EDSR)
    first, second = ConverseUp(base=base), ConverseUp(base=base)
    assert base == EDSR
    assert type(first) is type(second) and isinstance(first, ConverseUp)
    with pytest.raises(ValueError, match="'Nope' is not a registered arch"):
        ConverseUp(base={'type': 'Nope'})
