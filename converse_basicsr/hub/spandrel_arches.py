"""This package's archs as spandrel architectures: detection, hyper-parameters and honest descriptors; ``install()``.

After :func:`install`, ``spandrel.ModelLoader().load_from_file(path)`` loads the published checkpoints and
anything ``converse-train`` writes (``params`` / ``params_ema``, ConverseUp conversions of EDSR, MSRResNet
and RRDBNet included), rebuilt with the settings of the checkpoint's description (:mod:`.description`, read
from the state dict's ``_metadata``; a ``.safetensors`` file's metadata never reaches spandrel's archs, so
there the shapes and the arch defaults decide), and networks fine-tuned through ``SpandrelNet`` (keys under
``net.``). Detection is :func:`~.shape_inference.infer_arch`: a guess from the shapes that must
match the arch's names and shapes exactly, so it claims no other arch's checkpoint; ours are registered ahead
of spandrel's own archs (SCUNet's detector claims the published Converse-DnCNN otherwise).

Descriptors:
  * ``size_requirements.minimum``: the smallest input the model runs on, from its Converse2D layers
    (:func:`converse_basicsr.ops.padding.min_input_size`; measured for the published models in tests/hub).
  * ``tiling``: Converse-USRNet ``INTERNAL`` (its data step treats the whole image as periodic: tiles need the
    wrap-around context that ``converse_basicsr.inference`` gives them); the others ``DISCOURAGED`` (each
    Converse2D is a regularised global FFT solve over its input).
  * ``supports_half`` / ``supports_bfloat16``: False (the FFT solve is not measured in half precision here).
  * Converse-USRNet is non-blind: its ``call_fn`` takes the blur kernel from ``descriptor.model.blur_kernel``
    (``(1, 1, k, k)``, set with :func:`set_blur_kernel`); calling it without one is an error.
"""
import torch
from spandrel import MAIN_REGISTRY, Architecture, ArchSupport, ImageModelDescriptor, ModelTiling, SizeRequirements

from ..ops.padding import min_input_size  # the descriptors' size_requirements.minimum
from .description import KEY
from .shape_inference import INFERENCES, infer_arch
from .zoo import build_arch

ARCH_PREFIX = 'converse_basicsr.'  # spandrel arch ids: converse_basicsr.ConverseDnCNN, ...


def scale_of(arch, kwargs):
    if arch == 'ConverseUp':
        base = kwargs['base']
        return base.get('upscale', base.get('scale', 4))
    return kwargs.get('upscale', 1)


def set_blur_kernel(descriptor, kernel):
    """Give a Converse-USRNet descriptor the ``(1, 1, k, k)`` blur kernel its next calls deblur with."""
    model = descriptor.model
    k = model.kernel_size
    kernel = torch.as_tensor(kernel, dtype=torch.float32)
    if kernel.dim() == 2:
        kernel = kernel[None, None]
    if tuple(kernel.shape) != (1, 1, k, k):
        raise ValueError(f'Converse-USRNet needs a (1, 1, {k}, {k}) blur kernel, got {tuple(kernel.shape)}')
    model.blur_kernel = kernel
    return descriptor


def _call_with_kernel(model, image):
    kernel = getattr(model, 'blur_kernel', None)
    if kernel is None:
        raise ValueError('Converse-USRNet is non-blind: set its blur kernel first '
                         '(converse_basicsr.spandrel_support.set_blur_kernel(descriptor, kernel))')
    return model(image, kernel.to(image), 1)


class ConverseArch(Architecture[torch.nn.Module]):
    """One of this package's arch types (``arch_type``: its name in BasicSR's ``ARCH_REGISTRY``)."""

    def __init__(self, arch_type):
        self.arch_type = arch_type
        super().__init__(id=ARCH_PREFIX + arch_type, name=arch_type,
                         detect=lambda state_dict: infer_arch(state_dict, arch_type) is not None)

    def load(self, state_dict):
        guess = infer_arch(state_dict, self.arch_type)
        if guess is None:
            raise ValueError(f'not a {self.arch_type} state dict')
        arch, kwargs = guess
        described = (getattr(state_dict, '_metadata', None) or {}).get(KEY)
        if isinstance(described, dict) and described.get('type') == arch:  # written by this package: its settings
            kwargs = dict(described.get('kwargs') or {})
        model = build_arch(arch, kwargs)
        scale = scale_of(arch, kwargs)
        non_blind = arch == 'ConverseUSRNet'
        first, last = _channels(model)
        return ImageModelDescriptor(model, state_dict, architecture=self, purpose='SR' if scale > 1 else 'Restoration',
                                    tags=_tags(kwargs), supports_half=False, supports_bfloat16=False, scale=scale,
                                    input_channels=first, output_channels=last,
                                    size_requirements=SizeRequirements(minimum=min_input_size(model)),
                                    tiling=ModelTiling.INTERNAL if non_blind else ModelTiling.DISCOURAGED,
                                    call_fn=_call_with_kernel if non_blind else None)


def _channels(model):
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    first = getattr(model, 'num_in_ch', None) or convs[0].in_channels
    if hasattr(model, 'scale') and getattr(model, 'scale') in (1, 2) and type(model).__name__ == 'ConverseUp':
        first = convs[0].in_channels // (16 if model.scale == 1 else 4)  # RRDBNet pixel-unshuffles ×1 and ×2 input
    return first, convs[-1].out_channels


def _tags(kwargs):
    flat = dict(kwargs.get('base', {}), **{k: v for k, v in kwargs.items() if k != 'base'})
    short = {'num_feat': 'nf', 'num_block': 'nb', 'kernel_size': 'k', 'num_iter': 'iter', 'upscale': 'x'}
    return [f'{flat[k]}{s}' if s != 'x' else f'x{flat[k]}' for k, s in short.items() if k in flat]


class SpandrelNetArch(Architecture[torch.nn.Module]):
    """A network fine-tuned through ``SpandrelNet`` and saved wrapped (every key under ``net.``): the wrapped
    network, detected by the registry it is loaded through."""

    def __init__(self, registry):
        self.registry = registry
        super().__init__(id=ARCH_PREFIX + 'SpandrelNet', name='SpandrelNet',
                         detect=lambda state_dict: bool(state_dict) and all(k.startswith('net.') for k in state_dict))

    def load(self, state_dict):
        return self.registry.load({k[len('net.'):]: v for k, v in state_dict.items()})


ARCHITECTURES = [ConverseArch(name) for name in INFERENCES] + [SpandrelNetArch(MAIN_REGISTRY)]


def install(registry=MAIN_REGISTRY):
    """Add this package's archs to spandrel's ``registry`` (default: the one ``ModelLoader()`` uses), detected
    before every arch already there; calling it again changes nothing. Returns the arch ids added."""
    archs = [a if not isinstance(a, SpandrelNetArch) else SpandrelNetArch(registry) for a in ARCHITECTURES]
    ours = {a.id for a in archs}
    others = tuple(s.architecture.id for s in registry.architectures() if s.architecture.id not in ours)
    added = registry.add(*[ArchSupport.from_architecture(a, before=others) for a in archs], ignore_duplicates=True)
    return [a.architecture.id for a in added]
