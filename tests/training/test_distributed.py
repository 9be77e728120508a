"""Distributed training on the CPU: two processes, gloo backend, BasicSR's pytorch and slurm launchers.

One training step from the same initial weights (``pretrain_network_g``): both ranks must end with
identical gradients and weights, and the weights equal within 1e-6 to a single-process step on the
union of their batches. Adam's first step, ``lr·g/(|g|+eps)``, is blind to a wrong gradient scale, so
the averaged gradients are compared too (within 1e-4 of the largest: the float32 rounding of the
Converse-USRNet FFT solves reaches ~2e-5 relative). The pytorch launcher runs
``torchrun --nproc_per_node 2`` through the real entry point; the slurm launcher runs the same
worker as two plain processes with ``SLURM_*`` variables and a stand-in ``scontrol``. After the
pipeline, the pytorch workers also take one DDP step with every Converse arch (and the SR
baselines), checked the same way, so each arch is known to work under DDP.
"""
import os
import socket
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import pytest
import torch
import yaml

from converse_basicsr import train  # first: compat fixes and registries

# isort: split
import basicsr.train
from basicsr.models import build_model

# name: (network_g, model_type, lq shape, gt shape, with kernel)
ARCHS = {
    'ConverseDnCNN': ({'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 8,
                       'num_block': 1}, 'SRModel', (4, 1, 12, 12), (4, 1, 12, 12), False),
    'ConverseMSRResNet': ({'type': 'ConverseMSRResNet', 'num_feat': 8,
                           'num_block': 1}, 'SRModel', (4, 3, 6, 6), (4, 3, 24, 24), False),
    'ConvMSRResNet': ({'type': 'ConverseMSRResNet', 'num_feat': 8, 'num_block': 1,
                       'operator': 'conv'}, 'SRModel', (4, 3, 6, 6), (4, 3, 24, 24), False),
    'ConvTMSRResNet': ({'type': 'ConverseMSRResNet', 'num_feat': 8, 'num_block': 1,
                        'operator': 'convtranspose'}, 'SRModel', (4, 3, 6, 6), (4, 3, 24, 24), False),
    'ConverseUpMSRResNet': ({'type': 'ConverseUpMSRResNet', 'num_feat': 8,
                             'num_block': 1}, 'SRModel', (4, 3, 6, 6), (4, 3, 24, 24), False),
    'ConverseNet': ({'type': 'ConverseNet', 'num_feat': 8, 'num_block': 1,
                     'num_iter': 2}, 'SRModel', (4, 3, 12, 12), (4, 3, 12, 12), False),
    'ConverseUSRNet': ({'type': 'ConverseUSRNet', 'num_feat': 8, 'num_block': 1,
                        'num_iter': 2}, 'KernelSRModel', (4, 3, 12, 12), (4, 3, 12, 12), True),
}

WORKER = textwrap.dedent('''
    """One rank: the training entry point, then one DDP step per arch (pytorch launcher only)."""
    import json, os, sys
    import torch
    import torch.distributed as dist
    from converse_basicsr import train  # first: compat fixes and registries
    import basicsr.train
    from basicsr.models import build_model

    out = os.environ['CONVERSE_TEST_OUT']
    built = {}
    build = basicsr.train.build_model
    basicsr.train.build_model = lambda opt: built.setdefault('model', build(opt))
    train.main()
    rank, world = dist.get_rank(), dist.get_world_size()
    model = built['model']
    launcher = sys.argv[sys.argv.index('--launcher') + 1]
    def snapshot(m):
        net = m.get_bare_model(m.net_g)
        return {'weights': net.state_dict(), 'grads': {k: p.grad for k, p in net.named_parameters()}}

    torch.save(snapshot(model), os.path.join(out, f'{launcher}_rank{rank}.pth'))
    if launcher == 'pytorch':
        for name, spec in json.load(open(os.path.join(out, 'archs.json'))).items():
            opt = dict(spec['opt'], dist=True, rank=rank, world_size=world)
            step = build_model(opt)
            batch = torch.load(os.path.join(out, f'batch_{name}.pt'))
            half = batch['lq'].shape[0] // world
            step.feed_data({k: v[rank * half:(rank + 1) * half] for k, v in batch.items()})
            step.optimize_parameters(1)
            torch.save(snapshot(step), os.path.join(out, f'{name}_rank{rank}.pth'))
    dist.barrier()
    dist.destroy_process_group()
''')


