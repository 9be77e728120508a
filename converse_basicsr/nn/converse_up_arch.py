"""``ConverseUp``: a registered arch's upsampler converted to reverse convolution, from a YAML file.

    network_g:
      type: ConverseUp
      base: {type: EDSR, num_in_ch: 3, num_out_ch: 3, num_feat: 64, num_block: 16, upscale: 4}
      padding: 2              # the new upsamplers' Converse2D settings (the paper's by default)

builds ``base`` from BasicSR's ``ARCH_REGISTRY`` and converts it with
:func:`converse_basicsr.nn.convert.convert_upsamplers`. The result *is* the base model (same state-dict keys
for every unchanged layer, so a checkpoint of the base arch loads with ``strict_load_g: false``), of a
class named ``ConverseUp`` that subclasses both ``ConverseUp`` and the base's class.
"""
import copy

from torch import nn

from basicsr.utils import get_root_logger
from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.nn.convert import convert_upsamplers
from converse_basicsr.utils.imports import IMPORT_HINT

DEFAULT_BASE = {'type': 'MSRResNet'}  # ConverseUp() alone: MSRResNet ×4 with the paper's Converse2D upsampler
_WRAPPED = {}


def _wrapped_class(base_class):
    """The class of a ConverseUp model on ``base_class`` (one per base class, so equal configs give equal types)."""
    if base_class not in _WRAPPED:
        _WRAPPED[base_class] = type('ConverseUp', (ConverseUp, base_class),
                                    {'__module__': __name__, '__qualname__': f'ConverseUp[{base_class.__qualname__}]'})
    return _WRAPPED[base_class]


def _rebuild(base_class):
    """Unpickling and deep copies: an empty ConverseUp model on ``base_class``; its ``__dict__`` follows."""
    return nn.Module.__new__(_wrapped_class(base_class))


@ARCH_REGISTRY.register()
class ConverseUp(nn.Module):
    """Any arch of BasicSR's ``ARCH_REGISTRY`` with its upsamplers replaced by ``ConverseUpsample``.

    Args:
        base (dict): The arch to convert, as a ``network_g`` entry (``type`` plus its arguments).
            Default: ``{type: MSRResNet}`` (×4), which converts to the paper's ConverseUp-SRResNet.
        kernel_size (int | None): Converse2D kernel size; None = each stage's scale (paper).
        padding (int): Converse2D padding. Default: 2 (paper).
        padding_mode (str): Converse2D padding mode. Default: ``replicate`` (paper).
        eps (float): Converse2D's λ floor. Default: 1e-3 (paper's upsampler).
        exclude (list[str]): Layer names of the base to leave alone.
    """

    def __new__(cls, base=None, kernel_size=None, padding=2, padding_mode='replicate', eps=1e-3, exclude=()):
        base = copy.deepcopy(dict(DEFAULT_BASE if base is None else base))
        base_type = base.pop('type', None)
        if base_type is None:
            raise ValueError("network_g.base needs a 'type': a registered arch such as EDSR or RRDBNet")
        if base_type == cls.__name__:
            raise ValueError('network_g.base cannot be ConverseUp itself')
        if base_type not in ARCH_REGISTRY:
            raise ValueError(f'network_g.base.type {base_type!r} is not a registered arch; {IMPORT_HINT}')
        net = ARCH_REGISTRY.get(base_type)(**base)
        net, report = convert_upsamplers(net, kernel_size, padding, padding_mode, eps, exclude=exclude, inplace=True)
        net.__class__ = _wrapped_class(type(net))
        get_root_logger().info(f'ConverseUp: {report}')
        return net

    def __init__(self, base=None, kernel_size=None, padding=2, padding_mode='replicate', eps=1e-3, exclude=()):
        """Nothing left to do: ``__new__`` built and converted the base model (calling nn.Module's
        ``__init__`` again would drop its layers)."""

    def __reduce_ex__(self, protocol):
        return _rebuild, (type(self).__bases__[1], ), self.__dict__
