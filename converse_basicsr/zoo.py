"""Kept for users' imports: the zoo lives in :mod:`converse_basicsr.hub.zoo`, the checkpoint readers in
:mod:`converse_basicsr.hub.state_dicts`."""
from converse_basicsr.hub.state_dicts import *  # noqa: F401,F403
from converse_basicsr.hub.state_dicts import unwrap_state_dict  # noqa: F401
from converse_basicsr.hub.zoo import *  # noqa: F401,F403
from converse_basicsr.hub.zoo import ZOO, ZooError, load_pretrained  # noqa: F401
