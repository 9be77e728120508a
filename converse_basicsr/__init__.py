"""converse-basicsr: reverse convolution (Converse2D) and its restoration models for BasicSR.

Importing the package makes ``import basicsr`` work with current torchvision
(``compat.apply_import_fixes``) and registers the archs, datasets and models in BasicSR's
registries; it changes no BasicSR class or function. Training and test scripts call
``converse_basicsr.training.compat.apply_training_fixes()`` (the package's entry points do).
"""
from converse_basicsr.training import compat

compat.apply_import_fixes()

from . import archs, data, models, nn  # noqa: E402,F401  (registration side effects)
from .ops import Converse2D, converse2d  # noqa: E402
from .version import __version__  # noqa: E402  (the one place the version is written)

__all__ = ['Converse2D', 'converse2d', '__version__']