def _free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def _arch_opt(network_g, model_type, init_path):
    return {
        'model_type': model_type,
        'num_gpu': 0,
        'dist': False,
        'rank': 0,
        'world_size': 1,
        'is_train': True,
        'scale': 1,
        'network_g': network_g,
        'path': {'pretrain_network_g': init_path, 'param_key_g': 'params', 'strict_load_g': True},
        # Adam turns a gradient difference into a weight difference with gain up to lr/eps: 1e5 with the
        # defaults (1e-3, 1e-8), which lifts the float32 rounding of gradients that cancel to ~0 (alpha-gated
        # branches, the kernel net; ~1e-5 relative in Converse-USRNet) beyond 1e-6. lr 1e-4, eps 1e-3: gain 0.1,
        # while a step still moves the weights by up to 1e-4, so a wrong gradient would show.
        'train': {
            'ema_decay': 0,
            'optim_g': {'type': 'Adam', 'lr': 1e-4, 'weight_decay': 0, 'betas': [0.9, 0.99],
                        'eps': 1e-3}, 'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5},
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        }
    }


def _pipeline_options(name, root, init_path, batch, port):
    return {
        'name': name,
        'model_type': 'SRModel',
        'scale': 1,
        'num_gpu': 0,
        'manual_seed': 3,
        'datasets': {
            'train': {
                'name': 'pairs',
                'type': 'PairedImageDataset',
                'dataroot_gt': str(root / 'gt'),
                'dataroot_lq': str(root / 'lq'),
                'io_backend': {'type': 'disk'},
                'gt_size': 16,  # = image size: no
                'use_hflip': False,
                'use_rot': False,
                'num_worker_per_gpu': 0,  # random crop, deterministic batches
                'batch_size_per_gpu': batch,
                'dataset_enlarge_ratio': 1
            }
        },
        'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': 3, 'num_feat': 8, 'num_block': 2},
        'path': {'pretrain_network_g': str(init_path), 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 1e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [100], 'gamma': 0.5}, 'total_iter': 1, 'warmup_iter': -1,
            'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': 100, 'use_tb_logger': False},
        'dist_params': {'backend': 'nccl', 'port': port},
    }


def _snapshot(model):
    net = model.get_bare_model(model.net_g)
    return {
        'weights': {k: v.clone()
                    for k, v in net.state_dict().items()},
        'grads': {k: p.grad.clone()
                  for k, p in net.named_parameters()}
    }


def _compare(rank0, rank1, reference, what):
    """Ranks identical; weights within 1e-6 and gradients within 1e-4·max|g| of the reference."""
    for part in ('weights', 'grads'):
        assert rank0[part].keys() == rank1[part].keys() == reference[part].keys()
        for key in rank0[part]:
            assert torch.equal(rank0[part][key], rank1[part][key]), (what, part, key)
    worst = max((rank0['weights'][k] - reference['weights'][k]).abs().max().item() for k in reference['weights'])
    assert worst <= 1e-6, f'{what}: weights differ from the single-process step by {worst:.3g}'
    for key, grad in reference['grads'].items():
        error = (rank0['grads'][key] - grad).abs().max().item()
        assert error <= 1e-4 * max(grad.abs().max().item(), 1e-6), f'{what}: gradient {key} off by {error:.3g}'
    return worst


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
    """Tiny paired data, initial weights, per-arch batches and the single-process reference steps."""
    root = tmp_path_factory.mktemp('dist')
    rng = np.random.RandomState(0)
    for sub in ('gt', 'lq'):
        (root / sub).mkdir()
    for i in range(4):
        gt = (rng.rand(16, 16, 3) * 255).astype(np.uint8)
        cv2.imwrite(str(root / 'gt' / f'{i}.png'), gt)
        cv2.imwrite(str(root / 'lq' / f'{i}.png'), np.clip(gt + rng.randn(16, 16, 3) * 20, 0, 255).astype(np.uint8))
    torch.manual_seed(0)
    from converse_basicsr.archs.converse_dncnn_arch import ConverseDnCNN

    # BasicSR's checkpoint layout ({'params': ...}): its load_network reads that key (param_key_g defaults to it)
    torch.save({'params': ConverseDnCNN(num_in_ch=3, num_feat=8, num_block=2).state_dict()}, root / 'init_pipeline.pth')

    archs, reference = {}, {}
    for name, (network_g, model_type, lq_shape, gt_shape, with_kernel) in ARCHS.items():
        from basicsr.archs import build_network
        init = str(root / f'init_{name}.pth')
        torch.save({'params': build_network(dict(network_g)).state_dict()}, init)
        batch = {'lq': torch.rand(lq_shape), 'gt': torch.rand(gt_shape)}
        if with_kernel:
            kernel = torch.rand(lq_shape[0], 1, 7, 7)
            batch['kernel'] = kernel / kernel.sum(dim=(-2, -1), keepdim=True)
        torch.save(batch, root / f'batch_{name}.pt')
        opt = _arch_opt(network_g, model_type, init)
        archs[name] = {'opt': opt}
        model = build_model(yaml.safe_load(yaml.dump(opt)))  # a copy: build_model pops keys
        model.feed_data(batch)
        model.optimize_parameters(1)
        reference[name] = _snapshot(model)
    (root / 'archs.json').write_text(__import__('json').dumps(archs))
    (root / 'worker.py').write_text(WORKER)
    return root, reference


