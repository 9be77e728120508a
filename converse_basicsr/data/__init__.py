"""Every ``*_dataset.py`` in this folder registers itself on import (BasicSR's convention)."""
from converse_basicsr.utils.discovery import import_suffixed

_modules = import_suffixed((__name__, __path__), '_dataset')
