"""Building blocks shared by the archs: LayerNorm2d, the reverse-convolution blocks, and the
operator factory that turns a Converse arch into its Conv / ConvT baseline."""
import torch
from torch import nn

from ..ops import Converse2D
from ..ops.converse2d import check_input, check_scale, is_channels_last  # noqa: F401  (check_input: for the archs)
from .inference_path import run_branch, scaled, works_in_place

OPERATORS = ('converse', 'conv', 'convtranspose')


class LayerNorm2d(nn.Module):
    """LayerNorm over the channel axis of an ``(N, C, H, W)`` map, with per-channel affine.

    ``pointwise``: each output pixel depends on that input pixel only (see :mod:`.inference_path`).

    Args:
        num_channels (int): Channel number C of the input.
        eps (float): Added to the variance. Default: 1e-5.
    """

    pointwise = True

    def __init__(self, num_channels, eps=1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_channels))
        self.bias = nn.Parameter(torch.zeros(num_channels))

    def forward(self, x):
        # F.layer_norm over the last axis on a channels-last view: one fused kernel instead of a
        # chain of elementwise passes; the result is returned in the input's memory layout.
        y = nn.functional.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1], ), self.weight, self.bias, self.eps)
        return y.permute(0, 3, 1, 2)

    def extra_repr(self):
        return f'{self.weight.shape[0]}, eps={self.eps}'


class _Resample(nn.Module):
    """Depthwise Conv / ConvTranspose baseline with the same interface and output size as Converse2D.

    Args:
        operator (str): ``'conv'`` (nearest ×scale upsampling, then a depthwise 'same' convolution) or
            ``'convtranspose'`` (depthwise transposed convolution of stride ``scale``, centre-cropped).
        channels (int): Channel number (input = output).
        kernel_size (int): Kernel size of the depthwise layer.
        scale (int): Upsampling factor.
        padding_mode (str): Padding of the ``'conv'`` layer (Converse2D's ``'constant'`` is ``'zeros'``).
    """

    def __init__(self, operator, channels, kernel_size, scale, padding_mode):
        super().__init__()
        self.operator, self.scale, self.kernel_size = operator, scale, kernel_size
        if operator == 'conv':
            # scale > 1: nearest upsampling followed by a depthwise convolution (paper §3).
            self.layer = nn.Conv2d(channels, channels, kernel_size, padding='same', groups=channels,
                                   padding_mode='zeros' if padding_mode == 'constant' else padding_mode)
        else:
            self.layer = nn.ConvTranspose2d(channels, channels, kernel_size, stride=scale, groups=channels)

    @property
    def weight(self):
        return self.layer.weight

    def forward(self, x):
        if self.operator == 'conv':
            if self.scale > 1:
                x = nn.functional.interpolate(x, scale_factor=self.scale, mode='nearest')
            return self.layer(x)
        out = self.layer(x)  # (H − 1)·s + k: crop the (k − s) extra rows/cols around the centre
        extra_h, extra_w = out.shape[-2] - x.shape[-2] * self.scale, out.shape[-1] - x.shape[-1] * self.scale
        top, left = extra_h // 2, extra_w // 2
        if extra_h < 0 or extra_w < 0:
            out = nn.functional.pad(out, (0, max(-extra_w, 0), 0, max(-extra_h, 0)))
            top = left = 0
        return out[..., top:top + x.shape[-2] * self.scale, left:left + x.shape[-1] * self.scale]


def make_operator(operator, channels, kernel_size, scale=1, padding=2, padding_mode='circular', eps=1e-5):
    """``Converse2D`` for ``operator='converse'``; the paper's depthwise Conv / ConvT baselines
    (same kernel size and output size) for ``'conv'`` / ``'convtranspose'``.

    Args:
        operator (str): One of ``OPERATORS``: ``'converse'``, ``'conv'``, ``'convtranspose'``.
        channels (int): Channel number (input = output; the layers are depthwise).
        kernel_size (int): Kernel size.
        scale (int): Upsampling factor. Default: 1.
        padding (int): Converse2D's padding before the solve, cropped afterwards. Default: 2.
        padding_mode (str): ``'circular'``, ``'reflect'``, ``'replicate'`` or ``'constant'``.
            Default: 'circular'.
        eps (float): Converse2D's lower bound of λ. Default: 1e-5.

    Returns:
        nn.Module: the layer, mapping ``(N, C, H, W)`` to ``(N, C, H·scale, W·scale)``.
    """
    if operator == 'converse':
        return Converse2D(channels, channels, kernel_size, scale, padding, padding_mode, eps)
    if operator not in OPERATORS:
        raise ValueError(f'operator must be one of {OPERATORS}, got {operator!r}')
    return _Resample(operator, channels, kernel_size, check_scale(scale), padding_mode)


