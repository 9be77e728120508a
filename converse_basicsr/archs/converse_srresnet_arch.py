"""Converse-SRResNet and ConverseUp-SRResNet (super-resolution), registered in BasicSR's ``ARCH_REGISTRY``."""
from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights
from basicsr.utils.registry import ARCH_REGISTRY

from .blocks import ConverseBlock, check_input, in_layout_of, make_operator

UPSCALES = (2, 3, 4)


def _check_upscale(upscale):
    if upscale not in UPSCALES:
        raise ValueError(f'upscale must be one of {list(UPSCALES)}, got {upscale!r}')


def _up_layer(operator, num_feat, upscale, up_kernel_size, up_padding, up_padding_mode, up_eps):
    """One upsampling stage's resampling layer (Converse2D, or a baseline): ×3 for ``upscale`` 3, else ×2."""
    stage_scale = 3 if upscale == 3 else 2
    kernel_size = stage_scale if up_kernel_size is None else up_kernel_size
    return make_operator(operator, num_feat, kernel_size, stage_scale, up_padding, up_padding_mode, up_eps)


def _upsample(net, x, act):
    """The upsampler of both archs, as BasicSR's MSRResNet: ×4 is two ×2 stages (``upconv1``/``up1``,
    ``upconv2``/``up2``), ×2 and ×3 one stage (``upconv1``/``up1``)."""
    x = act(net.up1(net.upconv1(x)))
    if net.upscale == 4:
        x = act(net.up2(net.upconv2(x)))
    return x


@ARCH_REGISTRY.register()
class ConverseMSRResNet(nn.Module):
    """Converse-SRResNet: MSRResNet with every 3×3 conv replaced by a ConverseBlock and every
    pixel-shuffle upsampler by a ConverseBlock followed by a scale-2 (or 3) Converse2D.

    ×4 (the default) reproduces the published ``converse_srresnet.pth`` and its key layout
    (``upconv1``/``up1``/``upconv2``/``up2``); ×2 and ×3 use one stage. The output adds the
    bilinear ×upscale upsampled input.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of ConverseBlocks in the trunk. Default: 16.
        upscale (int): Upsampling factor, 2, 3 or 4. Default: 4.
        kernel_size (int): Kernel size of the blocks' Converse2D. Default: 5.
        padding (int): Padding of the blocks' Converse2D. Default: 4.
        padding_mode (str): Padding mode of the blocks' Converse2D. Default: 'replicate'.
        eps (float): Lower bound of the blocks' Converse2D λ. Default: 1e-5.
        up_kernel_size (int | None): Kernel size of the upsampling Converse2D; None: the stage's scale.
            Default: None.
        up_padding (int): Padding of the upsampling Converse2D. Default: 2.
        up_padding_mode (str): Padding mode of the upsampling Converse2D. Default: 'replicate'.
        up_eps (float): Lower bound of the upsampling Converse2D λ. Default: 1e-3.
        operator (str): ``'converse'``; ``'conv'`` / ``'convtranspose'`` build the paper's Conv-SRResNet /
            ConvT-SRResNet baselines. Default: 'converse'.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, kernel_size=5, padding=4,
                 padding_mode='replicate', eps=1e-5, up_kernel_size=None, up_padding=2, up_padding_mode='replicate',
                 up_eps=1e-3, operator='converse'):
        super().__init__()
        _check_upscale(upscale)
        self.num_in_ch, self.upscale = num_in_ch, upscale

        def block():
            return ConverseBlock(num_feat, num_feat, kernel_size, 1, padding, padding_mode, eps, operator)

        def up_layer():
            return _up_layer(operator, num_feat, upscale, up_kernel_size, up_padding, up_padding_mode, up_eps)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 1)
        self.conv_body = nn.Sequential(*[block() for _ in range(num_block)])
        self.upconv1 = block()
        self.up1 = up_layer()
        if upscale == 4:
            self.upconv2 = block()
            self.up2 = up_layer()
        self.conv_hres = block()
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        out = _upsample(self, self.conv_body(self.act(self.conv_first(x))), self.act)
        out = self.conv_last(self.act(self.conv_hres(out)))
        return in_layout_of(x, out + F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False))


@ARCH_REGISTRY.register()
class ConverseUpMSRResNet(nn.Module):
    """ConverseUp-SRResNet: BasicSR's MSRResNet body (3×3 convs, residual blocks without BN) with
    the pixel-shuffle upsampler replaced by Converse2D (scale 2 per stage, or 3).

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int): Channel number of outputs. Default: 3.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of residual blocks (no BN) in the trunk. Default: 16.
        upscale (int): Upsampling factor, 2, 3 or 4. Default: 4.
        up_kernel_size (int | None): Kernel size of the upsampling Converse2D; None: the stage's scale.
            Default: None.
        up_padding (int): Padding of the upsampling Converse2D. Default: 2.
        up_padding_mode (str): Padding mode of the upsampling Converse2D. Default: 'replicate'.
        up_eps (float): Lower bound of the upsampling Converse2D λ. Default: 1e-3.
        operator (str): ``'converse'``; ``'conv'`` / ``'convtranspose'`` replace the upsampling Converse2D by
            the depthwise baselines. Default: 'converse'.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, up_kernel_size=None,
                 up_padding=2, up_padding_mode='replicate', up_eps=1e-3, operator='converse'):
        super().__init__()
        _check_upscale(upscale)
        self.num_in_ch, self.upscale = num_in_ch, upscale

        def up_layer():
            return _up_layer(operator, num_feat, upscale, up_kernel_size, up_padding, up_padding_mode, up_eps)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_block)])
        self.upconv1 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.up1 = up_layer()
        if upscale == 4:
            self.upconv2 = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
            self.up2 = up_layer()
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        upconvs = [self.upconv1, self.upconv2] if upscale == 4 else [self.upconv1]
        default_init_weights([self.conv_first, self.conv_hr, self.conv_last] + upconvs, 0.1)

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        out = _upsample(self, self.body(self.lrelu(self.conv_first(x))), self.lrelu)
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
