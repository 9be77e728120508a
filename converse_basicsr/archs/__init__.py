"""The package's archs: every ``*_arch.py`` in this folder registers itself on import (BasicSR's convention),
and :func:`is_converse_arch` / :func:`converse_arch_names` tell this package's archs from BasicSR's."""
import inspect

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.utils.discovery import import_suffixed

_modules = import_suffixed((__name__, __path__), '_arch')

_PACKAGE = __name__.rsplit('.', 1)[0]  # 'converse_basicsr'


def is_converse_arch(name_or_module):
    """Whether an arch is one of this package's (defined in ``converse_basicsr``), not BasicSR's or a user's.

    Args:
        name_or_module (str | type | nn.Module): a type name in BasicSR's ``ARCH_REGISTRY`` (e.g. the
            ``network_g.type`` of a YAML), an arch class, or a network instance. A name that is not
            registered is not ours.

    Returns:
        bool: True for the archs registered by this package.
    """
    if isinstance(name_or_module, str):
        if name_or_module not in ARCH_REGISTRY:
            return False
        name_or_module = ARCH_REGISTRY.get(name_or_module)
    cls = name_or_module if inspect.isclass(name_or_module) else type(name_or_module)
    return cls.__module__ == _PACKAGE or cls.__module__.startswith(_PACKAGE + '.')


def converse_arch_names():
    """Sorted names of the archs this package registered in BasicSR's ``ARCH_REGISTRY``."""
    return sorted(name for name, cls in ARCH_REGISTRY if is_converse_arch(cls))


__all__ = ['is_converse_arch', 'converse_arch_names']