def _env(root):
    env = dict(os.environ, CONVERSE_TEST_OUT=str(root), OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    return env


@pytest.fixture(scope='module')
def single_process_step(setup, tmp_path_factory):
    """The reference: the same pipeline, one process, batch 4 (the union of the two ranks' batches)."""
    root, _ = setup
    work = tmp_path_factory.mktemp('single')
    cfg = work / 'single.yml'
    cfg.write_text(yaml.dump(_pipeline_options('single', root, root / 'init_pipeline.pth', 4, _free_port())))
    built = {}
    build = basicsr.train.build_model
    cwd = os.getcwd()
    os.chdir(work)
    basicsr.train.build_model = lambda opt: built.setdefault('model', build(opt))
    try:
        train.main(['-opt', str(cfg)])
    finally:
        os.chdir(cwd)
        basicsr.train.build_model = build
    return _snapshot(built['model'])


@pytest.mark.parametrize('launcher', ['pytorch', 'slurm'])
def test_two_process_step_equals_single_process_step_on_union(setup, single_process_step, launcher, tmp_path):
    root, reference = setup
    port = _free_port()
    cfg = tmp_path / 'dist.yml'
    cfg.write_text(yaml.dump(_pipeline_options(f'dist_{launcher}', root, root / 'init_pipeline.pth', 2, port)))
    worker = [str(root / 'worker.py'), '-opt', str(cfg), '--launcher', launcher]
    env = _env(root)
    if launcher == 'pytorch':
        cmd = [
            sys.executable, '-m', 'torch.distributed.run', '--nproc_per_node', '2', '--master_addr', '127.0.0.1',
            '--master_port',
            str(port)
        ] + worker
        result = subprocess.run(cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=400)
        outputs = [result.stdout + result.stderr]
        codes = [result.returncode]
    else:
        fake_bin = tmp_path / 'bin'
        fake_bin.mkdir()
        (fake_bin / 'scontrol').write_text('#!/bin/sh\necho 127.0.0.1\n')
        (fake_bin / 'scontrol').chmod(0o755)
        env['PATH'] = f'{fake_bin}{os.pathsep}{env["PATH"]}'
        procs = [
            subprocess.Popen([sys.executable] + worker, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                             text=True, env=dict(env, SLURM_PROCID=str(r), SLURM_LOCALID=str(r), SLURM_NTASKS='2',
                                                 SLURM_NODELIST='node0')) for r in range(2)
        ]
        outputs = [p.communicate(timeout=400)[0] for p in procs]
        codes = [p.returncode for p in procs]
    assert codes == [0] * len(codes), '\n'.join(o[-3000:] for o in outputs)
    assert 'World size (gpu number): 2' in ''.join(outputs)

    rank0, rank1 = torch.load(root / f'{launcher}_rank0.pth'), torch.load(root / f'{launcher}_rank1.pth')
    worst = _compare(rank0, rank1, single_process_step, f'{launcher} pipeline')
    initial = torch.load(root / 'init_pipeline.pth')['params']
    assert any(not torch.equal(rank0['weights'][k], initial[k]) for k in initial)
    print(f'\n{launcher} launcher, ConverseDnCNN pipeline: ranks identical; '
          f'max |2-process - 1-process| weight difference {worst:.3g}')

    if launcher == 'pytorch':
        for name in ARCHS:
            got0, got1 = torch.load(root / f'{name}_rank0.pth'), torch.load(root / f'{name}_rank1.pth')
            worst = _compare(got0, got1, reference[name], name)
            print(f'{name}: ranks identical; max |2-process - 1-process| weight difference {worst:.3g}')
