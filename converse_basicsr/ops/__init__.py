from .converse2d import PADDING_MODES, Converse2D, converse2d
from .spectral import regularizer, transfer_function

__all__ = ['Converse2D', 'converse2d', 'PADDING_MODES', 'regularizer', 'transfer_function']
