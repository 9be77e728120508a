"""The automatic tile's memory model is the same in any process: it does not depend on which sizes earlier calls
left in the operator's per-size twiddle tables (in the suite, the tests run before once decided whether a
re-measurement agreed with the first)."""
import torch

from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN
from converse_basicsr.inference.restorer import Restorer
from converse_basicsr.ops import Converse2D, spectral


def test_the_memory_model_does_not_depend_on_cached_tables():
    torch.manual_seed(0)
    model = ConverseDnCNN(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1).eval()
    restorer = Restorer(model)

    def measure_after(size):
        """The measurement after a call at ``size`` only (None: after nothing) left its tables cached."""
        spectral._TABLES.clear()
        for module in model.modules():
            if isinstance(module, Converse2D):
                module._cache.clear()
        if size is not None:
            with torch.no_grad():
                model(torch.rand(1, 1, size, size))
        return restorer.planner.measure()

    first = measure_after(None)
    assert measure_after(32) == first and measure_after(64) == first  # the two probe sizes


def test_the_automatic_tile_counts_the_context_on_every_side(monkeypatch):
    """1 byte per pixel and 60,000 bytes free for the tile: with 32 pixels of context on each side a tile T fits
    when (T + 64)² <= 60,000, so 160 (a multiple of 32); 192 would need 65,536."""
    from converse_basicsr.inference import memory
    restorer = Restorer(ConverseDnCNN(num_in_ch=1, num_out_ch=1, num_feat=8, num_block=1), tile='auto', tile_pad=32)
    params = sum(p.numel() * p.element_size() for p in restorer.model.parameters())
    restorer.planner.memory_model = (0, 1.0)
    monkeypatch.setattr(memory, 'available_memory', lambda device: (params + 60000) / memory.MEMORY_FRACTION)
    assert restorer.auto_tile(512, 512) == 160
