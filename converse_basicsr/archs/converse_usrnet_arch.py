"""Converse-USRNet, the paper's non-blind deblurring / SR network, registered in BasicSR's ``ARCH_REGISTRY``."""
import torch
from torch import nn
from torch.nn import functional as F

from basicsr.utils.registry import ARCH_REGISTRY

from ..ops import converse2d
from ..ops.converse2d import check_scale
from .blocks import OPERATORS, ConverseBlockAlpha, ConverseBody, check_input, in_layout_of


def _apply_in(layer, x):
    """``layer`` (an ``nn.Linear`` or ``nn.Conv2d``) applied in ``x``'s dtype, whatever its parameters' dtype.

    The kernel path runs in float32 also in a ``.half()`` model (see ``ConverseUSRNet.forward``); the
    half-precision weights upcast exactly.
    """
    weight = layer.weight.to(x.dtype)
    bias = None if layer.bias is None else layer.bias.to(x.dtype)
    if isinstance(layer, nn.Linear):
        return F.linear(x, weight, bias)
    return F.conv2d(x, weight, bias, layer.stride, layer.padding, layer.dilation, layer.groups)  # 1×1, no padding


class KernelNet(nn.Module):
    """Blur kernel ``(N, 1, k, k)`` → kernel features ``(N, num_kernel_feat, k, k)``, computed in the kernel's dtype.

    Args:
        kernel_size (int): Size k of the (square) blur kernel. Default: 7.
        hidden (int): Width of the two hidden fully connected layers. Default: 64.
        num_kernel_feat (int): Number of kernel feature maps. Default: 16.
    """

    def __init__(self, kernel_size=7, hidden=64, num_kernel_feat=16):
        super().__init__()
        self.kernel_size, self.num_kernel_feat = kernel_size, num_kernel_feat
        self.fc1 = nn.Linear(kernel_size * kernel_size, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_kernel_feat * kernel_size * kernel_size)
        self.act = nn.GELU()

    def forward(self, kernel):
        feat = self.act(_apply_in(self.fc2, self.act(_apply_in(self.fc1, kernel.flatten(1)))))
        return _apply_in(self.fc3, feat).view(-1, self.num_kernel_feat, self.kernel_size, self.kernel_size)


