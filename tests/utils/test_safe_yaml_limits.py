"""The limits of the safe YAML loader (``utils/safe_yaml.py``): a document of exactly ``MAX_NODES`` expanded values is
read and one more is refused, a document nested too deeply for the parser and a file that is not UTF-8 are refused
in one line naming the file (never a ``RecursionError`` or ``UnicodeDecodeError``), and a value that does not read
as its tag (``!!int abc``) is refused naming the line."""
import pytest

from converse_basicsr.utils import safe_yaml
from converse_basicsr.utils.safe_yaml import YAMLRefused, load_yaml, load_yaml_text

# 1 mapping + 2 keys + twice the anchored list (1 sequence + 2 numbers): 9 values once the alias is expanded.
ALIASED = 'a: &pair [1, 2]\nb: *pair\n'
ALIASED_VALUES = 1 + 2 + 2 * (1 + 2)


def test_exactly_max_nodes_values_are_read_and_one_more_is_refused(monkeypatch):
    monkeypatch.setattr(safe_yaml, 'MAX_NODES', ALIASED_VALUES)
    assert load_yaml_text(ALIASED) == {'a': [1, 2], 'b': [1, 2]}
    monkeypatch.setattr(safe_yaml, 'MAX_NODES', ALIASED_VALUES - 1)
    with pytest.raises(YAMLRefused, match=f'expands to more than {ALIASED_VALUES - 1} values'):
        load_yaml_text(ALIASED, 'f.yml')


def test_a_document_nested_too_deeply_is_refused_naming_the_file(tmp_path):
    path = tmp_path / 'deep.yml'
    path.write_text('a: ' + '[' * 5000 + ']' * 5000 + '\n')
    with pytest.raises(YAMLRefused) as refused:
        load_yaml(str(path))
    assert str(refused.value) == f'{path}: nested too deeply to be an option file'


def test_a_file_that_is_not_utf8_is_refused_naming_the_file_and_byte(tmp_path):
    path = tmp_path / 'latin1.yml'
    path.write_bytes('name: caf\u00e9\n'.encode('latin-1'))  # é is byte 9: 0xE9, not valid UTF-8 there
    with pytest.raises(YAMLRefused) as refused:
        load_yaml(str(path))
    assert str(refused.value) == f'{path}: not a UTF-8 text file (invalid continuation byte at byte 9)'
    path.write_bytes('name: caf\u00e9\n'.encode('utf-8'))
    assert load_yaml(str(path)) == {'name': 'caf\u00e9'}


@pytest.mark.parametrize('text, line, tag', [
    ('a: 1\nb: !!int abc\n', 2, '!!int'),
    ('a:\n  - 1\n  - !!float x\n', 3, '!!float'),
    ('a: !!bool maybe\n', 1, '!!bool'),
])
def test_a_value_that_does_not_read_as_its_tag_is_refused_naming_the_line(text, line, tag):
    with pytest.raises(YAMLRefused) as refused:
        load_yaml_text(text, 'f.yml')
    assert str(refused.value).startswith(f'f.yml:{line}: ') and f'is not a valid {tag}' in str(refused.value)
