"""BasicSR's image recipes with Converse generators, as option dicts, for tests/training/test_recipes.py.

:func:`recipe` writes the option file of one (model_type, generator) pair as a BasicSR user would (BasicSR's
datasets, losses, discriminators; Real-ESRGAN's degradation keys from BasicSR's ``train_realesrgan_x4plus.yml``),
with tiny widths and two iterations. :func:`write_data` makes the images it reads; :func:`write_random_vgg19`
the VGG19 weights file BasicSR's perceptual loss loads instead of downloading.
"""
import cv2
import numpy as np
import torch

from tests.helpers.training import smooth_image

GT_SIZE = 128  # the generated training images (VGGStyleDiscriminator needs 128² patches)
VAL_SIZE = 48  # the one validation image
KERNELS = ['iso', 'aniso', 'generalized_iso', 'generalized_aniso', 'plateau_iso', 'plateau_aniso']
# BasicSR's options/train/RealESRGAN/train_realesrgan_x4plus.yml: the dataset's first/second blur and final sinc
REAL_DATASET = {
    'blur_kernel_size': 21, 'kernel_list': KERNELS, 'kernel_prob': [0.45, 0.25, 0.12, 0.03, 0.12, 0.03],
    'sinc_prob': 0.1, 'blur_sigma': [0.2, 3], 'betag_range': [0.5, 4], 'betap_range': [1, 2], 'blur_kernel_size2': 21,
    'kernel_list2': KERNELS, 'kernel_prob2': [0.45, 0.25, 0.12, 0.03, 0.12,
                                              0.03], 'sinc_prob2': 0.1, 'blur_sigma2': [0.2, 1.5],
    'betag_range2': [0.5, 4], 'betap_range2': [1, 2], 'final_sinc_prob': 0.8, 'use_hflip': True, 'use_rot': False
}
# ... and the model's degradations (top-level keys)
REAL_MODEL = {
    'resize_prob': [0.2, 0.7, 0.1], 'resize_range': [0.15, 1.5], 'gaussian_noise_prob': 0.5, 'noise_range': [1, 30],
    'poisson_scale_range': [0.05, 3], 'gray_noise_prob': 0.4, 'jpeg_range': [30, 95], 'second_blur_prob': 0.8,
    'resize_prob2': [0.3, 0.4, 0.3], 'resize_range2': [0.3, 1.2], 'gaussian_noise_prob2': 0.5, 'noise_range2': [1, 25],
    'poisson_scale_range2': [0.05, 2.5], 'gray_noise_prob2': 0.4, 'jpeg_range2': [30, 95], 'queue_size': 4
}
GAN_MODELS = ('SRGANModel', 'ESRGANModel', 'RealESRGANModel')
MODEL_TYPES = ('SRModel', 'SRGANModel', 'ESRGANModel', 'RealESRNetModel', 'RealESRGANModel', 'SwinIRModel')
_RRDB = {'type': 'RRDBNet', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'num_grow_ch': 4}
# The generators: every registered Converse arch that BasicSR's SR models can call as net_g(lq) (not ConverseUSRNet,
# which takes a blur kernel: KernelSRModel), ConverseUp on three BasicSR archs, and a SpandrelNet file: (opt, scale).
GENERATORS = {
    'ConverseDnCNN': ({'type': 'ConverseDnCNN', 'num_in_ch': 3, 'num_feat': 8, 'num_block': 1}, 1),
    'ConverseNet': ({'type': 'ConverseNet', 'num_feat': 8, 'num_block': 1, 'num_iter': 1}, 1),
    'ConverseMSRResNet': ({'type': 'ConverseMSRResNet', 'num_feat': 8, 'num_block': 1}, 4),
    'ConverseUpMSRResNet': ({'type': 'ConverseUpMSRResNet', 'num_feat': 8, 'num_block': 1, 'upscale': 2}, 2),
    'ConverseUp[RRDBNet]': ({'type': 'ConverseUp', 'base': dict(_RRDB, scale=4)}, 4),
    'ConverseUp[EDSR]': ({
        'type': 'ConverseUp',
        'base': {'type': 'EDSR', 'num_in_ch': 3, 'num_out_ch': 3, 'num_feat': 8, 'num_block': 1, 'upscale': 2}
    }, 2),
    'ConverseUp[SwinIR]': ({
        'type': 'ConverseUp', 'base': {
            'type': 'SwinIR', 'in_chans': 3, 'embed_dim': 12, 'depths': [1], 'num_heads': [2], 'window_size': 4,
            'img_size': 16, 'upscale': 2, 'upsampler': 'pixelshuffle'
        }
    }, 2),
    'SpandrelNet': ({'type': 'SpandrelNet', 'path': '{spandrel_file}'}, 4),
}


