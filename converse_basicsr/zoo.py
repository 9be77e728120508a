"""Kept for users' imports: the zoo lives in :mod:`converse_basicsr.hub.zoo`."""
from converse_basicsr.hub.zoo import *  # noqa: F401,F403
from converse_basicsr.hub.zoo import ZOO, ZooError, load_pretrained, unwrap_state_dict  # noqa: F401
