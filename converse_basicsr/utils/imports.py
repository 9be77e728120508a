"""Import of a user's ``package.module:callable`` option: from ``PYTHONPATH`` or, as ``python -m`` does, the
current folder (appended to ``sys.path``, so it never shadows an installed package)."""
import importlib
import os
import sys

from converse_basicsr.utils.options import OptionError


def import_target(target, option='model'):
    """The object named by ``package.module:callable`` (``callable`` may be dotted). A module that cannot be found
    on ``sys.path`` is looked for in the current folder too; a missing module or attribute is an
    :class:`OptionError` naming ``option``, the target and where it was looked for."""
    module_name, _, attr = str(target).partition(':')
    if not module_name or not attr:
        raise OptionError(f"{option} must be written 'package.module:callable', got {target!r}")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        top, here = module_name.split('.')[0], os.getcwd()
        if error.name != top and not module_name.startswith(f'{error.name}.'):
            raise  # the module exists and one of its own imports is missing: the user's traceback to see
        if here not in sys.path and '' not in sys.path:
            sys.path.append(here)
            return import_target(target, option)
        raise OptionError(f'{option} {target!r}: no module {error.name!r} on PYTHONPATH or in the current folder '
                          f'({here}); add its folder to PYTHONPATH') from None
    obj = module
    for part in attr.split('.'):
        if not hasattr(obj, part):
            raise OptionError(f'{option} {target!r}: {module_name} has no attribute {attr!r}')
        obj = getattr(obj, part)
    return obj
