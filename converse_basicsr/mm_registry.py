"""The package's archs in an mmengine registry (scope ``converse``, parent: mmengine's root ``MODELS``).

mmengine is an optional extra (``pip install converse-basicsr[mmengine]``), and this module is not
imported by ``converse_basicsr`` itself (mmengine stays off the import path of BasicSR users);
import this module, or list it in a config's ``custom_imports``, then::

    from mmengine.registry import MODELS
    model = MODELS.build(dict(type='converse.ConverseNet', num_in_ch=3))

The archs are taken from basicsr's ``ARCH_REGISTRY`` (every class this package registered there),
so a new ``*_arch.py`` appears here without edits.
"""
try:
    from mmengine.registry import MODELS as MMENGINE_MODELS
    from mmengine.registry import Registry
except ImportError as err:  # the optional extra is not installed
    raise ImportError('converse_basicsr.mm_registry needs mmengine, an optional extra of converse-basicsr: '
                      "pip install 'converse-basicsr[mmengine]' (or pip install mmengine)") from err

from basicsr.utils.registry import ARCH_REGISTRY

from .archs import converse_arch_names

MODELS = Registry('model', parent=MMENGINE_MODELS, scope='converse', locations=['converse_basicsr.mm_registry'])


def converse_archs():
    """``{name: class}`` of the archs this package registered in basicsr's ARCH_REGISTRY."""
    return {name: ARCH_REGISTRY.get(name) for name in converse_arch_names()}


def register_all():
    """Register every arch of :func:`converse_archs` not yet in :data:`MODELS`; return :data:`MODELS`."""
    for name, cls in sorted(converse_archs().items()):
        if name not in MODELS.module_dict:
            MODELS.register_module(name=name, module=cls)
    return MODELS


register_all()
