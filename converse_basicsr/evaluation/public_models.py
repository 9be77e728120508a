"""converse-compare's route for checkpoint files by path: ``--model PATH`` / ``models: [{path: PATH}]``.

The arch and its hyper-parameters are detected (:func:`converse_basicsr.hub.public.load_any`); the row is
labelled with the detected arch unless ``name:`` is given. :func:`check_paths` runs before any model: a file no
loader recognises, or whose detected scale / channels do not fit the protocol, ends the run (exit status 2).
"""
import os

from converse_basicsr.hub.public import EXTENSIONS, check_protocol, load_any


def is_path_entry(entry):
    """A ``models`` entry naming a checkpoint file: a string path with a checkpoint extension, or ``{path:}``
    without ``type`` (with ``type`` the arch is given and the existing route loads it)."""
    if isinstance(entry, str):
        return entry.lower().endswith(EXTENSIONS) or (os.path.isfile(entry) and ':' not in entry)
    return isinstance(entry, dict) and 'path' in entry and 'type' not in entry


def path_spec(entry, spec_class):
    """The ``ModelSpec`` of a path entry."""
    entry = {'path': entry} if isinstance(entry, str) else dict(entry)
    module, info = load_any(entry['path'])
    return spec_class(entry.get('name') or info.arch, module, f'{info}')


def check_paths(models, scale, channels):
    """Load every path entry once before the run: unreadable or unrecognised files and protocol mismatches
    raise a ZooError naming the file (converse-compare exits with status 2)."""
    for entry in models:
        if is_path_entry(entry):
            path = entry if isinstance(entry, str) else entry['path']
            check_protocol(load_any(path)[1], scale, channels)
