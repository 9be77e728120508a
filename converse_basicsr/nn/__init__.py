"""Building blocks for anyone's network: :class:`~.layers.ConverseUpsample`, the upsampler converter
(:mod:`.convert`) and the ``ConverseUp`` arch built on it (registered in BasicSR's ``ARCH_REGISTRY`` on import)."""
from converse_basicsr.utils.discovery import import_suffixed

_modules = import_suffixed((__name__, __path__), '_arch')
