"""Swap the upsamplers of existing networks for reverse convolution (``ConverseUpsample``).

One call, ``convert_upsamplers(model)``, returns a converted copy of ``model`` and a report (layers
replaced, parameter counts, new and removed state-dict keys). What it converts:

* BasicSR's archs, arch-aware: ``MSRResNet`` (its ``upconv`` convs and the ``pixel_shuffle`` it shares
  between stages), ``RRDBNet`` and ``SwinIR(upsampler='nearest+conv')`` (their ``F.interpolate`` calls
  inside ``forward``: the model's class becomes ``ConvertedRRDBNet`` / ``ConvertedSwinIR``, whose forward
  calls ``upsample1``/``upsample2`` instead). ``EDSR``, ``RCAN`` and SwinIR's ``pixelshuffle`` /
  ``pixelshuffledirect`` keep their forward: their ``upsample`` module is replaced by the rules below.
  ``SwinIR(upsampler='')`` (×1 denoising / JPEG) has no upsampler: an error.
* Any ``nn.Module``, by the generic rule (modules only; ``F.interpolate``/``F.pixel_shuffle`` calls in a
  ``forward`` are invisible to it):
    - an ``nn.Sequential`` made only of ``Conv2d, PixelShuffle`` pairs (BasicSR's ``Upsample``,
      ``UpsampleOneStep``) becomes one ``ConverseUpsample`` (same input and output channels, the
      convs' kernel size);
    - a ``Conv2d`` directly followed by a ``PixelShuffle`` inside a longer ``nn.Sequential`` becomes a
      ``ConverseUpsample`` and the ``PixelShuffle`` an ``nn.Identity`` (the other indices stay);
    - an ``nn.ConvTranspose2d`` of stride s ≥ 2 whose output is H·s becomes
      ``ConverseUpsample(c_in, s, c_out, conv_kernel_size=1)`` (a depthwise one, ``groups = c_in = c_out``,
      becomes a bare Converse2D); stride 1 is a convolution and is left alone (listed as skipped);
    - an ``nn.Upsample`` with an integer ``scale_factor`` (any mode) becomes a bare Converse2D upsampler
      (``conv_kernel_size=0``) on its channels, read from ``example_input`` or from the Conv2d next to it
      in an ``nn.Sequential``.
  Anything else of these types (a PixelShuffle with no Conv2d before it in an ``nn.Sequential``, a
  ConvTranspose2d with unequal strides or another output size, an ``nn.Upsample`` with ``size`` or an
  unknown channel count, a scale that is not 2^n or 3) is an error naming the layer; ``exclude`` leaves
  named layers alone. Replaced layers get new state-dict keys (``upsample.conv1.weight``, ...), so a
  checkpoint of the original arch loads with ``strict=False`` (``load_original_state_dict``).
"""
import copy
import dataclasses
import math

import torch
from torch import nn

from basicsr.archs.arch_util import default_init_weights, pixel_unshuffle
from basicsr.archs.rrdbnet_arch import RRDBNet
from basicsr.archs.srresnet_arch import MSRResNet
from basicsr.archs.swinir_arch import SwinIR
from converse_basicsr.hub.state_dicts import LoadResult, load_original_state_dict  # noqa: F401  (public names)
from converse_basicsr.nn.layers import ConverseUpsample
from converse_basicsr.ops import Converse2D
from converse_basicsr.utils.checks import ConverseError

# Modules that keep the channel count: looked through when an nn.Upsample's channels come from its neighbours.
_CHANNEL_PRESERVING = (nn.Identity, nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.PReLU, nn.GELU, nn.SiLU, nn.ELU, nn.Mish,
                       nn.Hardswish, nn.Sigmoid, nn.Tanh, nn.Dropout, nn.Dropout2d, nn.BatchNorm2d, nn.InstanceNorm2d,
                       nn.GroupNorm)


class ConversionError(ConverseError):
    """A layer that looks like an upsampler but cannot be converted (the message names it)."""


