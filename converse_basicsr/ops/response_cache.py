"""The per-layer cache of transfer functions that ``Converse2D`` keeps in eval mode."""
from .execution import spectrum_bytes
from .spectral import complex_dtype


class ResponseCache(dict):
    """``{key: (stamp, response)}``: one layer's transfer functions for its last ``max_entries`` sizes and layouts.

    An entry is valid while the parameters' version counters, storages and ``eps`` are those it was
    built from. Responses above ``max_bytes`` are not built here: for large maps the response costs a few
    percent of the FFTs when built group by group in cache, and holding it would cost as much memory as
    the activations.
    """

    def __init__(self, max_entries=4):
        super().__init__()
        self.max_entries = max_entries

    def lookup(self, weight, bias, eps, size, scale, dtype, layout, build, max_bytes):
        """The response for a padded ``size``, from the cache or from ``build()`` (None above ``max_bytes``)."""
        channels = weight.shape[1]
        if channels * spectrum_bytes(1, scale, size, complex_dtype(dtype)) > max_bytes:
            return None
        key = (tuple(size), scale, dtype, weight.device, layout.name)
        stamp = (weight._version, bias._version, weight.data_ptr(), bias.data_ptr(), eps)
        hit = super().get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        response_ = build()
        if len(self) >= self.max_entries:
            self.pop(next(iter(self)))
        self[key] = (stamp, response_)
        return response_
