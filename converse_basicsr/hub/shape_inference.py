"""The arch and hyper-parameters of a Converse state dict, read from its parameter names and shapes.

Each ``infer_*`` function returns ``(arch type, kwargs)`` or ``None``; :func:`infer_arch` accepts a guess
only when the arch built with those kwargs (on the meta device, :func:`~.zoo.state_dict_matches`) has
exactly the state dict's names and shapes, so a guess never claims a foreign checkpoint.

Read from shapes: channels in/out, ``num_feat``, ``num_block``, ``upscale``, the Converse2D kernel sizes,
USRNet's ``num_iter`` / ``kernel_size`` / ``kernel_hidden`` / ``num_kernel_feat``, RRDBNet's
``num_grow_ch``. Not in a state dict, so the arch defaults (the published models') are used: ``padding``,
``padding_mode``, ``eps``, ConverseNet's ``num_iter``. Only ``operator='converse'`` is claimed: the
Conv / ConvT baselines have identical shapes and cannot be told apart.
"""
import math
import re

from .zoo import state_dict_matches


def count(state_dict, prefix):
    """How many numbered children ``prefix.<i>.`` the state dict has (0 when none)."""
    pattern = re.compile(re.escape(prefix) + r'\.(\d+)\.')
    indices = {int(m.group(1)) for k in state_dict for m in [pattern.match(k)] if m}
    return max(indices) + 1 if indices else 0


def _shape(state_dict, key):
    value = state_dict.get(key)
    return tuple(value.shape) if value is not None else None


def _block_kernel(state_dict, prefix):
    """Kernel size of the Converse2D in block ``prefix`` (``conv1.3``), None when it is not a Converse2D."""
    shape = _shape(state_dict, f'{prefix}.conv1.3.weight')
    return shape[-1] if shape and len(shape) == 4 and shape[0] == 1 else None


def _stage_upscale(state_dict, up_key, two_stages):
    """Upscale of an upsampler: 4 with two ×2 stages; one stage: its Converse2D kernel (2 or 3, the defaults)."""
    if two_stages:
        return 4, None
    kernel = _shape(state_dict, up_key)[-1]
    return (kernel, None) if kernel in (2, 3) else (None, None)


def infer_converse_dncnn(sd):
    head, tail = _shape(sd, 'm_head.0.weight'), _shape(sd, 'm_tail.0.weight')
    kernel = _block_kernel(sd, 'm_body.0')
    if not head or not tail or kernel is None:
        return None
    return 'ConverseDnCNN', dict(num_in_ch=head[1], num_out_ch=tail[0], num_feat=head[0], num_block=count(sd, 'm_body'),
                                 kernel_size=kernel)


def infer_converse_srresnet(sd):
    first, last = _shape(sd, 'conv_first.weight'), _shape(sd, 'conv_last.weight')
    kernel = _block_kernel(sd, 'conv_body.0')
    if not first or not last or first[-1] != 1 or kernel is None or 'up1.weight' not in sd:
        return None
    upscale, _ = _stage_upscale(sd, 'up1.weight', 'up2.weight' in sd)
    if upscale is None:
        return None
    return 'ConverseMSRResNet', dict(num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0],
                                     num_block=count(sd, 'conv_body'), upscale=upscale, kernel_size=kernel)


def infer_converse_up_srresnet(sd):
    first, last = _shape(sd, 'conv_first.weight'), _shape(sd, 'conv_last.weight')
    if not first or not last or first[-1] != 3 or 'up1.weight' not in sd or 'body.0.conv1.weight' not in sd:
        return None
    upscale, _ = _stage_upscale(sd, 'up1.weight', 'up2.weight' in sd)
    if upscale is None:
        return None
    return 'ConverseUpMSRResNet', dict(num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0],
                                       num_block=count(sd, 'body'), upscale=upscale)


def infer_conversenet(sd):
    first, last = _shape(sd, 'conv1.weight'), _shape(sd, 'conv2.weight')
    kernel = _block_kernel(sd, 'p.m_body.0')
    if not first or not last or kernel is None or 'd.alpha' in sd:
        return None
    return 'ConverseNet', dict(num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0],
                               num_block=count(sd, 'p.m_body'), kernel_size=kernel)


