"""Inference: the model description (:mod:`.description`), tiling (:mod:`.tiling`), the memory estimate
(:mod:`.memory`), the one tensor-level run (:mod:`.run`) and :class:`Restorer` (image in, image out)."""
from converse_basicsr.inference.description import ModelInfo, describe
from converse_basicsr.inference.memory import MemoryPlanner, available_memory, peak_tensor_bytes
from converse_basicsr.inference.restorer import (IMAGE_EXTENSIONS, ImageError, Restorer, RestoreResult, output_names,
                                                 quantise, read_image, write_image)
from converse_basicsr.inference.run import OutputError, choose_tile, run
from converse_basicsr.inference.tiling import parse_tile, tiled_forward

__all__ = [
    'Restorer', 'RestoreResult', 'tiled_forward', 'read_image', 'write_image', 'quantise', 'ImageError',
    'available_memory', 'peak_tensor_bytes', 'output_names', 'IMAGE_EXTENSIONS', 'ModelInfo', 'describe',
    'MemoryPlanner', 'OutputError', 'choose_tile', 'run', 'parse_tile'
]
