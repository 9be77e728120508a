"""Models outside BasicSR's registry for tests/evaluation/test_comparison.py, loaded as
``tests.helpers.compare_models:<callable>``."""
import torch
from torch.nn import functional as F


class NearestSR(torch.nn.Module):
    """Nearest-neighbour ×scale upsampling followed by a fixed 3×3 box blur per channel (no parameters)."""

    def __init__(self, scale=4):
        super().__init__()
        self.upscale = scale

    def forward(self, x):
        up = F.interpolate(x, scale_factor=self.upscale, mode='nearest')
        weight = torch.full((x.shape[1], 1, 3, 3), 1 / 9, dtype=x.dtype, device=x.device)
        return F.conv2d(F.pad(up, (1, 1, 1, 1), mode='replicate'), weight, groups=x.shape[1])


def nearest_sr(scale=4):
    return NearestSR(scale)


def gray_model():
    """A model with the wrong channel count for RGB protocols (1 → 1): its row must fail."""
    return torch.nn.Conv2d(1, 1, 3, padding=1)


def nan_model(scale=4):
    """A model of the right output shape whose output is not finite."""
    return NanModel(scale)


class NanModel(NearestSR):

    def forward(self, x):
        return super().forward(x) * float('nan')
