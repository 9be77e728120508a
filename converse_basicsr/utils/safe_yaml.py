"""The one YAML loader for files from others (option files, configs, lists): plain data only, ordered as BasicSR's.

:func:`load_yaml` reads mappings as ``OrderedDict`` (what ``basicsr.utils.options.ordered_yaml`` gives) and
builds nothing but YAML's own data types (``null``, ``bool``, ``int``, ``float``, ``str``, sequences,
mappings, and the standard ``!!binary``, ``!!timestamp``, ``!!set``, ``!!omap``, ``!!pairs``). Every other tag,
``!!python/object/apply:...`` above all, is refused before anything is constructed, in one line naming the
file, the line and the tag. Aliases are bounded: a document whose nodes, with every alias expanded, number
more than ``MAX_NODES`` (an alias bomb: BasicSR writes the expanded options into its log) or that contains
itself through an alias is refused too.

:func:`basicsr_reads_safely` makes BasicSR's own ``parse_options`` use this loader for the duration of a
``with`` block only (BasicSR is unchanged for everyone else after it).
"""
import contextlib
from collections import OrderedDict

import yaml

from converse_basicsr.utils.options import OptionError

__all__ = [
    'MAX_NODES', 'YAMLRefused', 'SafeOrderedLoader', 'load_yaml', 'load_yaml_text', 'dump_yaml', 'basicsr_reads_safely'
]

MAX_NODES = 100_000  # expanded nodes; the largest shipped option file has under 400
YAML_PREFIX = 'tag:yaml.org,2002:'


class YAMLRefused(OptionError):
    """A YAML file that is not plain data (a code-running or unknown tag, an alias bomb) or not YAML at all."""


def _short_tag(tag):
    return '!!' + tag[len(YAML_PREFIX):] if tag.startswith(YAML_PREFIX) else tag


def _where(loader, mark):
    return f'{loader.name}:{mark.line + 1}' if mark is not None else loader.name


class SafeOrderedLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with BasicSR's ordered mappings, unknown tags refused, aliases bounded."""

    def construct_undefined(self, node):
        raise YAMLRefused(f'{_where(self, node.start_mark)}: the YAML tag {_short_tag(node.tag)} is not allowed: '
                          'option files hold plain data only (nothing was run)')

    def construct_object(self, node, deep=False):
        try:
            return super().construct_object(node, deep)
        except (ValueError, KeyError, TypeError, OverflowError) as error:  # e.g. ``!!int abc``, ``!!bool maybe``
            if isinstance(error, YAMLRefused):
                raise
            raise YAMLRefused(f'{_where(self, node.start_mark)}: {str(node.value)[:40]!r} is not a valid '
                              f'{_short_tag(node.tag)} ({type(error).__name__})') from None

    def construct_ordered_mapping(self, node):
        # SafeConstructor's: ``<<: *base`` merge keys as yaml.safe_load reads them, unhashable keys refused
        return OrderedDict(self.construct_mapping(node))

    def get_single_node(self):
        node = super().get_single_node()
        if node is not None:
            self._check_size(node)
        return node

    def _check_size(self, root):
        """Refuse a document larger than ``MAX_NODES`` with its aliases expanded, or one that contains itself."""
        sizes, active = {}, set()

        def size(node):  # memoised: an alias-heavy document is measured in time linear in its written size
            key = id(node)
            if key in sizes:
                return sizes[key]
            if key in active:
                raise YAMLRefused(f'{_where(self, node.start_mark)}: a YAML alias that contains itself '
                                  '(a recursive anchor) is not allowed in option files')
            active.add(key)
            total = 1
            if isinstance(node, yaml.SequenceNode):
                total += sum(size(child) for child in node.value)
            elif isinstance(node, yaml.MappingNode):
                total += sum(size(k) + size(v) for k, v in node.value)
            active.discard(key)
            sizes[key] = total
            if total > MAX_NODES:
                raise YAMLRefused(f'{_where(self, node.start_mark)}: this YAML expands to more than {MAX_NODES} '
                                  'values through its aliases (&anchor / *alias): refused as an alias bomb')
            return total

        size(root)


SafeOrderedLoader.add_constructor(YAML_PREFIX + 'map', SafeOrderedLoader.construct_ordered_mapping)
SafeOrderedLoader.add_constructor(None, SafeOrderedLoader.construct_undefined)


def load_yaml_text(text, name='<options>'):
    """The YAML ``text`` as data (see the module docstring); errors are :class:`YAMLRefused` naming ``name``."""
    loader = SafeOrderedLoader(text)
    loader.name = str(name)
    try:
        return loader.get_single_data()
    except yaml.MarkedYAMLError as error:
        mark = error.problem_mark or error.context_mark
        raise YAMLRefused(f'{_where(loader, mark)}: not valid YAML: {error.problem or error.context}') from None
    except yaml.YAMLError as error:
        raise YAMLRefused(f'{name}: not valid YAML: {error}') from None
    except RecursionError:
        raise YAMLRefused(f'{name}: nested too deeply to be an option file') from None
    finally:
        loader.dispose()


def load_yaml(path):
    """The YAML file at ``path`` as data (mappings as ``OrderedDict``); :class:`YAMLRefused` naming the file, the
    line and the reason for a tag other than YAML's own, an alias bomb or a syntax error."""
    try:
        with open(path, encoding='utf-8') as f:
            text = f.read()
    except UnicodeDecodeError as error:
        raise YAMLRefused(f'{path}: not a UTF-8 text file ({error.reason} at byte {error.start})') from None
    return load_yaml_text(text, path)


class _OrderedDumper(yaml.SafeDumper):
    """``yaml.SafeDumper`` that writes an ``OrderedDict`` as a plain mapping, in its order."""


_OrderedDumper.add_representer(OrderedDict, lambda dumper, data: dumper.represent_dict(data.items()))


def dump_yaml(data):
    """``data`` (as :func:`load_yaml` gives it) as YAML text of plain mappings, keys in their order."""
    return yaml.dump(data, Dumper=_OrderedDumper, sort_keys=False, allow_unicode=True)


class _BasicSRLoader(SafeOrderedLoader):
    """What ``yaml.load(f, Loader=...)`` in BasicSR's ``parse_options`` constructs while patched."""

    def __init__(self, stream):
        super().__init__(stream)
        self.name = getattr(stream, 'name', self.name)


@contextlib.contextmanager
def basicsr_reads_safely():
    """Within the block, ``basicsr.utils.options.ordered_yaml()`` (the loader BasicSR's ``parse_options`` reads
    ``-opt`` files with) returns this module's safe loader; BasicSR's own is back after the block."""
    import basicsr.utils.options as basicsr_options
    original = basicsr_options.ordered_yaml

    def ordered_yaml():
        return _BasicSRLoader, original()[1]

    basicsr_options.ordered_yaml = ordered_yaml
    try:
        yield
    finally:
        basicsr_options.ordered_yaml = original