def infer_converse_usrnet(sd):
    first, last = _shape(sd, 'conv1.weight'), _shape(sd, 'conv2.weight')
    fc1, fc3 = _shape(sd, 'kernelnet.fc1.weight'), _shape(sd, 'kernelnet.fc3.weight')
    block_kernel = _block_kernel(sd, 'p.m_body.0')
    if not (first and last and fc1 and fc3 and 'd.alpha' in sd) or block_kernel is None:
        return None
    kernel_size = math.isqrt(fc1[1])
    if kernel_size * kernel_size != fc1[1] or fc3[0] % fc1[1]:
        return None
    return 'ConverseUSRNet', dict(num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0],
                                  num_block=count(sd, 'p.m_body'), num_iter=count(sd, 'convs'), kernel_size=kernel_size,
                                  block_kernel_size=block_kernel, kernel_hidden=fc1[0],
                                  num_kernel_feat=fc3[0] // fc1[1])


def _up_options(sd, up_key, stage_scale):
    """ConverseUp's ``kernel_size``: None when the Converse2D kernel is the stage's scale (the default)."""
    kernel = _shape(sd, up_key)[-1]
    return {} if kernel == stage_scale else {'kernel_size': kernel}


def infer_converse_up(sd):
    """``ConverseUp`` on BasicSR's EDSR, MSRResNet or RRDBNet (the bases whose upsampler layout is known)."""
    if 'upsample.up1.weight' in sd and 'conv_after_body.weight' in sd:  # EDSR
        first, last = _shape(sd, 'conv_first.weight'), _shape(sd, 'conv_last.weight')
        stages = sum(f'upsample.up{i}.weight' in sd for i in range(1, 9))
        upscale = 2**stages if stages > 1 or _shape(sd, 'upsample.up1.weight')[-1] != 3 else 3
        base = dict(type='EDSR', num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0], num_block=count(sd, 'body'),
                    upscale=upscale)
        return 'ConverseUp', dict(base=base, **_up_options(sd, 'upsample.up1.weight', 3 if upscale == 3 else 2))
    if 'upconv1.up1.weight' in sd and 'body.0.conv1.weight' in sd:  # MSRResNet
        first, last = _shape(sd, 'conv_first.weight'), _shape(sd, 'conv_last.weight')
        kernel = _shape(sd, 'upconv1.up1.weight')[-1]
        upscale = 4 if 'upconv2.up1.weight' in sd else kernel if kernel in (2, 3) else 2  # x2 vs x3: the kernel
        base = dict(type='MSRResNet', num_in_ch=first[1], num_out_ch=last[0], num_feat=first[0],
                    num_block=count(sd, 'body'), upscale=upscale)
        return 'ConverseUp', dict(base=base, **_up_options(sd, 'upconv1.up1.weight', 3 if upscale == 3 else 2))
    if 'upsample1.up1.weight' in sd and 'body.0.rdb1.conv1.weight' in sd:  # RRDBNet
        first, last = _shape(sd, 'conv_first.weight'), _shape(sd, 'conv_last.weight')
        scale = next((s for s, f in ((4, 1), (2, 4), (1, 16)) if first[1] % f == 0 and first[1] // f == last[0]), 4)
        base = dict(type='RRDBNet', num_in_ch=last[0], num_out_ch=last[0], scale=scale, num_feat=first[0],
                    num_block=count(sd, 'body'), num_grow_ch=_shape(sd, 'body.0.rdb1.conv1.weight')[0])
        return 'ConverseUp', dict(base=base, **_up_options(sd, 'upsample1.up1.weight', 2))
    return None


INFERENCES = {
    'ConverseDnCNN': infer_converse_dncnn,
    'ConverseMSRResNet': infer_converse_srresnet,
    'ConverseUpMSRResNet': infer_converse_up_srresnet,
    'ConverseNet': infer_conversenet,
    'ConverseUSRNet': infer_converse_usrnet,
    'ConverseUp': infer_converse_up,
}


def infer_arch(state_dict, arch=None):
    """``(arch type, kwargs)`` of a Converse state dict whose names and shapes the guess matches exactly; else None.

    ``arch``: try only this arch type (a key of :data:`INFERENCES`)."""
    for name, infer in INFERENCES.items():
        if arch not in (None, name):
            continue
        try:
            guess = infer(state_dict)
        except (KeyError, IndexError, TypeError, ValueError, ZeroDivisionError):
            guess = None
        if guess is not None and _fits(guess, state_dict):
            return guess
    return None


def _fits(guess, state_dict):
    try:
        return state_dict_matches(guess[0], guess[1], state_dict)
    except (ValueError, TypeError, KeyError, RuntimeError, AssertionError):  # kwargs the arch refuses
        return False
