from torch import nn
from torch.nn import functional as F

from basicsr.archs.arch_util import ResidualBlockNoBN, default_init_weights
from basicsr.utils.registry import ARCH_REGISTRY

from .blocks import ConverseBlock, check_input, make_operator

_STAGES = {2: [2], 3: [3], 4: [2, 2]}


def _check_upscale(upscale):
    if upscale not in _STAGES:
        raise ValueError(f'upscale must be one of {sorted(_STAGES)}, got {upscale!r}')
    return _STAGES[upscale]


def _up_layer(operator, num_feat, stage_scale, up_kernel_size, up_padding, up_padding_mode, up_eps):
    kernel_size = stage_scale if up_kernel_size is None else up_kernel_size
    return make_operator(operator, num_feat, kernel_size, stage_scale, up_padding, up_padding_mode, up_eps)


@ARCH_REGISTRY.register()
class ConverseMSRResNet(nn.Module):
    """Converse-SRResNet: MSRResNet with every 3×3 conv replaced by a ConverseBlock and every
    pixel-shuffle upsampler by a ConverseBlock followed by a scale-2 (or 3) Converse2D.

    ×4 (the default) keeps the published key layout (``upconv1``/``up1``/``upconv2``/``up2``);
    ×2 and ×3 use one stage. ``operator='conv'``/``'convtranspose'`` builds the paper's
    Conv-SRResNet / ConvT-SRResNet baselines. The output adds the bilinear ×s upsampled input.
    """

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, kernel_size=5, padding=4,
                 padding_mode='replicate', eps=1e-5, up_kernel_size=None, up_padding=2, up_padding_mode='replicate',
                 up_eps=1e-3, operator='converse'):
        super().__init__()
        stages = _check_upscale(upscale)
        self.num_in_ch, self.upscale = num_in_ch, upscale

        def block():
            return ConverseBlock(num_feat, num_feat, kernel_size, 1, padding, padding_mode, eps, operator)

        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 1)
        self.conv_body = nn.Sequential(*[block() for _ in range(num_block)])
        for i, stage_scale in enumerate(stages, start=1):
            setattr(self, f'upconv{i}', block())
            setattr(self, f'up{i}', _up_layer(operator, num_feat, stage_scale, up_kernel_size, up_padding,
                                              up_padding_mode, up_eps))
        self.num_stages = len(stages)
        self.conv_hres = block()
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 1, bias=False)
        self.act = nn.GELU()

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        out = self.conv_body(self.act(self.conv_first(x)))
        for i in range(1, self.num_stages + 1):
            out = self.act(getattr(self, f'up{i}')(getattr(self, f'upconv{i}')(out)))
        out = self.conv_last(self.act(self.conv_hres(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)


@ARCH_REGISTRY.register()
class ConverseUpMSRResNet(nn.Module):
    """ConverseUp-SRResNet: BasicSR's MSRResNet body (3×3 convs, residual blocks without BN) with
    the pixel-shuffle upsampler replaced by Converse2D (scale 2 per stage, or 3)."""

    def __init__(self, num_in_ch=3, num_out_ch=3, num_feat=64, num_block=16, upscale=4, up_kernel_size=None,
                 up_padding=2, up_padding_mode='replicate', up_eps=1e-3, operator='converse'):
        super().__init__()
        stages = _check_upscale(upscale)
        self.num_in_ch, self.upscale = num_in_ch, upscale
        self.conv_first = nn.Conv2d(num_in_ch, num_feat, 3, 1, 1)
        self.body = nn.Sequential(*[ResidualBlockNoBN(num_feat=num_feat) for _ in range(num_block)])
        for i, stage_scale in enumerate(stages, start=1):
            setattr(self, f'upconv{i}', nn.Conv2d(num_feat, num_feat, 3, 1, 1))
            setattr(self, f'up{i}', _up_layer(operator, num_feat, stage_scale, up_kernel_size, up_padding,
                                              up_padding_mode, up_eps))
        self.num_stages = len(stages)
        self.conv_hr = nn.Conv2d(num_feat, num_feat, 3, 1, 1)
        self.conv_last = nn.Conv2d(num_feat, num_out_ch, 3, 1, 1)
        self.lrelu = nn.LeakyReLU(negative_slope=0.1, inplace=True)
        default_init_weights([self.conv_first, self.conv_hr, self.conv_last] +
                             [getattr(self, f'upconv{i}') for i in range(1, self.num_stages + 1)], 0.1)

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        out = self.body(self.lrelu(self.conv_first(x)))
        for i in range(1, self.num_stages + 1):
            out = self.lrelu(getattr(self, f'up{i}')(getattr(self, f'upconv{i}')(out)))
        out = self.conv_last(self.lrelu(self.conv_hr(out)))
        return out + F.interpolate(x, scale_factor=self.upscale, mode='bilinear', align_corners=False)
