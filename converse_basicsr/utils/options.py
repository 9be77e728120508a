"""The one way options are declared and checked: kinds, ranges and key tables shared by every CLI and YAML checker.

An option is declared once as a :class:`Spec` (its kind, range, choices) and checked by :func:`check_value`,
which every entry point uses: as argparse ``type=`` callables (:func:`arg`), in the YAML checkers
(``training/option_checks.py``, ``training/basicsr_keys.py``, ``evaluation/compare_options.py``) through
:func:`check_entry` (unknown keys with "did you mean", values of the wrong kind), and for run-level
values (a device that is not present, a results folder that cannot be written) by the checks below. Every
failure is one :class:`OptionError` line naming the option (and the file, for YAML) and what is expected;
the CLIs print it and exit with status 2 before anything is created (:class:`CheckedParser`).
"""
import argparse
import difflib
import math
import numbers
import os
import sys
from dataclasses import dataclass
from os import path as osp

from converse_basicsr.utils.checks import ConverseError

__all__ = [
    'OptionError', 'Spec', 'check_value', 'arg', 'CheckedParser', 'check_entry', 'did_you_mean', 'check_device',
    'check_writable_dir', 'check_unique', 'check_folder_name', 'SPECS', 'KIND_NAMES'
]


class OptionError(ConverseError):
    """An option that cannot work; the message names the option (and the file) and what is expected."""


KIND_NAMES = {
    'int': 'an integer',
    'number': 'a number',
    'bool': 'true or false',
    'str': 'a string',
    'dict': 'a mapping',
    'list': 'a list',
    'paths': 'a path or a list of paths',
    'numbers': 'a list of numbers',
    'range': 'a list [lo, hi] of two numbers',
    'tile': "an integer or 'auto'",
    'device': 'a torch device (cpu, cuda, cuda:1)',
}


def _real(x):
    return isinstance(x, numbers.Real) and not isinstance(x, bool)


def _is_kind(value, kind):
    if kind == 'int':
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if kind == 'number':
        return _real(value)
    if kind == 'bool':
        return isinstance(value, bool)
    if kind in ('str', 'device'):
        return isinstance(value, str)
    if kind == 'dict':
        return isinstance(value, dict)
    if kind == 'list':
        return isinstance(value, (list, tuple))
    if kind == 'paths':
        return isinstance(value, str) or (isinstance(value, (list, tuple)) and all(isinstance(p, str) for p in value))
    if kind == 'numbers':
        return isinstance(value, (list, tuple)) and all(_real(x) for x in value)
    if kind == 'range':
        return isinstance(value, (list, tuple)) and len(value) == 2 and all(_real(x) for x in value)
    if kind == 'tile':
        return value == 'auto' or _is_kind(value, 'int')
    raise KeyError(kind)


def _number_text(value):
    try:
        float(value)
        return True
    except (TypeError, ValueError):
        return False


@dataclass(frozen=True)
class Spec:
    """One option: ``kind`` (a key of ``KIND_NAMES``), optional ``minimum``/``maximum`` (numbers; also every
    element of a numeric list), ``choices``, whether ``None`` (YAML ``~``) is allowed, and for text options
    whether an empty string is allowed."""
    kind: str
    minimum: float = None
    maximum: float = None
    choices: tuple = None
    nullable: bool = True
    empty: bool = False
    positive: bool = False  # > 0 (a minimum that is not itself allowed)

    def expected(self, finite=False, kind_only=False):
        if self.choices is not None and not kind_only:
            return 'one of ' + ', '.join(map(str, self.choices))
        text = KIND_NAMES[self.kind]
        if kind_only:
            return text
        if self.positive:
            text = text.replace('an integer', 'a positive integer').replace('a number', 'a positive number')
        if finite:
            text = text.replace('number', 'finite number').replace('an integer', 'a finite integer')
        if self.kind in ('int', 'number', 'numbers', 'range', 'tile'):
            if self.kind == 'tile':
                return f"an integer >= {self.minimum} or 'auto'"
            if self.minimum is not None and self.maximum is not None:
                text += f' in [{self.minimum}, {self.maximum}]'
            elif self.minimum is not None:
                text += f' >= {self.minimum}'
            elif self.maximum is not None:
                text += f' <= {self.maximum}'
        return text


def _numbers_of(value, kind):
    if kind in ('int', 'number'):
        return [value]
    if kind == 'tile':
        return [] if value == 'auto' else [value]
    if kind in ('numbers', 'range'):
        return list(value)
    return []


