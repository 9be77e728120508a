"""The shared option checks' edges: a label given twice, a folder that is a file, a device torch knows but this
package does not run on, a blank text value, and zero for a positive number."""
import pytest

from converse_basicsr.utils.options import (OptionError, Spec, check_device, check_unique, check_value,
                                            check_writable_dir)


def test_a_label_given_twice_is_an_error_naming_it():
    assert check_unique('--model', ['a', 'b']) == ['a', 'b']
    with pytest.raises(OptionError, match="--model 'a' is given twice"):
        check_unique('--model', ['a', 'b', 'a'])


def test_an_output_folder_that_is_a_file_is_refused(tmp_path):
    target = tmp_path / 'taken'
    target.write_text('a file')
    with pytest.raises(OptionError, match='is a file; give a folder'):
        check_writable_dir(str(target), '--results-root')
    with pytest.raises(OptionError, match=f'cannot be made: {target} is a file'):
        check_writable_dir(str(target / 'below'), '--results-root')
    assert check_writable_dir(str(tmp_path / 'new' / 'deeper'), '--results-root')  # made later: accepted


def test_a_device_the_package_does_not_run_on_is_refused():
    assert check_device('cpu') == 'cpu'
    with pytest.raises(OptionError, match="^--device.*meta"):  # torch knows the meta device; no entry point runs on it
        check_device('meta')


def test_blank_text_and_zero_for_a_positive_number_are_refused():
    with pytest.raises(OptionError, match="name must be a string, got '  '"):
        check_value('name', '  ', Spec('str'))
    with pytest.raises(OptionError, match='val_freq must be a positive number, got 0'):
        check_value('val_freq', 0, Spec('number', positive=True))
    assert check_value('val_freq', 1e-3, Spec('number', positive=True)) == 1e-3
