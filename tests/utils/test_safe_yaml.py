"""The one safe YAML loader (``utils/safe_yaml.py``): BasicSR's ordered data for every shipped option file, a
code-running or unknown tag refused naming the file, the line and the tag, alias bombs and self-containing aliases
refused, and BasicSR's own ``parse_options`` reading through it only inside ``basicsr_reads_safely``. The property
test writes option files with random tags (YAML's own, ``!!python/*``, local and verbatim ones), anchors and
aliases, and checks each is refused exactly when it holds a tag other than YAML's own, an alias to itself or more
than ``MAX_NODES`` expanded values, and otherwise loads as BasicSR's loader reads it."""
import datetime
import glob
import re
import sys
import time
from collections import OrderedDict

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

import basicsr.utils.options as basicsr_options
from converse_basicsr.utils.safe_yaml import (MAX_NODES, YAMLRefused, basicsr_reads_safely, dump_yaml, load_yaml,
                                              load_yaml_text)
from tests.helpers.shared_files import REPO_ROOT

BASICSR_LOADER = basicsr_options.ordered_yaml()[0]


@pytest.mark.parametrize('path', sorted(glob.glob(str(REPO_ROOT / 'options' / '**' / '*.yml'), recursive=True)))
def test_shipped_option_files_load_as_basicsr_reads_them(path):
    with open(path, encoding='utf-8') as f:
        expected = yaml.load(f, Loader=BASICSR_LOADER)  # our own shipped files
    got = load_yaml(path)
    assert got == expected and type(got) is OrderedDict  # OrderedDict equality: the same keys in the same order
    assert load_yaml_text(dump_yaml(got)) == got


@pytest.mark.parametrize('where,line', [('top', 2), ('nested', 4), ('list', 6)])
def test_a_python_tag_is_refused_naming_file_line_and_tag(tmp_path, where, line):
    marker = tmp_path / 'PWNED'
    payload = f'!!python/object/apply:os.system ["touch {marker}"]'
    lines = ['name: x', 'network_g:', '  type: A', '  num_feat: 4', 'models:', '  - a']
    if where == 'top':
        lines.insert(1, f'zz: {payload}')
    elif where == 'nested':
        lines[3] = f'  num_feat: {payload}'
    else:
        lines[5] = f'  - {payload}'
    path = tmp_path / 'opt.yml'
    path.write_text('\n'.join(lines) + '\n')
    with pytest.raises(YAMLRefused) as refused:
        load_yaml(path)
    assert str(refused.value) == (f'{path}:{line}: the YAML tag !!python/object/apply:os.system is not allowed: '
                                  'option files hold plain data only (nothing was run)')
    assert not marker.exists()


def test_an_alias_bomb_is_refused_quickly():
    levels = ['l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]']
    levels += [f'l{i}: &l{i} [' + ', '.join([f'*l{i - 1}'] * 9) + ']' for i in range(1, 9)]  # 9**9 values
    start = time.perf_counter()
    with pytest.raises(YAMLRefused, match=rf'<options>:\d+: this YAML expands to more than {MAX_NODES} values'):
        load_yaml_text('\n'.join(levels))
    assert time.perf_counter() - start < 1.0  # measured, not expanded (a generous bound: it takes milliseconds)
    assert load_yaml_text('\n'.join(levels[:3]))['l2'][8][8][8] == 'lol'  # 9**3 values through aliases: fine


def test_basicsr_parse_options_reads_safely_inside_the_block_only(tmp_path, monkeypatch):
    marker = tmp_path / 'PWNED'
    path = tmp_path / 'opt.yml'
    path.write_text(f'name: !!python/object/apply:os.system ["touch {marker}"]\n')
    monkeypatch.setattr(sys, 'argv', ['train.py', '-opt', str(path)])
    original = basicsr_options.ordered_yaml
    with basicsr_reads_safely():
        with pytest.raises(YAMLRefused, match=rf'{path}:1: the YAML tag !!python/object/apply:os.system'):
            basicsr_options.parse_options(str(tmp_path), is_train=False)
    assert basicsr_options.ordered_yaml is original and not marker.exists()
    assert basicsr_options.ordered_yaml()[0] is BASICSR_LOADER  # BasicSR's own, unchanged for everyone else


# ---------------------------------------------------------------------------------------------- property test
SAFE_SCALARS = {
    '!!str': ['a', '3', 'two words'], '!!int': ['0', '12', '-3'], '!!float': ['1.5', '-0.25'],
    '!!bool': ['true', 'false'], '!!null': ['~', 'null']
}
UNSAFE_TAGS = [
    '!!python/object/apply:os.system', '!!python/object/new:os.system', '!!python/object:os.system',
    '!!python/name:os.system', '!!python/module:os', '!!python/tuple', '!!python/str', '!!python/none', '!local',
    '!<tag:example.com,2000:app/thing>', '!!unknown'
]
SHOWN = {tag: tag for tag in UNSAFE_TAGS} | {'!<tag:example.com,2000:app/thing>': 'tag:example.com,2000:app/thing'}
PLAIN = ['x', 'name', '12', '-3', '0.5', 'true', 'null', '~', 'yes', '2e-3', "'quoted, text'", '"two words"']


