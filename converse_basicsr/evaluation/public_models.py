"""converse-compare's checkpoint files by path: kept for imports; the work is in
:func:`converse_basicsr.evaluation.model_entries.check_paths`."""
from converse_basicsr.evaluation.model_entries import check_paths, take_preloaded  # noqa: F401