class KernelDataStep(nn.Module):
    """The data step: reverse convolution with a per-sample kernel (no padding, circular),
    ``λ = sigmoid(alpha − 9) + eps``; or the Conv / ConvT baseline with that kernel.

    Args:
        num_feat (int): Channel number of the features. Default: 64.
        eps (float): Lower bound of λ. Default: 1e-3.
        operator (str): ``'converse'``, ``'conv'`` or ``'convtranspose'``. Default: 'converse'.
    """

    def __init__(self, num_feat=64, eps=1e-3, operator='converse'):
        super().__init__()
        self.operator, self.eps = operator, eps
        if operator == 'converse':
            self.alpha = nn.Parameter(torch.zeros(1, num_feat, 1, 1))

    def forward(self, x, kernel, sf):
        if self.operator == 'converse':
            return converse2d(x, kernel, self.alpha, scale=sf, padding=0, padding_mode='circular', eps=self.eps)
        n, c, h, w = x.shape
        k = kernel.shape[-1]
        # the kernels are computed in float32 for half-precision features: the baselines convolve in x's dtype
        weight = kernel.to(x.dtype).expand(n, c, k, k).reshape(n * c, 1, k, k)
        if self.operator == 'conv':
            if sf > 1:
                x = F.interpolate(x, scale_factor=sf, mode='nearest')
            x = F.pad(x, (k // 2, (k - 1) // 2, k // 2, (k - 1) // 2), mode='circular')
            return F.conv2d(x.reshape(1, n * c, *x.shape[-2:]), weight, groups=n * c).view(n, c, h * sf, w * sf)
        out = F.conv_transpose2d(x.reshape(1, n * c, h, w), weight, stride=sf, groups=n * c)
        top = (out.shape[-2] - h * sf) // 2
        left = (out.shape[-1] - w * sf) // 2
        return out[..., top:top + h * sf, left:left + w * sf].reshape(n, c, h * sf, w * sf)


@ARCH_REGISTRY.register()
class ConverseUSRNet(nn.Module):
    """Converse-USRNet (non-blind deblurring / SR): ``forward(x, kernel, sf)``.

    A kernel net turns the blur kernel into features; per iteration a 1×1 conv makes them a
    per-sample, per-channel kernel for the data step (reverse convolution solved in closed form),
    followed by a prior of ``num_block`` ConverseBlockAlpha shared across iterations. Only the
    first iteration upsamples by ``sf``. Defaults reproduce ``converse_usrnet.pth``.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int | None): Channel number of outputs; None: ``num_in_ch``. Default: None.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of ConverseBlockAlpha in the prior. Default: 7.
        num_iter (int): Number of (data step, prior) iterations. Default: 5.
        kernel_size (int): Size of the (square) blur kernel the network takes. Default: 7.
        block_kernel_size (int): Kernel size of the prior blocks' Converse2D. Default: 3.
        padding (int): Padding of the prior blocks' Converse2D. Default: 2.
        padding_mode (str): Padding mode of the prior blocks' Converse2D. Default: 'circular'.
        eps (float): Lower bound of the prior blocks' Converse2D λ. Default: 1e-5.
        data_eps (float): Lower bound of the data step's λ. Default: 1e-3.
        kernel_hidden (int): Width of the kernel net's hidden layers. Default: 64.
        num_kernel_feat (int): Number of kernel feature maps. Default: 16.
        operator (str): ``'converse'``; ``'conv'`` / ``'convtranspose'`` build the baselines (Conv-USRNet).
            Default: 'converse'.
    """

    def __init__(self, num_in_ch=3, num_out_ch=None, num_feat=64, num_block=7, num_iter=5, kernel_size=7,
                 block_kernel_size=3, padding=2, padding_mode='circular', eps=1e-5, data_eps=1e-3, kernel_hidden=64,
                 num_kernel_feat=16, operator='converse'):
        super().__init__()
        if operator not in OPERATORS:
            raise ValueError(f'operator must be one of {OPERATORS}, got {operator!r}')
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.num_in_ch, self.num_iter, self.kernel_size = num_in_ch, num_iter, kernel_size
        # the data step solves over the unpadded map with circular boundaries: the whole image is treated as
        # periodic, so tiles (converse_basicsr.inference.restorer) take their border context from the opposite side
        self.periodic_boundary = operator == 'converse'
        self.kernelnet = KernelNet(kernel_size, kernel_hidden, num_kernel_feat)
        self.convs = nn.ModuleList([nn.Conv2d(num_kernel_feat, num_feat, 1) for _ in range(num_iter)])
        self.d = KernelDataStep(num_feat, data_eps, operator)
        self.p = ConverseBody([
            ConverseBlockAlpha(num_feat, num_feat, block_kernel_size, 1, padding, padding_mode, eps, operator)
            for _ in range(num_block)
        ])
        self.conv1 = nn.Conv2d(num_in_ch, num_feat, 1)
        self.conv2 = nn.Conv2d(num_feat, num_out_ch, 1)

    def forward(self, x, kernel, sf=1):
        """Restore ``x`` ``(N, num_in_ch, H, W)`` blurred by ``kernel`` ``(N or 1, 1, k, k)``; upsample by ``sf``."""
        check_input(x, self.num_in_ch, 'x')
        sf = check_scale(sf, 'sf')
        k = self.kernel_size
        if not torch.is_tensor(kernel) or kernel.dim() != 4 or kernel.shape[1:] != (1, k, k) \
                or kernel.shape[0] not in (1, x.shape[0]):
            shape = tuple(kernel.shape) if torch.is_tensor(kernel) else type(kernel).__name__
            raise ValueError(f'kernel must have shape (N, 1, {k}, {k}) with N = 1 or the batch size '
                             f'{x.shape[0]}, got {shape}')
        # The per-sample kernels are tiny but the closed-form solve is sensitive to them: for half-precision
        # input (under autocast, or a `.half()` model) they are still computed in float32, upcasting the weights.
        with torch.autocast(x.device.type, enabled=False):
            dtype = torch.float32 if x.dtype in (torch.float16, torch.bfloat16) else x.dtype
            kernel_feat = self.kernelnet(kernel.to(dtype))
            kernels = [_apply_in(conv, kernel_feat) for conv in self.convs]
        out = self.conv1(x)
        for i in range(self.num_iter):
            out = self.p(self.d(out, kernels[i], sf if i == 0 else 1))
        return in_layout_of(x, self.conv2(out))
