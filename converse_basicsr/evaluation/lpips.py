"""LPIPS for converse-compare, from a local weights file only (BasicSR 1.4.2 has no LPIPS; nothing is downloaded).

The network is the published LPIPS "alex" variant, version 0.1: the five ReLU outputs of torchvision's AlexNet
feature stack on the input scaled to [-1, 1] and shifted/scaled per channel, each unit-normalised over
channels, the squared difference weighted per channel by a 1×1 convolution (``lin0`` … ``lin4``), averaged
over space and summed over the five layers. The weights file is the state dict of ``lpips.LPIPS(net='alex')``
(keys ``net.slice1.0.weight`` …, ``lin0.model.1.weight`` …), read with ``weights_only=True`` or as safetensors.
"""
import numpy as np
import torch
from torch import nn

from converse_basicsr.utils.options import OptionError

# torchvision's AlexNet ``features``: index → (in, out, kernel, stride, padding) of its convolutions; the layers
# the lpips package groups into slice1 … slice5 end after the ReLUs of features 1, 4, 7, 9 and 11.
ALEX_CONVS = {
    0: (3, 64, 11, 4, 2), 3: (64, 192, 5, 1, 2), 6: (192, 384, 3, 1, 1), 8: (384, 256, 3, 1, 1), 10: (256, 256, 3, 1, 1)
}
SLICE_ENDS = (2, 5, 8, 10, 12)
CHANNELS = (64, 192, 384, 256, 256)
SHIFT = (-.030, -.088, -.188)
SCALE = (.458, .448, .450)


class LPIPS(nn.Module):
    """LPIPS (alex, v0.1); :meth:`distance` of two uint8 RGB images, lower is more alike."""

    def __init__(self):
        super().__init__()
        self.register_buffer('shift', torch.tensor(SHIFT).view(1, 3, 1, 1))
        self.register_buffer('scale', torch.tensor(SCALE).view(1, 3, 1, 1))
        layers = []
        for index in range(SLICE_ENDS[-1]):
            if index in ALEX_CONVS:
                cin, cout, k, stride, pad = ALEX_CONVS[index]
                layers.append(nn.Conv2d(cin, cout, k, stride, pad))
            elif index in (2, 5):
                layers.append(nn.MaxPool2d(3, 2))
            else:
                layers.append(nn.ReLU())
        self.features = nn.ModuleList(layers)
        self.lins = nn.ModuleList(nn.Conv2d(c, 1, 1, bias=False) for c in CHANNELS)

    def forward(self, x, y):
        """LPIPS of (N, 3, H, W) tensors in [-1, 1]: (N,)."""
        fx, fy = (x - self.shift) / self.scale, (y - self.shift) / self.scale
        total = 0
        layer = 0
        for index, module in enumerate(self.features):
            fx, fy = module(fx), module(fy)
            if index + 1 in SLICE_ENDS:
                nx = fx / (fx.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                ny = fy / (fy.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
                total = total + self.lins[layer]((nx - ny).pow(2)).mean(dim=(2, 3))[:, 0]
                layer += 1
        return total

    @torch.no_grad()
    def distance(self, img, img2):
        """LPIPS of two HW(C) uint8 images (gray is repeated to RGB)."""

        def tensor(a):
            a = np.repeat(a[..., None], 3, 2) if a.ndim == 2 else np.repeat(a, 3, 2) if a.shape[2] == 1 else a
            return torch.from_numpy(np.ascontiguousarray(a)).permute(2, 0, 1)[None].float() / 127.5 - 1

        return float(self(tensor(img), tensor(img2))[0])


def _state_key(index):
    """Our feature index → the lpips package's key prefix (``net.slice<k>.<index>``)."""
    piece = next(k for k, end in enumerate(SLICE_ENDS) if index < end) + 1
    return f'net.slice{piece}.{index}'


def load_lpips(path):
    """:class:`LPIPS` with the weights of ``path`` (see the module docstring); an :class:`OptionError` naming the
    file and the first missing or misshapen key otherwise."""
    try:
        if str(path).endswith('.safetensors'):
            from safetensors.torch import load_file
            state = load_file(str(path))
        else:
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # unreadable: one line naming the file
        raise OptionError(f'lpips_weights {path}: cannot be read ({type(err).__name__}: {err})') from None
    if not isinstance(state, dict):
        raise OptionError(f'lpips_weights {path}: holds {type(state).__name__}, not a state dict')
    net = LPIPS()
    wanted = {}
    for index in ALEX_CONVS:
        for part in ('weight', 'bias'):
            wanted[f'features.{index}.{part}'] = f'{_state_key(index)}.{part}'
    for layer in range(len(CHANNELS)):
        wanted[f'lins.{layer}.weight'] = f'lin{layer}.model.1.weight'
    mine = net.state_dict()
    loaded = {}
    for key, theirs in wanted.items():
        value = state.get(theirs)
        if not isinstance(value, torch.Tensor) or value.shape != mine[key].shape:
            got = 'missing' if value is None else f'shape {tuple(getattr(value, "shape", ()))}'
            raise OptionError(f'lpips_weights {path}: key {theirs} {got}, expected shape {tuple(mine[key].shape)} '
                              "(the state dict of lpips.LPIPS(net='alex'))")
        loaded[key] = value.float()
    net.load_state_dict(loaded, strict=False)
    return net.eval()