def check_value(name, value, spec):
    """``value`` if it fits ``spec``, else :class:`OptionError` ``"<name> must be <expected>, got <value>"``."""
    if value is None and spec.nullable:
        return value
    ok = kind_ok = _is_kind(value, spec.kind)
    if ok and spec.choices is not None:
        ok = value in spec.choices
    if ok and isinstance(value, str) and not spec.empty:
        ok = value.strip() != ''
    finite = True
    for x in _numbers_of(value, spec.kind) if ok else ():
        finite = finite and math.isfinite(x)
        if not math.isfinite(x) or (spec.positive and x <= 0) or (spec.minimum is not None
                                                                  and x < spec.minimum) or (spec.maximum is not None
                                                                                            and x > spec.maximum):
            ok = False
    if ok:
        return value
    message = f'{name} must be {spec.expected(not finite, not kind_ok)}, got {value!r} ({type(value).__name__})'
    texts = value if isinstance(value, (list, tuple)) else [value]
    if spec.kind in ('number', 'numbers', 'range') and any(isinstance(v, str) and _number_text(v) for v in texts):
        message += ('; YAML reads a number without a decimal point in its mantissa, such as 2e-3, as a string: '
                    'write 2.0e-3, or unquote it')
    raise OptionError(message)


def _from_text(text, kind):
    """A command-line string as a value of ``kind`` (left as text when it does not read as one)."""
    if kind == 'int' or (kind == 'tile' and text != 'auto'):
        try:
            return int(text)
        except ValueError:
            return text
    if kind == 'number':
        try:
            return float(text)
        except ValueError:
            return text
    return text


def arg(spec, check=None):
    """An argparse ``type=`` callable: the text as a value of ``spec``, checked (``check(value)`` may check more,
    raising :class:`OptionError`); argparse names the flag in its one-line error."""

    def convert(text):
        try:
            value = check_value('the value', _from_text(text, spec.kind), spec)
            return check(value) if check is not None else value
        except OptionError as error:
            raise argparse.ArgumentTypeError(str(error).replace('the value ', '', 1)) from None

    convert.__name__ = spec.kind  # argparse's message for a failed conversion names this
    return convert


class CheckedParser(argparse.ArgumentParser):
    """``ArgumentParser`` whose errors are one line, ``<prog>: error: <message> (see --help)``, exit status 2."""

    def error(self, message):
        self.exit(2, f'{self.prog}: error: {message} (see --help)\n')


def did_you_mean(key, known):
    """`` (did you mean 'X'?)`` for the known name closest to ``key`` (difflib's ratio >= 0.6), else ''."""
    close = difflib.get_close_matches(str(key), [str(k) for k in known], n=1, cutoff=0.6)
    return f' (did you mean {close[0]!r}?)' if close else ''


def check_entry(where, entry, table, owner, errors):
    """Append to ``errors`` a line for every key of the mapping ``entry`` that ``table`` (key → :class:`Spec`,
    a kind name, or None for any value) does not know, with "did you mean", and for every value of the wrong
    kind. ``where`` is the entry's dotted path, ``owner`` what the keys belong to."""
    for key, value in entry.items():
        if key not in table:
            errors.append(f'{where}{key} is not an option of {owner}{did_you_mean(key, table)}; '
                          f'its options: {", ".join(sorted(map(str, table)))}')
            continue
        spec = table[key]
        if isinstance(spec, str):
            spec = Spec(spec)
        if spec is None:
            continue
        try:
            check_value(f'{where}{key}', value, spec)
        except OptionError as error:
            errors.append(str(error))
    return errors


SUPPORTED_DEVICES = ('cpu', 'cuda')  # where the operator's FFT solve, tiling and memory planning are measured


def check_device(value, name='--device'):
    """``value`` if it names a device of :data:`SUPPORTED_DEVICES` that this machine has (``cpu``, ``cuda[:i]``):
    the one device rule of the flags, the YAML checks and ``Restorer``."""
    import torch
    try:
        device = torch.device(value)
    except (RuntimeError, TypeError) as error:
        raise OptionError(f'{name} must be {KIND_NAMES["device"]}: unknown device {value!r} ({error})') from None
    if device.type == 'cuda':
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise OptionError(f'{name} {value}: this machine has no CUDA device (torch {torch.__version__}, '
                              f'CUDA build: {torch.version.cuda or "no"}); use --device cpu')
        if device.index is not None and device.index >= count:
            raise OptionError(f'{name} {value}: this machine has {count} CUDA device(s) (0-{count - 1})')
    elif device.type not in SUPPORTED_DEVICES:
        raise OptionError(f'{name} {value}: {device.type} devices are not supported; use cpu or cuda[:N]')
    return value


