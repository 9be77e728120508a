"""Shared pieces of the option fuzz tests: the shipped configs, their keys, bad values and typos, and a runner
that checks one case (exit status 2, one line naming the option, no traceback, nothing created)."""
import contextlib
import glob
import io
import math
import os
import string
from os import path as osp

from hypothesis import strategies as st

REPO = osp.dirname(osp.dirname(osp.dirname(osp.abspath(__file__))))
CONFIGS = sorted(glob.glob(osp.join(REPO, 'options', '**', '*.yml'), recursive=True))
# Levels whose keys are free labels (a dataset phase or name, a metric name): a typo there is a new label.
LABEL_LEVELS = (('datasets', ), ('val', 'metrics'))


def kind_of(config):
    return osp.relpath(config, osp.join(REPO, 'options')).split(os.sep)[0]


def key_paths(opt, prefix=()):
    """Every key path of a nested mapping, outermost first."""
    for key, value in opt.items():
        path = prefix + (key, )
        yield path
        if isinstance(value, dict):
            yield from key_paths(value, path)


def get(opt, path):
    for key in path:
        opt = opt[key]
    return opt


def bad_values(value):
    """Values of another kind than ``value`` (the shipped one), or out of any range: what no checker may accept
    in place of it."""
    scalars_for_blocks = [5, 'text', True, [1, 2], '']
    if isinstance(value, bool):
        return ['yes', 1, 0.5, '', 'true', [True]]
    if isinstance(value, int):
        return ['abc', '', math.nan, math.inf, -math.inf, [value], {'x': 1}, 'two', True]
    if isinstance(value, float):
        return ['abc', '', math.nan, math.inf, -math.inf, [value], {'x': 1}, True]
    if isinstance(value, str):
        return [12345, 1.5, '', '   ', [value], {'x': value}, True]
    if isinstance(value, list):
        numeric = value and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in value)
        return ['x', 5, {'x': 1}, True] + ([[math.nan] * len(value), [math.inf] * len(value)] if numeric else [])
    if isinstance(value, dict):
        return scalars_for_blocks
    return []


def typos(key):
    """Near misses of a key name: a letter dropped, doubled, swapped with the next, or replaced."""
    out = set()
    for i in range(len(key)):
        out.add(key[:i] + key[i + 1:])
        out.add(key[:i] + key[i] + key[i:])
        if i + 1 < len(key):
            out.add(key[:i] + key[i + 1] + key[i] + key[i + 2:])
        for c in 'ex':
            out.add(key[:i] + c + key[i + 1:])
    return sorted(k for k in out if k and k != key and k[0] in string.ascii_letters)


def tree(root):
    """Every file and folder under ``root`` (relative), to compare before and after a case."""
    found = set()
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            found.add(osp.relpath(osp.join(folder, name), root))
    return found


def run_case(fn, *args):
    """``fn(*args)`` with stderr captured: ``(exit status, stderr text)``; SystemExit gives its code, an
    exception a status of None and the exception (a traceback would follow in the CLI)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = fn(*args)
        except SystemExit as stop:
            status = stop.code
        except Exception as error:  # noqa: BLE001  (the case fails, naming the exception)
            return None, f'{type(error).__name__}: {error}'
    return status, err.getvalue()


def yaml_case():
    """(config, key path, kind of mutation, value) for any key of any shipped config."""
    import yaml
    cases = []
    for config in CONFIGS:
        with open(config, encoding='utf-8') as f:
            opt = yaml.safe_load(f)
        for path in key_paths(opt):
            value = get(opt, path)
            cases += [(config, path, 'value', bad) for bad in bad_values(value)]
            if path[:-1] not in LABEL_LEVELS:
                siblings = set(get(opt, path[:-1]) if len(path) > 1 else opt)
                cases += [(config, path, 'typo', t) for t in typos(str(path[-1])) if t not in siblings]
    return st.sampled_from(cases)
