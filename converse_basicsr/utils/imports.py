"""The user's own code: ``--import MODULE`` / ``custom_imports: [MODULE]`` (:func:`import_user_modules`) and
``package.module:callable`` options (:func:`import_target`), found on ``PYTHONPATH`` or, as ``python -m`` finds
modules, in the current folder (appended to ``sys.path``, so it never shadows an installed package)."""
import importlib
import os
import sys

from converse_basicsr.utils.options import OptionError

IMPORTS_KEY = 'custom_imports'  # the YAML key: modules to import before the file is checked
IMPORT_HINT = (f'if it is your own, import the module that registers it: {IMPORTS_KEY}: [my_module] in the '
               'YAML, or --import my_module')


def import_module(name, where):
    """The module ``name`` (from ``sys.path``, else the current folder); a module that cannot be found is an
    :class:`OptionError` starting with ``where`` (the option and its value) and saying where it was looked for.
    A module that exists but fails on one of its own imports raises as it is: the user's traceback to see."""
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as error:
        here = os.getcwd()
        if error.name != name.split('.')[0] and not name.startswith(f'{error.name}.'):
            raise
        if here not in sys.path and '' not in sys.path:
            sys.path.append(here)
            return import_module(name, where)
        raise OptionError(f'{where}: no module {error.name!r} on PYTHONPATH or in the current folder '
                          f'({here}); add its folder to PYTHONPATH') from None


def import_user_modules(names, option='--import'):
    """Import each module of ``names`` (``--import`` values or the YAML's ``custom_imports``), in order, so the
    archs, datasets and models they register exist before any check; returns the modules."""
    if names is None:
        return []
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n.strip() for n in names):
        raise OptionError(f'{option} must be a list of module names such as [my_arch], got {names!r}')
    return [import_module(name.strip(), f'{option} {name.strip()}') for name in names]


def import_yaml_modules(opt, path):
    """:func:`import_user_modules` for the ``custom_imports`` key of an option file's mapping ``opt``."""
    if isinstance(opt, dict) and opt.get(IMPORTS_KEY) is not None:
        return import_user_modules(opt[IMPORTS_KEY], f'{path}: {IMPORTS_KEY}')
    return []


def import_target(target, option='model'):
    """The object named by ``package.module:callable`` (``callable`` may be dotted). A module that cannot be found
    on ``sys.path`` is looked for in the current folder too; a missing module or attribute is an
    :class:`OptionError` naming ``option``, the target and where it was looked for."""
    module_name, _, attr = str(target).partition(':')
    if not module_name or not attr:
        raise OptionError(f"{option} must be written 'package.module:callable', got {target!r}")
    obj = import_module(module_name, f'{option} {target!r}')
    for part in attr.split('.'):
        if not hasattr(obj, part):
            raise OptionError(f'{option} {target!r}: {module_name} has no attribute {attr!r}')
        obj = getattr(obj, part)
    return obj
