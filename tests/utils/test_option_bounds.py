"""The edges of the shared option rules (``utils/options.py``): a minimum and a maximum are themselves allowed (a
``positive`` spec is the one that excludes its bound), every element of a list is held to them, ``[lo, hi]`` is two
numbers, NaN and infinities are not numbers an option can take, a value that may not be ``~`` is refused, a CUDA
index is below the device count, and a folder name's byte limit and forbidden characters are exact."""
import argparse
import math

import pytest
import torch

from converse_basicsr.utils.options import (FOLDER_NAME_BYTES, SPECS, CheckedParser, OptionError, Spec, arg,
                                            check_device, check_folder_name, check_value, fail)


def _refused(name, value, spec):
    with pytest.raises(OptionError) as refused:
        check_value(name, value, spec)
    return str(refused.value)


def test_a_minimum_and_a_maximum_are_themselves_allowed():
    probability = Spec('number', minimum=0, maximum=1)
    for value in (0, 1, 0.0, 1.0, 0.25):
        assert check_value('p', value, probability) == value
    for value in (-1e-9, 1 + 1e-9, -1, 2):
        assert _refused('p', value, probability).startswith(f'p must be a number in [0, 1], got {value!r}')
    assert check_value('n', 1, Spec('int', minimum=1)) == 1
    assert _refused('n', 0, Spec('int', minimum=1)) == 'n must be an integer >= 1, got 0 (int)'
    assert check_value('q', 9, Spec('int', maximum=9)) == 9
    assert _refused('q', 10, Spec('int', maximum=9)) == 'q must be an integer <= 9, got 10 (int)'


def test_positive_is_the_bound_that_is_not_allowed():
    assert _refused('s', 0, Spec('number', minimum=0, positive=True)).startswith('s must be a positive number >= 0')
    assert check_value('s', 1e-12, Spec('number', minimum=0, positive=True)) == 1e-12


def test_every_element_of_a_list_is_held_to_the_bounds():
    probabilities = Spec('numbers', minimum=0, maximum=1)
    assert check_value('ps', [0, 1, 0.5], probabilities) == [0, 1, 0.5]
    assert _refused('ps', [0, 1.5], probabilities) == 'ps must be a list of numbers in [0, 1], got [0, 1.5] (list)'
    assert _refused('ps', [-0.5, 1], probabilities).startswith('ps must be a list of numbers in [0, 1]')


def test_a_range_is_exactly_two_numbers():
    assert check_value('r', [1, 2], Spec('range')) == [1, 2]
    expected = 'r must be a list [lo, hi] of two numbers, got '
    for value in ([1], [1, 2, 3], [], [1, 'x']):
        assert _refused('r', value, Spec('range')).startswith(f'{expected}{value!r}')


@pytest.mark.parametrize('value', [math.nan, math.inf, -math.inf])
def test_nan_and_infinities_are_refused_as_not_finite(value):
    assert _refused('x', value, Spec('number')).startswith(f'x must be a finite number, got {value!r}')
    assert _refused('x', [1, value], Spec('numbers')).startswith('x must be a list of finite numbers')


def test_a_value_that_may_not_be_null_is_refused_as_null():
    assert check_value('x', None, Spec('number', minimum=1)) is None  # nullable by default: BasicSR's ``~``
    assert _refused('x', None, Spec('number', minimum=1, nullable=False)) == 'x must be a number, got None (NoneType)'


def test_a_cuda_index_must_be_below_the_device_count(monkeypatch):
    monkeypatch.setattr(torch.cuda, 'is_available', lambda: True)
    monkeypatch.setattr(torch.cuda, 'device_count', lambda: 2)
    assert check_device('cuda') == 'cuda' and check_device('cuda:0') == 'cuda:0' and check_device('cuda:1') == 'cuda:1'
    with pytest.raises(OptionError) as refused:
        check_device('cuda:2')
    assert str(refused.value) == '--device cuda:2: this machine has 2 CUDA device(s) (0-1)'


def test_the_folder_name_byte_limit_is_exact():
    assert check_folder_name('name', 'a' * FOLDER_NAME_BYTES) == 'a' * FOLDER_NAME_BYTES
    with pytest.raises(OptionError, match=f'it is {FOLDER_NAME_BYTES + 1} bytes long'):
        check_folder_name('name', 'a' * (FOLDER_NAME_BYTES + 1))
    assert FOLDER_NAME_BYTES + len('_archived_20260101_000000_99') <= 255  # BasicSR's archive suffix still fits


@pytest.mark.parametrize('value, problem', [
    ('..', 'it names no folder of its own'),
    ('.', 'it names no folder of its own'),
    ('  ', 'it names no folder of its own'),
    ('a\\b', 'it holds a path separator'),
    ('a/b', 'it holds a path separator'),
    ('a\x7fb', 'it holds a control character'),
    ('a\tb', 'it holds a control character'),
])
def test_folder_names_that_leave_or_break_their_folder_are_refused(value, problem):
    with pytest.raises(OptionError) as refused:
        check_folder_name('name', value)
    assert str(refused.value).startswith('name must be a folder name: ') and str(refused.value).endswith(f'({problem})')


def test_tile_flags_read_auto_or_an_integer():
    tile = arg(SPECS['tile'])
    assert tile('auto') == 'auto' and tile('16') == 16 and tile('8') == 8
    with pytest.raises(argparse.ArgumentTypeError, match="must be an integer >= 8 or 'auto', got 4"):
        tile('4')


def test_command_line_errors_have_exit_status_2(capsys):
    with pytest.raises(SystemExit) as exited:
        CheckedParser(prog='converse-x').error('bad flag')
    assert exited.value.code == 2
    assert capsys.readouterr().err == 'converse-x: error: bad flag (see --help)\n'
    assert fail('converse-x', OptionError('bad value')) == 2
    assert capsys.readouterr().err == 'converse-x: error: bad value\n'