def check_writable_dir(value, name):
    """``value`` if it is a folder this process can write to, or can be made (its nearest existing parent is a
    writable folder); nothing is created."""
    if not isinstance(value, str) or not value.strip():
        raise OptionError(f'{name} must be a folder path, got {value!r}')
    path = osp.abspath(value)
    probe = path
    while not osp.exists(probe):
        parent = osp.dirname(probe)
        if parent == probe:
            break
        probe = parent
    if not osp.isdir(probe):
        what = 'is a file' if probe == path else f'cannot be made: {probe} is a file'
        raise OptionError(f'{name} {value}: {what}; give a folder')
    if not os.access(probe, os.W_OK | os.X_OK):
        what = '' if probe == path else f' (its parent {probe})'
        raise OptionError(f'{name} {value}: the folder{what} is not writable')
    return value


FOLDER_NAME_BYTES = 200  # a file system's 255-byte limit, less room for BasicSR's "_archived_<time>" suffix
FOLDER_NAME_RULE = ('a folder name: not empty, not "." or "..", no "/" or "\\", no control characters, '
                    f'at most {FOLDER_NAME_BYTES} bytes')


def check_folder_name(name, value):
    """``value`` if it can be used as one folder's name inside another (a run's ``name``: ``experiments/<name>``,
    ``results/<name>``); else :class:`OptionError` stating the rule. A path separator, ``..``, an absolute path
    or a character the file system cannot hold would put files outside their folder or fail half-way."""
    if not isinstance(value, str):
        raise OptionError(f'{name} must be {FOLDER_NAME_RULE}; got {value!r} ({type(value).__name__})')
    problem = None
    if value.strip() in ('', '.', '..'):
        problem = 'it names no folder of its own'
    elif '/' in value or '\\' in value:
        problem = 'it holds a path separator'
    elif any(ord(c) < 32 or ord(c) == 127 for c in value):
        problem = 'it holds a control character'
    else:
        try:
            size = len(value.encode(sys.getfilesystemencoding()))
        except UnicodeEncodeError:
            size, problem = 0, f'the file system encoding ({sys.getfilesystemencoding()}) cannot hold it'
        if size > FOLDER_NAME_BYTES:
            problem = f'it is {size} bytes long'
    if problem:
        raise OptionError(f'{name} must be {FOLDER_NAME_RULE}; got {value!r} ({problem})')
    return value


def check_unique(name, labels):
    """An :class:`OptionError` when a label occurs twice in ``labels`` (which would silently replace the other)."""
    seen = set()
    for label in labels:
        if label in seen:
            raise OptionError(f'{name} {label!r} is given twice; each must have its own label')
        seen.add(label)
    return labels


# Options several CLIs share, declared once.
SPECS = {
    'tile': Spec('tile', minimum=8),
    'tile_pad': Spec('int', minimum=0),
    'threads': Spec('int', minimum=1),
    'sigma': Spec('number', minimum=0),
    'scale': Spec('int', minimum=1),
    'positive_int': Spec('int', minimum=1),
    'non_negative_int': Spec('int', minimum=0),
    'compression': Spec('int', minimum=0, maximum=9),
    'text': Spec('str'),
}


def fail(prog, error, stream=None):
    """Print ``error`` as ``<prog>: error: <message>`` (one line per message line) and return exit status 2."""
    print(f'{prog}: error: {error}', file=stream or sys.stderr)
    return 2


def add_import_option(parser):
    """``--import MODULE`` (repeatable, into ``args.imports``): the user's modules, imported before any check
    (:func:`converse_basicsr.utils.imports.import_user_modules`); the flag every entry point shares."""
    parser.add_argument(
        '--import', dest='imports', action='append', default=[], metavar='MODULE', type=arg(SPECS['text']),
        help='import MODULE first (repeatable): a module of yours that registers archs, datasets '
        'or models, found on PYTHONPATH or in the current folder')
    return parser


def config_arg(kind):
    """An argparse ``type=`` callable for ``--config NAME``: the path of that shipped config (or YAML file) of
    ``kind``; an unknown name is one line listing the shipped names."""
    from converse_basicsr.utils.configs import resolve_config

    def resolve(text):
        try:
            return resolve_config(check_value('the value', text, SPECS['text']), kind)
        except (OptionError, FileNotFoundError) as error:
            raise OptionError(str(error).replace('--config ', '', 1)) from None

    return arg(SPECS['text'], resolve)
