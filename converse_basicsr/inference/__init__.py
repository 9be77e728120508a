"""Inference: the model description (scale, channels, minimum size, kernel input), tiling, the memory
estimate and :class:`Restorer` (image in, image out)."""
from converse_basicsr.inference.restorer import (IMAGE_EXTENSIONS, ImageError, Restorer, RestoreResult,
                                                 available_memory, output_names, peak_tensor_bytes, quantise,
                                                 read_image, tiled_forward, write_image)

__all__ = [
    'Restorer', 'RestoreResult', 'tiled_forward', 'read_image', 'write_image', 'quantise', 'ImageError',
    'available_memory', 'peak_tensor_bytes', 'output_names', 'IMAGE_EXTENSIONS'
]
