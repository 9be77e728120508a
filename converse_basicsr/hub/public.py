"""Any checkpoint spandrel can load, by path: :func:`load_any` returns the network and what spandrel detected.

Files are read without running code: ``.pth`` / ``.pt`` / ``.ckpt`` with ``torch.load(weights_only=True)``,
``.safetensors`` with safetensors. The state dict is unwrapped as spandrel does (``params_ema``, ``params``,
``state_dict``, ``model``, ``module.`` prefixes, ...) and detected by spandrel 0.4.2's archs plus this package's
(``spandrel_arches.install()``). Every failure is a :class:`~.zoo.ZooError` naming the file and the routes tried.
"""
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .spandrel_arches import ARCH_PREFIX, install
from .zoo import ZooError, load_pretrained

EXTENSIONS = ('.pth', '.pt', '.ckpt', '.safetensors')
ROUTES = 'zoo checkpoints (sha256, then names and shapes), spandrel 0.4.2 archs with the Converse archs installed'


@dataclass(frozen=True)
class PublicModel:
    """What was detected in a file: arch name, scale, channels, minimum input side, tiling, purpose."""
    path: str
    arch: str
    scale: int
    in_channels: int
    out_channels: int
    min_size: int
    multiple_of: int
    tiling: str
    purpose: str
    tags: tuple = ()

    def __str__(self):
        return (f'{self.arch} x{self.scale}, {self.in_channels}->{self.out_channels} channels, '
                f'min input {self.min_size}, tiling {self.tiling.lower()} ({self.path})')


class SpandrelModule(torch.nn.Module):
    """A spandrel descriptor's network as a plain ``forward(x)``: its ``call_fn`` (kernels, noise maps), the input
    padded to the descriptor's size requirements and the padding cropped off; no clamping, gradients kept."""

    def __init__(self, descriptor):
        super().__init__()
        self.net = descriptor.model
        self._call = descriptor._call_fn  # spandrel keeps it private; it is the arch's documented call convention
        self.size_requirements = descriptor.size_requirements
        self.upscale, self.num_in_ch = descriptor.scale, descriptor.input_channels
        # spandrel's default call is model(image): then the network runs as it is on any input size
        self.plain = self._call.__module__ == type(descriptor).__module__ and self.size_requirements.none

    def forward(self, x):
        h, w = x.shape[-2:]
        pad_w, pad_h = self.size_requirements.get_padding(w, h)
        if pad_w or pad_h:
            x = torch.nn.functional.pad(x, (0, pad_w, 0, pad_h), mode='replicate')
        return self._call(self.net, x)[..., :h * self.upscale, :w * self.upscale]


def read_state_dict_file(path):
    """The canonical state dict of ``path`` (no code run on load); a ZooError naming the file otherwise."""
    from spandrel import canonicalize_state_dict
    path = Path(path)
    if path.suffix.lower() not in EXTENSIONS:
        raise ZooError(f'{path}: unsupported checkpoint extension {path.suffix!r} (expected {", ".join(EXTENSIONS)})')
    try:
        if path.suffix.lower() == '.safetensors':
            from safetensors.torch import load_file
            state = load_file(str(path), device='cpu')
        else:
            state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as err:  # corrupt, truncated, or a pickle of more than tensors: refused, never executed
        first = str(err).splitlines()[0] if str(err) else ''
        raise ZooError(f'cannot read checkpoint {path}: not a plain state dict of tensors '
                       f'({type(err).__name__}: {first[:200]})') from None
    if not isinstance(state, dict):
        raise ZooError(f'{path} does not hold a state dict (got {type(state).__name__})')
    state = canonicalize_state_dict(state)
    state = {k: v for k, v in state.items() if torch.is_tensor(v)} if isinstance(state, dict) else {}
    if not state:
        raise ZooError(f'{path} holds no tensors a loader could use')
    return state


def load_any(path):
    """``(nn.Module in eval mode, PublicModel)`` for any checkpoint spandrel (with our archs) recognises."""
    from spandrel import MAIN_REGISTRY, UnsupportedModelError
    install()
    state = read_state_dict_file(path)
    try:
        descriptor = MAIN_REGISTRY.load(state)
    except UnsupportedModelError:
        raise ZooError(f'{path}: no loader recognises this checkpoint (tried: {ROUTES}; '
                       f'first keys {list(state)[:4]})') from None
    except Exception as err:  # a detector claimed it but its loader failed: the file does not fit that arch
        raise ZooError(f'{path}: detected but could not be loaded ({type(err).__name__}: {err})') from None
    ours = descriptor.architecture.id.startswith(ARCH_PREFIX)
    # our archs keep their own forward (USRNet: forward(x, kernel, sf)) and attributes (periodic_boundary)
    module = descriptor.model if ours else SpandrelModule(descriptor)
    req = descriptor.size_requirements
    info = PublicModel(
        str(path), descriptor.architecture.name, descriptor.scale, descriptor.input_channels,
        descriptor.output_channels, max(req.minimum, 1), req.multiple_of, descriptor.tiling.name, descriptor.purpose,
        tuple(descriptor.tags))
    return module.eval(), info


def load_model_file(name_or_path, arch=None, **kwargs):
    """``zoo.load_pretrained(..., return_entry=True)``; a file it cannot place (no ``arch`` given) goes through
    :func:`load_any`: ``(module, None)``. Errors name the file and every route tried."""
    try:
        return load_pretrained(name_or_path, arch=arch, return_entry=True, **kwargs)
    except ZooError as err:
        if arch is not None or not os.path.isfile(str(name_or_path)) or 'cannot infer the arch' not in str(err):
            raise
    module, _ = load_any(name_or_path)
    return module.to(kwargs.get('device', 'cpu')), None


def check_protocol(info, scale, channels):
    """A ZooError naming the file and the detected values when the model does not fit the protocol."""
    problems = []
    if info.scale != scale:
        problems.append(f'scale x{info.scale}, the protocol x{scale}')
    if info.in_channels != channels or info.out_channels != channels:
        problems.append(f'{info.in_channels}->{info.out_channels} channels, the protocol {channels}')
    if problems:
        raise ZooError(f'{info.path}: detected {info.arch} does not fit the protocol ({"; ".join(problems)})')
