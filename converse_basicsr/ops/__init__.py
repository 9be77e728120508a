from .converse2d import PADDING_MODES, Converse2D, converse2d
from .spectral import fold, kernel_spectrum, regularizer, tile, transfer_function

__all__ = ['Converse2D', 'converse2d', 'PADDING_MODES', 'fold', 'kernel_spectrum', 'regularizer', 'tile',
           'transfer_function']
