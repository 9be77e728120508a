"""The package's archs in an mmengine registry (scope ``converse``, parent: mmengine's root ``MODELS``).

Not imported by ``converse_basicsr`` itself (mmengine stays off the import path of BasicSR users);
import this module, or list it in a config's ``custom_imports``, then::

    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='converse.ConverseNet', num_in_ch=3))

The archs are taken from basicsr's ``ARCH_REGISTRY`` (every class this package registered there),
so a new ``*_arch.py`` appears here without edits.
"""
from mmengine.registry import MODELS as MMENGINE_MODELS
from mmengine.registry import Registry

from basicsr.utils.registry import ARCH_REGISTRY

from . import archs  # noqa: F401  (fills ARCH_REGISTRY)

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='converse', locations=['converse_basicsr.mm_registry'])


def converse_archs():
    """``{name: class}`` of the archs this package registered in basicsr's ARCH_REGISTRY."""
    return {name: cls for name, cls in ARCH_REGISTRY if cls.__module__.startswith(f'{__package__}.')}


def register_all():
    for name, cls in sorted(converse_archs().items()):
        if name not in MODELS.module_dict:
            MODELS.register_module(name=name, module=cls)
    return MODELS


register_all()
