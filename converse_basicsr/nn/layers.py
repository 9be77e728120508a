"""Building blocks for anyone's network: ``ConverseUpsample``, an upsampler made of reverse convolutions.

It needs neither BasicSR nor the package's archs: a U-Net decoder, a detection neck or an SR tail
can use it in place of ``nn.Upsample`` (+ conv), ``nn.ConvTranspose2d`` or BasicSR's ``Upsample``.
"""
from collections import OrderedDict

from torch import nn

from converse_basicsr.ops import Converse2D
from converse_basicsr.utils.checks import check_int, is_int


def upsample_stages(scale):
    """The per-stage scales of an upsampling by ``scale``: 2^n as n ×2 stages, 3 as one (BasicSR's ``Upsample``)."""
    if not is_int(scale) or scale < 2 or (scale & (scale - 1) and scale != 3):
        raise ValueError(f'scale must be 2^n (2, 4, 8, ...) or 3, got {scale!r}')
    return [3] if scale == 3 else [2] * (int(scale).bit_length() - 1)


def _check_channels(value, name):
    return int(check_int(value, name, 1))


class ConverseUpsample(nn.Sequential):
    """Upsample a feature map by ``scale`` (2, 3, 4, 8, ...) with reverse convolution (Converse2D).

    Like BasicSR's ``Upsample``, ×2^n runs as n ×2 stages and ×3 as one stage. Each stage is an optional
    ``conv_kernel_size`` convolution (``conv{i}``, stride 1, same size) followed by a depthwise
    ``Converse2D`` of scale 2 or 3 (``up{i}``): the convolution mixes channels at the low resolution,
    the reverse convolution enlarges each channel. The defaults are the paper's upsampler
    (Converse-SRResNet's ``up1``/``up2``): kernel size = stage scale, padding 2, ``replicate``, eps 1e-3.

    Drop-in for
      * BasicSR's ``Upsample(scale, num_feat)``: ``ConverseUpsample(num_feat, scale)``;
      * ``UpsampleOneStep(scale, num_feat, num_out_ch)``: ``ConverseUpsample(num_feat, scale, num_out_ch)``;
      * ``nn.Upsample(scale_factor=s)`` (then your conv): ``ConverseUpsample(channels, s, conv_kernel_size=0)``;
      * ``nn.ConvTranspose2d(c_in, c_out, k, stride=s)``: ``ConverseUpsample(c_in, s, c_out, conv_kernel_size=1)``.

    Args:
        num_feat (int): Channels of the input.
        scale (int): Upsampling factor, 2^n or 3.
        num_out_ch (int | None): Channels of the output; None keeps ``num_feat``. The first stage's
            convolution maps ``num_feat`` to ``num_out_ch`` (so it needs ``conv_kernel_size > 0``).
        conv_kernel_size (int): Odd kernel size of the convolution before each Converse2D; 0 for none
            (a pure reverse-convolution upsampler, channels unchanged). Default: 3 (BasicSR's ``Upsample``).
        kernel_size (int | None): Converse2D kernel size; None uses each stage's scale (2 or 3), as the paper.
        padding (int): Converse2D padding. Default: 2 (paper).
        padding_mode (str): ``circular``, ``reflect``, ``replicate`` (paper) or ``constant``.
        eps (float): Converse2D's λ floor. Default: 1e-3 (paper's upsampler).
    """

    def __init__(self, num_feat, scale, num_out_ch=None, conv_kernel_size=3, kernel_size=None, padding=2,
                 padding_mode='replicate', eps=1e-3):
        num_feat = _check_channels(num_feat, 'num_feat')
        num_out_ch = num_feat if num_out_ch is None else _check_channels(num_out_ch, 'num_out_ch')
        stages = upsample_stages(scale)
        if not is_int(conv_kernel_size) or conv_kernel_size < 0 or conv_kernel_size and conv_kernel_size % 2 == 0:
            raise ValueError(f'conv_kernel_size must be 0 (no convolution) or an odd positive integer, '
                             f'got {conv_kernel_size!r}')
        if not conv_kernel_size and num_out_ch != num_feat:
            raise ValueError(f'num_out_ch ({num_out_ch}) differs from num_feat ({num_feat}): changing the channels '
                             'needs a convolution (conv_kernel_size > 0); Converse2D is depthwise')
        layers, channels = [], num_feat
        for i, stage_scale in enumerate(stages, start=1):
            if conv_kernel_size:
                layers.append((f'conv{i}', nn.Conv2d(channels, num_out_ch, conv_kernel_size, 1, conv_kernel_size // 2)))
                channels = num_out_ch
            up_kernel = stage_scale if kernel_size is None else kernel_size
            layers.append((f'up{i}', Converse2D(channels, channels, up_kernel, stage_scale, padding, padding_mode,
                                                eps)))
        super().__init__(OrderedDict(layers))
        self.num_feat, self.num_out_ch, self.scale = num_feat, num_out_ch, int(scale)
        self.conv_kernel_size = int(conv_kernel_size)

    def describe(self):
        """One line for reports: channels, scale and the stages."""
        stages = ' + '.join(
            f'{m.kernel_size[0]}x{m.kernel_size[0]} conv {m.in_channels}->{m.out_channels}' if isinstance(m, nn.Conv2d)
            else f'Converse2D(k={m.kernel_size}, x{m.scale}, p={m.padding}, {m.padding_mode}, eps={m.eps:g})'
            for m in self)
        return f'ConverseUpsample({self.num_feat}->{self.num_out_ch}, x{self.scale}: {stages})'
