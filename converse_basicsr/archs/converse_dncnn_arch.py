"""Converse-DnCNN, the paper's denoising network, registered in BasicSR's ``ARCH_REGISTRY``."""
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY

from .blocks import ConverseBlock, check_input, in_layout_of


@ARCH_REGISTRY.register()
class ConverseDnCNN(nn.Module):
    """Converse-DnCNN (denoising): 1×1 head, ``num_block`` ConverseBlocks, 1×1 tail.

    The network predicts the clean image directly (no global residual). Defaults reproduce the
    published grayscale σ = 25 model (``converse_dncnn.pth``).

    Args:
        num_in_ch (int): Channel number of inputs. Default: 1.
        num_out_ch (int | None): Channel number of outputs; None: ``num_in_ch``. Default: None.
        num_feat (int): Channel number of intermediate features. Default: 64.
        num_block (int): Number of ConverseBlocks. Default: 20.
        kernel_size (int): Kernel size of each block's Converse2D. Default: 7.
        padding (int): Padding of each block's Converse2D. Default: 6.
        padding_mode (str): Padding mode of each block's Converse2D. Default: 'circular'.
        eps (float): Lower bound of each Converse2D's λ. Default: 1e-5.
        operator (str): ``'converse'``; ``'conv'`` / ``'convtranspose'`` build the paper's Conv-DnCNN /
            ConvT-DnCNN baselines. Default: 'converse'.
    """

    def __init__(self, num_in_ch=1, num_out_ch=None, num_feat=64, num_block=20, kernel_size=7, padding=6,
                 padding_mode='circular', eps=1e-5, operator='converse'):
        super().__init__()
        num_out_ch = num_in_ch if num_out_ch is None else num_out_ch
        self.num_in_ch = num_in_ch
        self.m_head = nn.Sequential(nn.Conv2d(num_in_ch, num_feat, 1))
        self.m_body = nn.Sequential(*[
            ConverseBlock(num_feat, num_feat, kernel_size, 1, padding, padding_mode, eps, operator)
            for _ in range(num_block)
        ])
        self.m_tail = nn.Sequential(nn.Conv2d(num_feat, num_out_ch, 1))

    def forward(self, x):
        check_input(x, self.num_in_ch, 'x')
        return in_layout_of(x, self.m_tail(self.m_body(self.m_head(x))))
