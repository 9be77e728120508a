"""Load this package's checkpoints with spandrel (chaiNNer, ComfyUI): ``install()`` adds the Converse archs.

    import spandrel, converse_basicsr.spandrel_support as cs
    cs.install()
    model = spandrel.ModelLoader().load_from_file('converse_srresnet.pth')  # ImageModelDescriptor, x4, RGB

Converse-USRNet is non-blind: ``cs.set_blur_kernel(model, kernel)`` before calling it. See docs/spandrel.md.
"""
from .hub.spandrel_arches import ARCHITECTURES, install, set_blur_kernel

__all__ = ['ARCHITECTURES', 'install', 'set_blur_kernel']
