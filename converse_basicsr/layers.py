"""Kept for users' imports: the layers live in :mod:`converse_basicsr.nn.layers`."""
from converse_basicsr.nn.layers import *  # noqa: F401,F403
from converse_basicsr.nn.layers import ConverseUpsample  # noqa: F401