@dataclasses.dataclass
class ConversionReport:
    """What ``convert_upsamplers`` did: ``replaced`` holds ``(layer name, before, after)``."""
    model: str
    replaced: list
    skipped: list
    params_before: int
    params_after: int
    new_keys: list
    removed_keys: list

    def __str__(self):
        lines = [
            f'{self.model}: {len(self.replaced)} layer(s) converted to reverse convolution, '
            f'parameters {self.params_before:,} -> {self.params_after:,}'
        ]
        lines += [f'  {name}: {before}\n    -> {after}' for name, before, after in self.replaced]
        lines += [f'  left alone: {name} ({why})' for name, why in self.skipped]
        lines.append(f'  new state-dict keys: {", ".join(self.new_keys) or "none"}')
        lines.append(f'  removed state-dict keys: {", ".join(self.removed_keys) or "none"}')
        return '\n'.join(lines)


class ConvertedRRDBNet(RRDBNet):
    """RRDBNet whose two nearest ×2 interpolations are ``upsample1``/``upsample2`` (made by ``convert_upsamplers``)."""

    def forward(self, x):
        feat = pixel_unshuffle(x, scale=4 // self.scale) if self.scale in (1, 2) else x
        feat = self.conv_first(feat)
        feat = feat + self.conv_body(self.body(feat))
        feat = self.lrelu(self.conv_up1(self.upsample1(feat)))
        feat = self.lrelu(self.conv_up2(self.upsample2(feat)))
        return self.conv_last(self.lrelu(self.conv_hr(feat)))


class ConvertedSwinIR(SwinIR):
    """SwinIR ``nearest+conv`` whose two nearest ×2 interpolations are ``upsample1``/``upsample2``."""

    def forward(self, x):
        if self.upsampler != 'nearest+conv':
            return super().forward(x)
        self.mean = self.mean.type_as(x)
        x = self.conv_first((x - self.mean) * self.img_range)
        x = self.conv_before_upsample(self.conv_after_body(self.forward_features(x)) + x)
        x = self.lrelu(self.conv_up1(self.upsample1(x)))
        x = self.lrelu(self.conv_up2(self.upsample2(x)))
        return self.conv_last(self.lrelu(self.conv_hr(x))) / self.img_range + self.mean


class _Plan:
    """The replacements found by the walk; applied only once every layer has converted (no half-done model)."""

    def __init__(self, root, options, channels, exclude):
        self.root, self.options, self.channels, self.exclude = root, options, channels, exclude
        self.changes = []  # (parent, attribute, new module, layer name, before)
        self.class_swaps = []
        self.skipped = []

    def upsampler(self, name, before, num_feat, scale, num_out_ch=None, conv_kernel_size=3):
        try:
            new = ConverseUpsample(num_feat, scale, num_out_ch, conv_kernel_size, **self.options)
        except ValueError as err:
            raise ConversionError(f'cannot convert {name} ({_describe(before)}): {err}') from err
        like = next(_tensors(before), None) if isinstance(before, nn.Module) else None
        like = like if like is not None else next(_tensors(self.root), None)
        return new if like is None or not like.is_floating_point() else new.to(like.device, like.dtype)

    def set(self, parent, attribute, module, name, before):
        self.changes.append((parent, attribute, module, name, before))

    def apply(self):
        for parent, attribute, module, _, _ in self.changes:
            setattr(parent, attribute, module)
        for module, cls in self.class_swaps:
            module.__class__ = cls


def _tensors(module):
    yield from module.parameters()
    yield from module.buffers()


def _describe(module):
    if isinstance(module, str):
        return module
    if isinstance(module, ConverseUpsample):
        return module.describe()
    return ' '.join(repr(module).split())


# ---------------------------------------------------------------- arch-aware rules (exact BasicSR classes)


def _convert_msrresnet(plan, model, prefix):
    """MSRResNet runs ``lrelu(pixel_shuffle(upconv_i(x)))`` per stage with one shared ``pixel_shuffle``:
    each ``upconv_i`` becomes a ×2 (×3) ConverseUpsample stage and ``pixel_shuffle`` an Identity, so its
    forward computes ConverseUp-SRResNet's ``lrelu(Converse2D(conv(x)))``."""
    stages = [2, 2] if model.upscale == 4 else [model.upscale]
    for i, stage_scale in enumerate(stages, start=1):
        attribute = f'upconv{i}'
        conv = getattr(model, attribute)
        new = plan.upsampler(prefix + attribute, conv, conv.in_channels, stage_scale)
        default_init_weights(new.conv1, 0.1)  # MSRResNet's (and ConverseUpMSRResNet's) init of this conv
        plan.set(model, attribute, new, prefix + attribute, f'{_describe(conv)} + shared pixel_shuffle')
    plan.set(model, 'pixel_shuffle', nn.Identity(), prefix + 'pixel_shuffle', model.pixel_shuffle)
    return {'upconv1', 'upconv2', 'pixel_shuffle'}


def _add_upsamplers_before(plan, model, prefix, converted_class):
    """``conv_up{1,2}(F.interpolate(x, ×2, nearest))`` in forward → ``conv_up{1,2}(upsample{1,2}(x))``."""
    for i in (1, 2):
        conv = getattr(model, f'conv_up{i}')
        before = f'F.interpolate(scale_factor=2, mode=nearest) before conv_up{i} in forward'
        new = plan.upsampler(prefix + f'upsample{i}', before, conv.in_channels, 2, conv_kernel_size=0)
        plan.set(model, f'upsample{i}', new, prefix + f'upsample{i}', before)
    plan.class_swaps.append((model, converted_class))


def _convert_rrdbnet(plan, model, prefix):
    _add_upsamplers_before(plan, model, prefix, ConvertedRRDBNet)
    return set()


def _convert_swinir(plan, model, prefix):
    if model.upsampler == 'nearest+conv':
        _add_upsamplers_before(plan, model, prefix, ConvertedSwinIR)
    elif model.upsampler not in ('pixelshuffle', 'pixelshuffledirect'):  # those: `upsample` by the generic rule
        raise ConversionError(f'{prefix.rstrip(".") or "the model"}: SwinIR(upsampler={model.upsampler!r}) is the '
                              '×1 denoising / JPEG model and has no upsampler to convert')
    return set()


ARCH_RULES = {MSRResNet: _convert_msrresnet, RRDBNet: _convert_rrdbnet, SwinIR: _convert_swinir}

# ---------------------------------------------------------------- the generic rule


def _conv_kernel(conv, name):
    """The kernel size of a stride-1, same-size, ungrouped Conv2d (what ConverseUpsample's convs are)."""
    k = conv.kernel_size[0]
    if (conv.kernel_size != (k, k) or k % 2 == 0 or conv.stride != (1, 1) or conv.dilation != (1, 1) or conv.groups != 1
            or conv.padding not in ((k // 2, k // 2), 'same')):
        raise ConversionError(f'cannot convert {name} ({_describe(conv)}): the conv before a PixelShuffle must be '
                              'square, odd-sized, stride 1, ungrouped and keep the size (padding k // 2)')
    return k


def _is_shuffle_sequence(module):
    items = list(module.children()) if isinstance(module, nn.Sequential) else []
    return (len(items) >= 2 and len(items) % 2 == 0 and all(isinstance(m, nn.Conv2d) for m in items[0::2])
            and all(isinstance(m, nn.PixelShuffle) for m in items[1::2]))


def _from_shuffle_sequence(plan, seq, name):
    convs, shuffles = list(seq.children())[0::2], list(seq.children())[1::2]
    scale = math.prod(s.upscale_factor for s in shuffles)
    num_out_ch = convs[-1].out_channels // shuffles[-1].upscale_factor**2
    return plan.upsampler(name, seq, convs[0].in_channels, scale, num_out_ch, _conv_kernel(convs[0], name))


def _from_conv_transpose(plan, layer, name):
    stride = layer.stride[0]
    if layer.stride == (1, 1):
        plan.skipped.append((name, 'ConvTranspose2d of stride 1: a convolution, not an upsampler'))
        return None
    growth = [
        layer.dilation[a] * (layer.kernel_size[a] - 1) + layer.output_padding[a] + 1 - 2 * layer.padding[a]
        for a in (0, 1)
    ]
    if layer.stride != (stride, stride) or growth != [stride, stride]:
        raise ConversionError(f'cannot convert {name} ({_describe(layer)}): its output is not H·s × W·s for one '
                              f'integer s (stride {layer.stride}, (H-1)·s + {growth[0]} rows); ConverseUpsample '
                              'scales both axes by s exactly')
    if layer.groups == 1:
        conv_kernel_size = 1
    elif layer.groups == layer.in_channels == layer.out_channels:
        conv_kernel_size = 0  # depthwise: the paper's ConvT baseline, replaced by a bare Converse2D
    else:
        raise ConversionError(f'cannot convert {name} ({_describe(layer)}): grouped ({layer.groups} groups) but not '
                              'depthwise; only groups=1 or groups=in_channels=out_channels convert')
    return plan.upsampler(name, layer, layer.in_channels, stride, layer.out_channels, conv_kernel_size)


def _neighbour_channels(siblings, index):
    """Channels of ``siblings[index]`` (an nn.Upsample in an nn.Sequential): the next layer's
    ``in_channels`` or the previous layer's ``out_channels``, looking through channel-preserving layers."""
    for step, attribute in ((1, 'in_channels'), (-1, 'out_channels')):
        i = index + step
        while 0 <= i < len(siblings) and isinstance(siblings[i], _CHANNEL_PRESERVING):
            i += step
        if 0 <= i < len(siblings) and isinstance(getattr(siblings[i], attribute, None), int):
            return getattr(siblings[i], attribute)
    return None


def _exclude_hint(plan, name, joint):
    """The end of a message about layer ``name`` that cannot convert: ``exclude=[name]`` when the model has
    another upsampler to convert, else that it is the only one (excluding it would leave nothing to convert)."""
    kinds = (nn.PixelShuffle, nn.Upsample, nn.ConvTranspose2d)
    others = [
        n for n, m in plan.root.named_modules()
        if isinstance(m, kinds) and n != name and n not in plan.exclude and not n.startswith(name + '.')
    ]
    if others or any(type(m) in ARCH_RULES for m in plan.root.modules()):
        return f'{joint} exclude=[{name!r}] leaves it alone'
    return (f'; it is the only upsampler of {type(plan.root).__name__}, so excluding it leaves nothing to convert: '
            'this arch is not supported by the generic rules (an arch rule in converse_basicsr/nn/convert.py '
            'ARCH_RULES would be needed)')


def _from_upsample(plan, layer, name, siblings, index):
    factors = layer.scale_factor if isinstance(layer.scale_factor, tuple) else (layer.scale_factor, ) * 2
    if layer.size is not None or len(set(factors)) != 1 or float(factors[0]) != int(factors[0]):
        raise ConversionError(f'cannot convert {name} ({_describe(layer)}): only one integer scale_factor '
                              '(no size) converts')
    channels = plan.channels.get(name) or _neighbour_channels(siblings, index)
    if channels is None:
        raise ConversionError(f'cannot convert {name} ({_describe(layer)}): its channel count is unknown; pass '
                              f'example_input=... (one forward reads it){_exclude_hint(plan, name, " or")}')
    return plan.upsampler(name, layer, channels, int(factors[0]), conv_kernel_size=0)


def _walk(plan, module, prefix):
    rule = ARCH_RULES.get(type(module))
    done = set(rule(plan, module, prefix)) if rule is not None else set()
    items = list(module.named_children())
    names, children = [n for n, _ in items], [c for _, c in items]
    in_sequence = isinstance(module, nn.Sequential)
    for i, (attribute, child) in enumerate(zip(names, children)):
        name = prefix + attribute
        if attribute in done or isinstance(child, (ConverseUpsample, Converse2D)):
            continue
        if name in plan.exclude:
            plan.skipped.append((name, 'excluded'))
            continue
        following = children[i + 1] if in_sequence and i + 1 < len(children) else None
        if _is_shuffle_sequence(child):
            plan.set(module, attribute, _from_shuffle_sequence(plan, child, name), name, child)
        elif (isinstance(child, nn.Conv2d) and isinstance(following, nn.PixelShuffle)
              and prefix + names[i + 1] not in plan.exclude):
            s = following.upscale_factor
            new = plan.upsampler(name, child, child.in_channels, s, child.out_channels // s**2,
                                 _conv_kernel(child, name))
            plan.set(module, attribute, new, name, f'{_describe(child)} + {_describe(following)}')
            plan.set(module, names[i + 1], nn.Identity(), prefix + names[i + 1], following)
            done.add(names[i + 1])
        elif isinstance(child, nn.PixelShuffle):
            raise ConversionError(f'cannot convert {name} ({_describe(child)}): the generic rule converts a '
                                  'PixelShuffle only right after a Conv2d in the same nn.Sequential (a shuffle used '
                                  f'inside forward needs an arch rule){_exclude_hint(plan, name, ";")}')
        elif isinstance(child, nn.ConvTranspose2d):
            new = _from_conv_transpose(plan, child, name)
            if new is not None:
                plan.set(module, attribute, new, name, child)
        elif isinstance(child, nn.Upsample):
            plan.set(module, attribute, _from_upsample(plan, child, name, children if in_sequence else (), i), name,
                     child)
        else:
            _walk(plan, child, name + '.')


def _observed_channels(model, example_input):
    """``{layer name: input channels}`` of the model's nn.Upsample layers, from one forward of ``example_input``."""
    seen, hooks = {}, []

    def record(name, args):  # returns None: a pre-hook's return value would replace the layer's input
        seen.setdefault(name, args[0].shape[1])

    for name, module in model.named_modules():
        if isinstance(module, nn.Upsample):
            hooks.append(module.register_forward_pre_hook(lambda _, args, name=name: record(name, args)))
    modes = [(m, m.training) for m in model.modules()]
    model.eval()  # no BatchNorm statistics or dropout touched by the probe
    try:
        with torch.no_grad():
            model(*example_input) if isinstance(example_input, tuple) else model(example_input)
    finally:
        for hook in hooks:
            hook.remove()
        for module, training in modes:
            module.training = training
    return seen


def _count(model):
    return sum(p.numel() for p in model.parameters())


def convert_upsamplers(model, kernel_size=None, padding=2, padding_mode='replicate', eps=1e-3, example_input=None,
                       exclude=(), inplace=False):
    """Replace the upsamplers of ``model`` by ``ConverseUpsample`` (see the module docstring for the rules).

    Args:
        model (nn.Module): The network; converted in a copy unless ``inplace``.
        kernel_size, padding, padding_mode, eps: The Converse2D settings of every new upsampler
            (defaults: the paper's upsampler, kernel size = stage scale, 2, ``replicate``, 1e-3).
        example_input (Tensor | tuple | None): One input (or argument tuple) for a forward that reads the
            channel count of ``nn.Upsample`` layers the neighbours do not tell.
        exclude (iterable of str): Layer names (as in ``named_modules``) to leave alone.
        inplace (bool): Convert ``model`` itself. Either way nothing changes when a layer cannot convert.

    Returns:
        (nn.Module, ConversionReport): the converted model (its ``conversion_report`` attribute holds the
        report too) and the report.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f'model must be an nn.Module, got {type(model).__name__}')
    options = dict(kernel_size=kernel_size, padding=padding, padding_mode=padding_mode, eps=eps)
    ConverseUpsample(1, 2, conv_kernel_size=0, **options)  # a bad setting fails here, naming the argument
    exclude = set([exclude] if isinstance(exclude, str) else exclude)
    unknown = exclude - {name for name, _ in model.named_modules()}
    if unknown:
        raise ConversionError(f'exclude names no layer of {type(model).__name__}: {sorted(unknown)}')
    if not inplace:
        model = copy.deepcopy(model)
    channels = _observed_channels(model, example_input) if example_input is not None else {}
    model_name, keys_before, params_before = type(model).__name__, list(model.state_dict()), _count(model)
    plan = _Plan(model, options, channels, exclude)
    _walk(plan, model, '')
    if not plan.changes:
        raise ConversionError(f'{type(model).__name__}: found no upsampler to convert (nn.PixelShuffle after a '
                              'Conv2d, nn.Upsample, nn.ConvTranspose2d, or a BasicSR arch with an upsampler); '
                              'F.interpolate calls inside forward are not visible to the converter')
    plan.apply()
    keys_after = list(model.state_dict())
    before, after = set(keys_before), set(keys_after)
    report = ConversionReport(
        model=model_name, replaced=[
            (name, _describe(before), _describe(new)) for _, _, new, name, before in plan.changes
        ], skipped=plan.skipped, params_before=params_before, params_after=_count(model),
        new_keys=[k for k in keys_after if k not in before], removed_keys=[k for k in keys_before if k not in after])
    model.conversion_report = report
    return model, report