def write_data(root):
    """Training (two) and validation (one, smaller) ground-truth images, their bicubic ×1/×2/×4 inputs and a meta_info
    list; returns the paths by role: ``gt``, ``lq`` (by scale), ``val_gt``, ``val_lq``, ``meta``, ``spandrel``."""
    rng = np.random.RandomState(0)
    paths = {}
    for role, count, size in (('', 2, GT_SIZE), ('val_', 1, VAL_SIZE)):
        gt = root / f'{role}gt'
        gt.mkdir()
        lq = {scale: root / f'{role}lq_x{scale}' for scale in (1, 2, 4)}
        for folder in lq.values():
            folder.mkdir()
        for i in range(count):
            image = smooth_image(rng, size)
            cv2.imwrite(str(gt / f'{i}.png'), image)
            for scale, folder in lq.items():
                cv2.imwrite(
                    str(folder / f'{i}.png'),
                    cv2.resize(image, (size // scale, size // scale), interpolation=cv2.INTER_CUBIC))
        paths.update({f'{role}gt': str(gt), f'{role}lq': {k: str(v) for k, v in lq.items()}})
    meta = root / 'meta_info.txt'
    meta.write_text(''.join(f'{i}.png\n' for i in range(2)))
    spandrel_file = root / 'converse_srresnet_x4.pth'  # a Converse checkpoint that spandrel detects
    from basicsr.utils.registry import ARCH_REGISTRY
    torch.manual_seed(0)
    torch.save(ARCH_REGISTRY.get('ConverseMSRResNet')(num_feat=8, num_block=1).state_dict(), spandrel_file)
    return dict(paths, meta=str(meta), spandrel=str(spandrel_file))


def write_random_vgg19(path):
    """A VGG19 state dict with random weights (torchvision's keys and shapes), where BasicSR's VGGFeatureExtractor
    loads it from instead of downloading. Half precision: the weights only need to be finite, and the file half
    as large (load_state_dict converts)."""
    from torchvision.models import vgg19
    gen = torch.Generator().manual_seed(0)
    with torch.device('meta'):
        shapes = {k: v.shape for k, v in vgg19().state_dict().items()}
    state = {k: (torch.randn(shape, generator=gen) * 0.05).half() for k, shape in shapes.items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path)
    return path


def recipe(name, model_type, generator, data, network_d=None, perceptual=False, optimizer='Adam', degrade=True):
    """The option dict of ``model_type`` with the generator ``generator`` (a key of :data:`GENERATORS`). For the
    Real-ESR models ``degrade=False`` is BasicSR's ``high_order_degradation: false`` (paired data, no synthesis)."""
    network_g, scale = GENERATORS[generator]
    network_g = {k: v.format(spandrel_file=data['spandrel']) if isinstance(v, str) else v for k, v in network_g.items()}
    gan, real = model_type in GAN_MODELS, model_type.startswith('RealESR')
    if gan and network_d is None:
        network_d = {'type': 'UNetDiscriminatorSN', 'num_in_ch': 3, 'num_feat': 4}
    gt_size = (network_d or {}).get('input_size', 32)
    loader = {'batch_size_per_gpu': 2, 'num_worker_per_gpu': 0, 'dataset_enlarge_ratio': 1, 'prefetch_mode': None}
    if real and degrade:
        train_set = dict(name='train', type='RealESRGANDataset', dataroot_gt=data['gt'], meta_info=data['meta'],
                         io_backend={'type': 'disk'}, gt_size=gt_size, **REAL_DATASET, **loader)
    else:
        train_set = dict(name='train', type='PairedImageDataset', dataroot_gt=data['gt'], dataroot_lq=data['lq'][scale],
                         io_backend={'type': 'disk'}, gt_size=gt_size, use_hflip=True, use_rot=True, **loader)
    train = {
        'ema_decay': 0.999 if gan else 0, 'optim_g': {'type': optimizer, 'lr': 1e-4},
        'scheduler': {'type': 'MultiStepLR', 'milestones': [10], 'gamma': 0.5}, 'total_iter': 2, 'warmup_iter': -1,
        'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0}, 'perceptual_opt': {
            'type': 'PerceptualLoss', 'layer_weights': {'conv2_2': 1}, 'vgg_type': 'vgg19', 'perceptual_weight': 1.0,
            'style_weight': 0
        } if perceptual else None
    }
    opt = {
        'name': name, 'model_type': model_type, 'scale': scale, 'num_gpu': 0, 'manual_seed': 0, 'datasets': {
            'train': train_set, 'val': {
                'name': 'val', 'type': 'PairedImageDataset', 'dataroot_gt': data['val_gt'],
                'dataroot_lq': data['val_lq'][scale], 'io_backend': {'type': 'disk'}
            }
        }, 'network_g': network_g, 'path': {'pretrain_network_g': None, 'resume_state': None}, 'train': train, 'val': {
            'val_freq': 10**9, 'save_img': False, 'metrics': {'psnr': {'type': 'calculate_psnr', 'crop_border': scale}}
        }, 'logger': {'print_freq': 1, 'save_checkpoint_freq': 1, 'use_tb_logger': False}
    }
    if gan:
        opt['network_d'] = network_d
        train.update(
            optim_d={'type': 'Adam', 'lr': 1e-4}, net_d_iters=1, net_d_init_iters=0, gan_opt={
                'type': 'GANLoss', 'gan_type': 'vanilla', 'real_label_val': 1.0, 'fake_label_val': 0.0,
                'loss_weight': 0.1
            })
    if real and not degrade:
        opt['high_order_degradation'] = False
    elif real:
        opt.update(REAL_MODEL, gt_size=gt_size)
        opt.update({'gt_usm': True} if model_type ==
                   'RealESRNetModel' else {'l1_gt_usm': True, 'percep_gt_usm': True, 'gan_gt_usm': False})
    return opt