class Document:
    """An option file drawn piece by piece, with what it must do: anchors and their expanded sizes."""

    def __init__(self, draw, marker):
        self.draw, self.marker = draw, marker
        self.anchors = {}  # name -> expanded size, None while the anchored node is still open
        self.unsafe, self.recursive = [], False

    def anchor(self):
        if not self.draw(st.booleans()):
            return '', None
        name = f'a{len(self.anchors)}'
        self.anchors[name] = None
        return f'&{name} ', name

    def node(self, depth):
        """(text, expanded size) of one node in flow style."""
        kinds = ['scalar', 'scalar', 'alias'] + (['seq', 'map'] if depth < 3 else [])
        kind = self.draw(st.sampled_from(kinds))
        if kind == 'alias' and self.anchors:
            name = self.draw(st.sampled_from(sorted(self.anchors)))
            self.recursive |= self.anchors[name] is None
            return f'*{name}', self.anchors[name] or 0
        tag = self.draw(st.sampled_from([None, None, 'safe', 'unsafe']))
        if kind in ('scalar', 'alias'):
            if tag == 'safe':
                safe = self.draw(st.sampled_from(sorted(SAFE_SCALARS)))
                return f'{safe} {self.draw(st.sampled_from(SAFE_SCALARS[safe]))}', 1
            text = self.draw(st.sampled_from(PLAIN))
            if tag == 'unsafe':
                self.unsafe.append(self.draw(st.sampled_from(UNSAFE_TAGS)))
                text = f'{self.unsafe[-1]} {text}'
            return text, 1
        prefix, name = self.anchor()
        count = self.draw(st.integers(0, 4))
        if kind == 'seq':
            items = [self.node(depth + 1) for _ in range(count)]
            text, size = '[' + ', '.join(t for t, _ in items) + ']', 1 + sum(s for _, s in items)
            if tag == 'unsafe':  # the classic payload: a command as the tagged sequence's argument
                text = f'["touch {self.marker}", ' + text[1:] if items else f'["touch {self.marker}"]'
                size += 1
        else:
            pairs = [(f'k{i}', self.node(depth + 1)) for i in range(count)]
            text = '{' + ', '.join(f'{k}: {t}' for k, (t, _) in pairs) + '}'
            size = 1 + sum(1 + s for _, (_, s) in pairs)
        if tag == 'unsafe':
            self.unsafe.append(self.draw(st.sampled_from(UNSAFE_TAGS)))
            text = f'{self.unsafe[-1]} {text}'
        elif tag == 'safe':
            text = f'{"!!seq" if kind == "seq" else "!!map"} {text}'
        if name:
            self.anchors[name] = size
        return prefix + text, size

    def bomb(self):
        """A chain of anchored lists, each ``width`` aliases of the one before: ``width ** levels`` values."""
        width, levels = self.draw(st.integers(2, 12)), self.draw(st.integers(1, 6))
        lines = [f'b0: &b0 [{", ".join(["lol"] * width)}]']
        lines += [f'b{level}: &b{level} [{", ".join([f"*b{level - 1}"] * width)}]' for level in range(1, levels + 1)]
        total, size = 0, 1 + width  # each entry: its key and its list, a list 1 + width x the one before
        for _ in range(levels + 1):
            total += 1 + size
            size = 1 + width * size
        return lines, total


def _plain(value):
    """Whether ``value`` is YAML's own data only, every mapping an OrderedDict."""
    if isinstance(value, dict):
        return type(value) is OrderedDict and all(_plain(k) and _plain(v) for k, v in value.items())
    if isinstance(value, (list, set)):
        return all(_plain(v) for v in value)
    return value is None or isinstance(value, (str, int, float, bool, bytes, datetime.date))


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_tags_and_anchors_are_refused_exactly_when_they_are_not_plain_data(tmp_path_factory, data):
    marker = tmp_path_factory.mktemp('property') / 'PWNED'
    doc = Document(data.draw, marker)
    lines, total = [], 1
    for i in range(data.draw(st.integers(1, 6))):
        text, size = doc.node(0)
        lines.append(f'e{i}: {text}')
        total += 1 + size
    if data.draw(st.booleans()):
        chain, size = doc.bomb()
        lines += chain
        total += size
    text = '\n'.join(lines) + '\n'
    refused_for = [
        why for why, yes in (('tag', doc.unsafe), ('recursive', doc.recursive), ('bomb', total > MAX_NODES)) if yes
    ]
    event('must be refused for: ' + ('+'.join(refused_for) or 'nothing'))  # --hypothesis-show-statistics
    try:
        got = load_yaml_text(text, 'opt.yml')
    except YAMLRefused as error:
        message = str(error)
        assert refused_for, f'refused plain data: {message}\n{text}'
        if refused_for == ['tag']:
            match = re.match(r'opt\.yml:(\d+): the YAML tag (\S+) is not allowed', message)
            tags = [tag for tag in doc.unsafe if SHOWN[tag] == (match.group(2) if match else None)]
            assert tags and tags[0] in lines[int(match.group(1)) - 1], (message, text)  # that tag, on that line
        elif refused_for == ['recursive']:
            assert 'contains itself' in message, message
        elif refused_for == ['bomb']:
            assert f'expands to more than {MAX_NODES} values' in message, message
    else:
        assert not refused_for, f'accepted although {refused_for}:\n{text}'
        assert _plain(got) and got == yaml.load(text, Loader=BASICSR_LOADER), text  # plain, safe: BasicSR's data
    assert not marker.exists()
