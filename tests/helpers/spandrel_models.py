"""Every arch spandrel 0.4.2 ships, built from spandrel's own classes small (random weights), for detection tests.

``SMALL_KWARGS``: constructor arguments per (arch id, class name) that keep the model small; classes not listed
are built with their defaults. ``NOT_BUILT``: the ones that cannot be built small here, with the reason.
"""
import importlib

import torch
from spandrel import MAIN_REGISTRY

_SWIN = dict(embed_dim=12, depths=[1], num_heads=[2], window_size=4, img_size=16)
SMALL_KWARGS = {
    ('HAT', 'HAT'): dict(_SWIN, depths=(1, ), num_heads=(2, ), compress_ratio=2, squeeze_factor=4, upscale=2,
                         upsampler='pixelshuffle'),
    ('GRL', 'GRL'): dict(embed_dim=16, depths=[1], num_heads_window=[1], num_heads_stripe=[1], window_size=4,
                         stripe_size=[4, 4], img_size=16),
    ('Swin2SR', 'Swin2SR'): dict(_SWIN, upscale=2, upsampler='pixelshuffle'),
    ('SwinIR', 'SwinIR'): dict(_SWIN, upscale=2, upsampler='pixelshuffle'),
    ('SCUNet', 'SCUNet'): dict(config=[1] * 7, dim=16, input_resolution=32),
    ('Uformer', 'Uformer'): dict(img_size=32, embed_dim=8, depths=[1] * 9, num_heads=[1, 1, 1, 1, 1, 1, 1, 1, 1],
                                 win_size=4),
    ('RGT', 'RGT'): dict(img_size=16, embed_dim=12, depth=[1], num_heads=[2], split_size=[4, 4]),
    ('DAT', 'DAT'): dict(img_size=16, embed_dim=12, depth=[1], num_heads=[2], split_size=[2, 4]),
    ('MMRealSR', 'MMRealSR'): dict(num_in_ch=3, num_out_ch=3, num_feat=16, num_block=1, num_grow_ch=8,
                                   num_feats=[8, 8, 8, 8]),
    ('SPAN', 'SPAN'): dict(num_in_ch=3, num_out_ch=3, feature_channels=12),
    ('SAFMN', 'SAFMN'): dict(dim=8, n_blocks=1),
    ('SAFMNBCIE', 'SAFMNBCIE'): dict(dim=8, n_blocks=1, num_layers=1),
    ('NAFNet', 'NAFNet'): dict(width=8, middle_blk_num=1, enc_blk_nums=[1], dec_blk_nums=[1]),
    ('IPT', 'IPT'): dict(patch_size=48, n_feats=16, num_heads=2, num_layers=1),
    ('DRCT', 'DRCT'): dict(img_size=16, embed_dim=12, depths=(1, ), num_heads=(2, ), window_size=4, gc=8, upscale=2,
                           upsampler='pixelshuffle'),
    ('MoSR', 'MoSR'): dict(n_block=1, dim=16),
    ('RCAN', 'RCAN'): dict(n_resgroups=1, n_resblocks=1, n_feats=16, reduction=4),
    ('FDAT', 'FDAT'): dict(embed_dim=16, num_groups=1, depth_per_group=1, num_heads=2, window_size=4, mid_dim=16),
    ('AuraSR', 'AuraSR'): dict(dim=8, image_size=64, input_image_size=16,
                               style_network=dict(dim_in=8, dim_out=8, depth=1)),
    ('ESRGAN', 'ESRGAN'): dict(num_filters=16, num_blocks=1),
    ('SwiftSRGAN', 'SwiftSRGAN'): dict(num_channels=16, num_blocks=1),
}
NOT_BUILT = {}  # (arch id, class name) -> why it cannot be built here (none: all 0.4.2 archs build)


def spandrel_classes():
    """``[(arch id, class name, class)]`` for every model class of every arch in spandrel's main registry."""
    found = []
    for support in MAIN_REGISTRY.architectures('detection'):
        arch = support.architecture
        if arch.id.startswith('converse_basicsr.'):
            continue
        module = importlib.import_module(type(arch).__module__)
        for name in module.__all__:
            if not name.endswith('Arch'):
                found.append((arch.id, name, getattr(module, name)))
    return found


def build_small(arch_id, name, cls):
    """A state dict of ``cls``: with its default arguments on the meta device (shapes only: the detectors read
    names and shapes) where that works, else built small on the CPU with random weights (seed 0)."""
    if (arch_id, name) not in SMALL_KWARGS:
        try:
            with torch.device('meta'):
                return cls().state_dict()
        except (RuntimeError, TypeError):
            pass
    torch.manual_seed(0)
    return cls(**SMALL_KWARGS.get((arch_id, name), {})).state_dict()
