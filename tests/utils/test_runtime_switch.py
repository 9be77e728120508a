"""``CONVERSE_RETAIN_FREED_MEMORY`` turns the glibc setting off with any of the usual words for "off", in any case
and with spaces around it (``utils/runtime.py``); checked in this process, where nothing is then changed."""
import pytest

from converse_basicsr.utils import runtime


@pytest.mark.parametrize('value', ['0', 'false', 'no', 'off', 'OFF', ' Off ', 'False', 'NO'])
def test_each_word_for_off_turns_it_off(monkeypatch, value):
    monkeypatch.setenv(runtime.ENV_VAR, value)
    monkeypatch.setattr(runtime, '_libc', lambda: pytest.fail('glibc was asked to change its thresholds'))
    assert runtime.retain_freed_memory() is False
