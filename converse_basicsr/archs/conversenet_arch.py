"""ConverseNet, the paper's blind deblurring network, registered in BasicSR's ``ARCH_REGISTRY``."""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from .blocks import ConverseBlock, ConverseBody, check_input, in_layout_of


@ARCH_REGISTRY.register()
class ConverseNet(nn.Module):
    """ConverseNet (blind deblurring): 1×1 in, a body of ``num_block`` ConverseBlocks applied
    ``num_iter`` times with shared weights, 1×1 out. Defaults reproduce ``conversenet.pth``.

    Args:
        num_in_ch (int): Channel number of inputs. Default: 3.
        num_out_ch (int | None): Channel number of outputs; None: ``num_in_ch``. Default: None.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of ConverseBlocks in the body. Default: 7.
        num_iter (int): How many times the body is applied (same weights each time). Default: 5.
        kernel_size (int): Kernel size of each block's Converse2D. Default: 3.
        padding (int): Padding of each block's Converse2D. Default: 2.
        padding_mode (str): Padding mode of each block's Converse2D. Default: 'circular'.
        eps (float): Lower bound of each Converse2D's λ. Default: 1e-5.
        operator (str): ``'converse'``; ``'conv'`` builds the paper's ConvNet baseline, ``'convtranspose'``
            its transposed-convolution counterpart. Default: 'converse'.
    """

    def __init__(self, num_in_ch=3, num_out_ch=None, num_feat=64, num_block=7, num_iter=5, kernel_size=3, padding=2,
                 padding_mode='circular', eps=1e-5, operator='converse'):
        super().__init__()
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.num_in_ch, self.num_iter = num_in_ch, num_iter
        self.conv1 = nn.Conv2d(num_in_ch, num_feat, 1)
        self.p = ConverseBody([
            ConverseBlock(num_feat, num_feat, kernel_size, 1, padding, padding_mode, eps, operator)
            for _ in range(num_block)
        ])
        self.conv2 = nn.Conv2d(num_feat, num_out_ch, 1)

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        out = self.conv1(x)
        for _ in range(self.num_iter):
            out = self.p(out)
        return in_layout_of(x, self.conv2(out))
