"""BasicSR's convention: a subpackage imports every ``*_<suffix>.py`` it holds so each registers itself."""
import importlib
import pkgutil


def import_suffixed(package, suffix):
    """Import the modules of ``package`` (its ``__name__`` and ``__path__``) whose names end in ``suffix``."""
    name, path = package
    return [
        importlib.import_module(f'{name}.{mod.name}')
        for mod in sorted(pkgutil.iter_modules(path), key=lambda m: m.name) if mod.name.endswith(suffix)
    ]
