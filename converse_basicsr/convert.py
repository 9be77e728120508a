"""Kept for users' imports: the converter lives in :mod:`converse_basicsr.nn.convert`."""
from converse_basicsr.nn.convert import *  # noqa: F401,F403
from converse_basicsr.nn.convert import convert_upsamplers  # noqa: F401
