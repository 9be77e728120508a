"""``SpandrelNet``: any checkpoint spandrel recognises as a BasicSR arch, for converse-test / converse-train YAMLs.

    network_g:
      type: SpandrelNet
      path: realesr-general-x4v3.pth     # arch and hyper-parameters detected, weights loaded

The network *is* the detected arch's module with the file's weights (its state-dict keys are the file's, so
what converse-train saves loads again by path). Archs that need a call convention of their own (a noise map,
a kernel) or input sizes (a multiple of a window) are wrapped
(:class:`converse_basicsr.hub.public.SpandrelModule`, keys under ``net.``).
``ConverseUp`` accepts it as ``base`` and converts its upsampler, keeping every other pretrained layer. It is
always built on the CPU: loading weights on the ``meta`` device (the option check's probe) cannot work.
"""
import torch
from torch import nn

from basicsr.utils.registry import ARCH_REGISTRY
from converse_basicsr.hub.resolver import resolve


@ARCH_REGISTRY.register()
class SpandrelNet(nn.Module):
    """The network in ``path`` (``.pth .pt .ckpt .safetensors``): as its description says, else detected by spandrel
    (with the Converse archs; :func:`converse_basicsr.hub.resolver.resolve`).

    Args:
        path (str): The checkpoint file.
    """

    def __new__(cls, path):
        with torch.device('cpu'):  # weights are real even where the caller builds on the meta device (a probe)
            resolved = resolve(path)
        module = resolved.module
        net = module.net if getattr(module, 'plain', False) else module  # else keep the arch's call convention
        net.spandrel_info = resolved.info
        return net.train()

    def __init__(self, path):
        """Nothing left to do: ``__new__`` returned the loaded network."""
