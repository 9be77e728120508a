"""Find a shipped option file by name (``--config NAME``), from a checkout or an installed copy."""
import os
from pathlib import Path

KINDS = ('train', 'test', 'demo', 'compare')


def options_roots():
    """Folders that may hold the shipped ``options/``: the package's own copy (installed wheels, where
    ``setup.py`` puts the top-level ``options/``), then, in a checkout (editable installs and the
    repository), its top-level ``options/``. Beside an installed copy, ``options/`` is not ours."""
    package = Path(__file__).resolve().parent.parent  # converse_basicsr/
    roots = [package / 'options']
    if (package.parent / 'setup.py').is_file():
        roots.append(package.parent / 'options')
    return roots


def available_configs(kind):
    """Names (relative to ``options/<kind>/``, without ``.yml``) of the shipped configs of ``kind``."""
    names = set()
    for root in options_roots():
        folder = root / kind
        if folder.is_dir():
            names.update(str(p.relative_to(folder).with_suffix('')) for p in folder.rglob('*.yml'))
    return sorted(names)


def resolve_config(name, kind):
    """Path of the option file ``name`` of ``kind`` (``train``, ``test``, ``demo`` or ``compare``).

    ``name`` is a path to an existing YAML file, or a shipped config's name relative to
    ``options/<kind>/`` with or without ``.yml`` (``test_converse_dncnn_sigma25``,
    ``denoising/train_ConverseDnCNN_gray_sigma25``). Raises ``FileNotFoundError`` listing the
    shipped names when nothing matches.
    """
    if kind not in KINDS:
        raise ValueError(f'kind must be one of {KINDS}, got {kind!r}')
    if os.path.isfile(name):
        return os.path.abspath(name)
    rel = name if name.endswith(('.yml', '.yaml')) else name + '.yml'
    for root in options_roots():
        candidate = root / kind / rel
        if candidate.is_file():
            return str(candidate)
    shipped = ', '.join(available_configs(kind)) or 'none found'
    raise FileNotFoundError(f'--config {name!r}: no such file and no shipped {kind} config of that name '
                            f'(shipped: {shipped})')
