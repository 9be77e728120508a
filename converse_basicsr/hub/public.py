"""Any checkpoint spandrel can load, by path: :func:`load_any` returns the network and what spandrel detected.

Files are read without running code: ``.pth`` / ``.pt`` / ``.ckpt`` with ``torch.load(weights_only=True)``,
``.safetensors`` with safetensors. The state dict is unwrapped as spandrel does (``params_ema``, ``params``,
``state_dict``, ``model``, ``module.`` prefixes, ...) and detected by spandrel 0.4.2's archs plus this package's
(``spandrel_arches.install()``). Every failure is a :class:`~.zoo.ZooError` naming the file and the routes tried.
"""
from dataclasses import dataclass
from pathlib import Path

import torch

from .spandrel_arches import ARCH_PREFIX, install
from .state_dicts import ZooError, read_checkpoint_file

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


def pad_to_size(x, pad_w, pad_h):
    """``x`` padded on the right and bottom as spandrel pads for its size requirements: ``reflect`` as far as
    the image allows (``size - 1`` pixels), ``replicate`` beyond."""
    h, w = x.shape[-2:]
    reflect_w, reflect_h = min(pad_w, w - 1), min(pad_h, h - 1)
    if reflect_w or reflect_h:
        x = torch.nn.functional.pad(x, (0, reflect_w, 0, reflect_h), mode='reflect')
    if pad_w > reflect_w or pad_h > reflect_h:
        x = torch.nn.functional.pad(x, (0, pad_w - reflect_w, 0, pad_h - reflect_h), mode='replicate')
    return x


class SpandrelModule(torch.nn.Module):
    """A spandrel descriptor's network as a plain ``forward(x)``: its ``call_fn`` (kernels, noise maps), the input
    padded to the descriptor's size requirements (:func:`pad_to_size`, as spandrel does) and the padding cropped
    off; no clamping, gradients kept."""

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
            x = pad_to_size(x, pad_w, pad_h)
        return self._call(self.net, x)[..., :h * self.upscale, :w * self.upscale]


def canonical_state_dict(checkpoint, path):
    """The state dict of tensors in a loaded checkpoint, unwrapped as spandrel does (``params_ema``, ``params``,
    ``state_dict``, ``model``, ``module.`` prefixes, ...); a ZooError naming ``path`` when it holds none."""
    from spandrel import canonicalize_state_dict
    if not isinstance(checkpoint, dict):
        raise ZooError(f'{path} does not hold a state dict (got {type(checkpoint).__name__})')
    state = canonicalize_state_dict(checkpoint)
    state = {k: v for k, v in state.items() if torch.is_tensor(v)} if isinstance(state, dict) else {}
    if not state:
        raise ZooError(f'{path} holds no tensors a loader could use')
    return state


def read_checkpoint(path):
    """``(checkpoint, safetensors metadata or None)`` of ``path``, read once and without running code:
    ``.pth`` / ``.pt`` / ``.ckpt`` with ``torch.load(weights_only=True)``, ``.safetensors`` with safetensors."""
    path = Path(path)
    if path.suffix.lower() not in EXTENSIONS:
        raise ZooError(f'{path} is not a PyTorch checkpoint: unsupported checkpoint extension {path.suffix!r} '
                       f'(expected {", ".join(EXTENSIONS)}, or .onnx)')
    # corrupt, truncated, or a pickle of more than tensors: refused, never run
    return read_checkpoint_file(path, expected='a plain state dict of tensors')


def read_state_dict_file(path):
    """The canonical state dict of ``path`` (no code run on load); a ZooError naming the file otherwise."""
    return canonical_state_dict(read_checkpoint(path)[0], path)


def detect(state, path='state dict'):
    """``(nn.Module in eval mode, PublicModel)`` for a state dict spandrel (with our archs) recognises; a
    ``SpandrelNet`` fine-tune (keys under ``net.``: ``spandrel_arches.SpandrelNetArch``) comes back as the
    :class:`SpandrelModule` it was saved from."""
    from spandrel import MAIN_REGISTRY, UnsupportedModelError
    install()
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


def load_any(path):
    """``(nn.Module in eval mode, PublicModel)`` for any checkpoint spandrel (with our archs) recognises."""
    return detect(read_state_dict_file(path), path)


def check_protocol(model, scale, channels):
    """A ZooError naming the source and the detected values when a :class:`~.resolver.ResolvedModel` does not fit
    the protocol (values the source does not tell are not checked)."""
    info, problems = model.info, []
    if info.get('scale') not in (None, scale):
        problems.append(f"scale x{info['scale']}, the protocol x{scale}")
    found = {info.get('in_channels'), info.get('out_channels')} - {None}
    if found and found != {channels}:
        problems.append(f"{info.get('in_channels')}->{info.get('out_channels')} channels, the protocol {channels}")
    if problems:
        raise ZooError(f"{info['source']}: {model.label} does not fit the protocol ({'; '.join(problems)})")