def residual_stream(x):
    """The blocks' input ``x``, channels last; under autocast also in float32.

    Channels last: LayerNorm over channels and the 1×1 convolutions then read contiguous pixels,
    and Converse2D keeps the layout (without autograd it also computes in it), so no block
    transposes its activations. Under autocast the residual sum is carried in float32: the
    branches still run in half precision, but dozens of blocks adding in bfloat16 would lose the
    low bits of the image (ConverseNet runs 35 blocks).
    """
    if x.dtype in (torch.float16, torch.bfloat16) and torch.is_autocast_enabled(x.device.type):
        x = x.float()
    return x.contiguous(memory_format=torch.channels_last)


def in_layout_of(x, out):
    """``out`` in the memory format of the arch's input ``x``: channels last for a channels-last input, else
    contiguous NCHW. The blocks run channels last inside (:func:`residual_stream`); what an arch returns must be
    what its caller gave, as BasicSR's discriminators and losses call ``.view`` on the output."""
    return out.contiguous(memory_format=torch.channels_last if is_channels_last(x) else torch.contiguous_format)


class ConverseBlock(nn.Module):
    """Two residual sub-blocks in Transformer layout; the first mixes space with reverse convolution.

    ``conv1``: LayerNorm2d → 1×1 (C → 2C) → GELU → Converse2D(2C) → GELU → 1×1 (2C → C);
    ``conv2``: LayerNorm2d → 1×1 (C → 2C) → GELU → 1×1 (2C → C). Indices match the checkpoints.

    Args:
        in_ch (int): Channel number of the input; must equal ``out_ch`` (the block is residual).
        out_ch (int): Channel number of the output.
        kernel_size (int): Kernel size of the Converse2D layer. Default: 3.
        scale (int): Scale of the Converse2D layer. Default: 1.
        padding (int): Padding of the Converse2D layer. Default: 2.
        padding_mode (str): Padding mode of the Converse2D layer. Default: 'circular'.
        eps (float): Lower bound of the Converse2D layer's λ. Default: 1e-5.
        operator (str): ``'converse'``, or ``'conv'`` / ``'convtranspose'`` for the paper's baselines.
            Default: 'converse'.
    """

    def __init__(self, in_ch, out_ch, kernel_size=3, scale=1, padding=2, padding_mode='circular', eps=1e-5,
                 operator='converse'):
        super().__init__()
        if in_ch != out_ch:
            raise ValueError(f'ConverseBlock is residual: in_ch ({in_ch}) must equal out_ch ({out_ch})')
        hidden = 2 * out_ch
        self.conv1 = nn.Sequential(
            LayerNorm2d(in_ch), nn.Conv2d(in_ch, hidden, 1), nn.GELU(),
            make_operator(operator, hidden, kernel_size, scale, padding, padding_mode, eps), nn.GELU(),
            nn.Conv2d(hidden, out_ch, 1))
        self.conv2 = nn.Sequential(
            LayerNorm2d(in_ch), nn.Conv2d(out_ch, hidden, 1), nn.GELU(), nn.Conv2d(hidden, out_ch, 1))

    def branch_scales(self):
        """The factors of the two residual branches (None: unscaled)."""
        return None, None

    def forward(self, x):
        x = residual_stream(x)
        alpha1, alpha2 = self.branch_scales()
        if works_in_place(self, x):
            x = run_branch(self.conv1, x, alpha1, into_residual=False)
            return run_branch(self.conv2, x, alpha2, into_residual=True)
        x = scaled(self.conv1(x), alpha1) + x
        return scaled(self.conv2(x), alpha2) + x


class ConverseBlockAlpha(ConverseBlock):
    """ConverseBlock whose residual branches are scaled by learnable ``alpha1``/``alpha2`` (init 0).

    Args: as :class:`ConverseBlock`. At initialisation the block is the identity.
    """

    def __init__(self, in_ch, out_ch, kernel_size=3, scale=1, padding=2, padding_mode='circular', eps=1e-5,
                 operator='converse'):
        super().__init__(in_ch, out_ch, kernel_size, scale, padding, padding_mode, eps, operator)
        self.alpha1 = nn.Parameter(torch.zeros(1, out_ch, 1, 1))
        self.alpha2 = nn.Parameter(torch.zeros(1, out_ch, 1, 1))

    def branch_scales(self):
        return self.alpha1, self.alpha2


class ConverseBody(nn.Module):
    """A stack of blocks held as ``m_body`` (the checkpoints' ``p.m_body.*`` layout).

    Args:
        blocks (list[nn.Module]): The blocks, applied in order.
    """

    def __init__(self, blocks):
        super().__init__()
        self.m_body = nn.Sequential(*blocks)

    def forward(self, x):
        return self.m_body(x)
