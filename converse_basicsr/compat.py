"""Compatibility fixes for basicsr 1.4.2 (the PyPI release) on current torch/torchvision/numpy.

Every fix is small, named for the problem it solves, idempotent, and covered by a test in
``tests/test_compat.py`` that fails without it. ``apply_all()`` runs when ``converse_basicsr``
is imported, before anything imports ``basicsr``.
"""
import importlib
import sys
import types

_APPLIED = set()


def fix_torchvision_functional_tensor():
    """basicsr.data.degradations imports ``torchvision.transforms.functional_tensor``, removed in
    torchvision 0.17. Provide it as an alias module exposing the same ``rgb_to_grayscale``."""
    name = 'torchvision.transforms.functional_tensor'
    if name in sys.modules:
        return
    try:
        importlib.import_module(name)
        return
    except ImportError:
        pass
    from torchvision.transforms import functional
    module = types.ModuleType(name)
    module.rgb_to_grayscale = functional.rgb_to_grayscale
    module.__doc__ = 'Alias installed by converse_basicsr.compat for basicsr 1.4.2.'
    sys.modules[name] = module


FIXES = [fix_torchvision_functional_tensor]


def apply_all():
    for fix in FIXES:
        if fix.__name__ not in _APPLIED:
            fix()
            _APPLIED.add(fix.__name__)
