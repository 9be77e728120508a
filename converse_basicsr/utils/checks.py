"""Argument checks shared by the library and the command lines: one definition of "an integer" and of "a number"
(``bool`` is neither), and :class:`ConverseError`, the base class of the package's errors about bad input."""
from numbers import Integral, Real

__all__ = ['ConverseError', 'is_int', 'is_real', 'check_int']


class ConverseError(ValueError):
    """The base of the errors a bad option, model or input raises: entry points print it and exit with status 2."""


def is_int(value):
    """True for an integer that is not a ``bool`` (``True`` is an ``Integral`` in Python)."""
    return isinstance(value, Integral) and not isinstance(value, bool)


def is_real(value):
    """True for a real number that is not a ``bool`` (integers included; NaN and infinities too)."""
    return isinstance(value, Real) and not isinstance(value, bool)


def check_int(value, name, minimum=None, error=ValueError):
    """``value`` if it is an integer (not a ``bool``) of at least ``minimum``, else ``error`` naming ``name``."""
    if not is_int(value) or (minimum is not None and value < minimum):
        kind = {None: 'an integer', 0: 'a non-negative integer',
                1: 'a positive integer'}.get(minimum, f'an integer >= {minimum}')
        raise error(f'{name} must be {kind}, got {value!r}')
    return value
