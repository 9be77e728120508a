"""converse-basicsr: reverse convolution (Converse2D) and its restoration models for BasicSR.

Importing the package applies the basicsr 1.4.2 compatibility fixes (so ``import basicsr``
works with current torchvision) and registers the archs, datasets and models in BasicSR's
registries.
"""
from . import compat

compat.apply_all()

from . import archs, data, models  # noqa: E402,F401  (registration side effects)
from .ops import Converse2D, converse2d  # noqa: E402
from .version import __version__  # noqa: E402  (the one place the version is written)

__all__ = ['Converse2D', 'converse2d', '__version__']
