"""Fault injection: a CI-sized training run is killed (SIGKILL) at random points, 20 times, and every
``--auto_resume`` must either continue from a valid state to weights bit-identical to an uninterrupted run, or
say that no valid state exists and start clean — never a traceback.

The kills: inside a checkpoint write (part of the file written; the file complete but not yet renamed; just
after the rename), inside an iteration (before or after its optimizer step), and at a random time. A driver
in a fresh interpreter imports everything once and forks each run, so a run costs its training, not an
import; one uninterrupted reference run is shared by all trials. Each trial kills the first run and, in
half of the trials, the first resumed run too, then lets ``--auto_resume`` finish and compares the weights.
"""
import json
import os
import subprocess
import sys
import textwrap

import cv2
import numpy as np
import yaml

KILLS = 20
SEED = 2026

DRIVER = textwrap.dedent('''
    import io, json, os, random, signal, sys, time, traceback
    import torch
    from converse_basicsr import train
    from basicsr.models.sr_model import SRModel

    torch.set_num_threads(1)
    work, kills, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rng = random.Random(seed)

    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    def arm(plan):
        """In the child: SIGKILL itself at the planned point."""
        kind = plan[0]
        if kind == 'write':  # the n-th checkpoint write (model or state file), at one of three moments
            _, target, moment = plan
            count = {'save': 0, 'replace': 0}
            real_save, real_replace = torch.save, os.replace

            def save(obj, f, *a, **k):
                count['save'] += 1
                if count['save'] == target and moment == 'partial':
                    buffer = io.BytesIO()
                    real_save(obj, buffer)
                    f.write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
                    f.flush()
                    die()
                return real_save(obj, f, *a, **k)

            def replace(src, dst):
                count['replace'] += 1
                if count['replace'] == target and moment == 'before_rename':
                    die()
                real_replace(src, dst)
                if count['replace'] == target and moment == 'after_rename':
                    die()

            torch.save, os.replace = save, replace
        elif kind == 'iter':  # inside iteration k, before or after its optimizer step
            _, target, after = plan
            real = SRModel.optimize_parameters

            def optimize_parameters(self, current_iter):
                if current_iter == target and not after:
                    die()
                real(self, current_iter)
                if current_iter == target and after:
                    die()

            SRModel.optimize_parameters = optimize_parameters

    def run(name, plan=None, resume=False, timeout=None):
        """Fork one training run; returns (exit status or -signal, its output)."""
        log = os.path.join(work, f'{name}.{time.time_ns()}.out')
        pid = os.fork()
        if pid == 0:
            fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
            os.dup2(fd, 1), os.dup2(fd, 2)
            code = 98
            try:
                if plan:
                    arm(plan)
                argv = ['-opt', os.path.join(work, f'{name}.yml')] + (['--auto_resume'] if resume else [])
                code = train.main(argv, root_path=work)
            except BaseException:
                traceback.print_exc()
            sys.stdout.flush(), sys.stderr.flush()
            os._exit(code or 0)
        if timeout is not None:  # a timed kill, unless the run finished first
            deadline = time.time() + timeout
            while time.time() < deadline:
                finished, status = os.waitpid(pid, os.WNOHANG)
                if finished:
                    return os.waitstatus_to_exitcode(status), open(log).read()
                time.sleep(0.005)
            os.kill(pid, signal.SIGKILL)
        _, status = os.waitpid(pid, 0)
        return os.waitstatus_to_exitcode(status), open(log).read()

    def summary(plan, code, out):
        return {'plan': plan, 'code': code, 'traceback': 'Traceback' in out, 'tail': out[-1500:],
                'notes': [line[line.index('Auto resume:'):] for line in out.splitlines() if 'Auto resume:' in line]}

    def weights(name):
        return torch.load(os.path.join(work, 'experiments', name, 'models', 'net_g_latest.pth'))['params']

    start = time.time()
    code, out = run('reference')
    assert code == 0, out
    reference_seconds = time.time() - start
    reference = weights('reference')
    writes, iters = json.load(open(os.path.join(work, 'counts.json')))

    def random_plan():
        kind = rng.choice(['write', 'write', 'iter', 'time'])
        if kind == 'write':
            return ('write', rng.randint(1, writes), rng.choice(['partial', 'before_rename', 'after_rename']))
        if kind == 'iter':
            return ('iter', rng.randint(1, iters), rng.random() < 0.5)
        return ('time', rng.uniform(0.05, 1.0) * reference_seconds)

    trials, done, trial = [], 0, 0
    while done < kills:
        name = f'trial{trial:02d}'
        trial += 1
        with open(os.path.join(work, 'reference.yml')) as f:
            text = f.read().replace('name: reference', f'name: {name}')
        with open(os.path.join(work, f'{name}.yml'), 'w') as f:
            f.write(text)
        runs = []
        for attempt in range(1 if trial % 2 else 2):  # every other trial also kills its first resumed run
            if done == kills:
                break
            plan = random_plan()
            timeout = plan[1] if plan[0] == 'time' else None
            code, out = run(name, None if plan[0] == 'time' else plan, resume=attempt > 0, timeout=timeout)
            runs.append(summary(list(plan), code, out))
            done += code == -signal.SIGKILL  # a planned point the run never reached is not a kill
        code, out = run(name, resume=True)
        got = weights(name) if code == 0 else {}
        identical = got.keys() == reference.keys() and all(torch.equal(got[k], reference[k]) for k in reference)
        runs.append(summary(None, code, out))
        trials.append({'name': name, 'runs': runs, 'identical': identical})

    # A newest state damaged after the fact (a disk error, a copy cut short): skipped by name, the one before used.
    name = 'damaged'
    with open(os.path.join(work, 'reference.yml')) as f:
        text = f.read().replace('name: reference', f'name: {name}')
    with open(os.path.join(work, f'{name}.yml'), 'w') as f:
        f.write(text)
    code, out = run(name, ('iter', iters - 1, True))
    states = os.path.join(work, 'experiments', name, 'training_states')
    newest = max(os.listdir(states), key=lambda n: int(n.split('.')[0]))
    open(os.path.join(states, newest), 'wb').close()
    code, out = run(name, resume=True)
    got = weights(name) if code == 0 else {}
    damaged = summary(newest, code, out)
    damaged['identical'] = got.keys() == reference.keys() and all(torch.equal(got[k], reference[k]) for k in reference)
    logs = [n for n in os.listdir(os.path.join(work, 'experiments', name)) if n.endswith('.log')]
    damaged['log'] = ''.join(open(os.path.join(work, 'experiments', name, n)).read() for n in logs)
    print(json.dumps({'reference_seconds': reference_seconds, 'trials': trials, 'damaged': damaged}))
''')


def _images(folder, count=4, size=12):
    folder.mkdir()
    rng = np.random.RandomState(0)
    for i in range(count):
        img = cv2.resize(rng.rand(3, 3).astype(np.float32), (size, size), interpolation=cv2.INTER_CUBIC)
        cv2.imwrite(str(folder / f'{i}.png'), np.clip(img * 255, 0, 255).astype(np.uint8))
    return str(folder)


def _options(train_root, total_iter=8, checkpoint_freq=2):
    return {
        'name': 'reference',
        'model_type': 'SRModel',
        'scale': 1,
        'num_gpu': 0,
        'manual_seed': 11,
        'datasets': {
            'train': {
                'name': 'tiny', 'type': 'GaussianNoiseDataset', 'dataroot_gt': train_root, 'color': 'gray',
                'sigma_range': [5, 50], 'gt_size': 8, 'use_hflip': True, 'use_rot': True, 'num_worker_per_gpu': 0,
                'batch_size_per_gpu': 2, 'dataset_enlarge_ratio': 1
            }
        },
        'network_g': {'type': 'ConverseDnCNN', 'num_in_ch': 1, 'num_feat': 4, 'num_block': 1},
        'path': {'pretrain_network_g': None, 'strict_load_g': True, 'resume_state': None},
        'train': {
            'ema_decay': 0, 'optim_g': {'type': 'Adam', 'lr': 2.0e-3, 'weight_decay': 0, 'betas': [0.9, 0.99]},
            'scheduler': {'type': 'MultiStepLR', 'milestones': [3, 6], 'gamma': 0.5}, 'total_iter': total_iter,
            'warmup_iter': -1, 'pixel_opt': {'type': 'L1Loss', 'loss_weight': 1.0, 'reduction': 'mean'}
        },
        'logger': {'print_freq': 1, 'save_checkpoint_freq': checkpoint_freq, 'use_tb_logger': False},
    }


def test_kills_at_random_points_resume_bit_identically_or_start_clean(tmp_path):
    train_root = _images(tmp_path / 'images')
    total_iter, freq = 8, 2
    (tmp_path / 'reference.yml').write_text(yaml.dump(_options(train_root, total_iter, freq)))
    writes = 2 * (total_iter // freq) + 1  # model + state per checkpoint, then net_g_latest
    (tmp_path / 'counts.json').write_text(json.dumps([writes, total_iter]))
    (tmp_path / 'driver.py').write_text(DRIVER)
    env = dict(os.environ, OMP_NUM_THREADS='1', CUDA_VISIBLE_DEVICES='')
    result = subprocess.run(
        [sys.executable, str(tmp_path / 'driver.py'),
         str(tmp_path), str(KILLS), str(SEED)], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    killed, kinds, clean_starts, resumes = 0, set(), 0, 0
    for trial in report['trials']:
        *interrupted, final = trial['runs']
        for run in interrupted:
            kinds.add(run['plan'][0] + (f":{run['plan'][2]}" if run['plan'][0] == 'write' else ''))
            killed += run['code'] == -9
            assert run['code'] in (0, -9) and not run['traceback'], run
        assert final['code'] == 0 and not final['traceback'], final
        notes = final['notes']
        clean = 'no valid training state' in notes[-1] and 'starting clean' in notes[-1] if notes else False
        assert notes and ('resuming from' in notes[-1] or clean), final
        clean_starts += 'starting clean' in notes[-1]
        resumes += 'resuming from' in notes[-1]
        assert trial['identical'], f"{trial['name']}: {[r['plan'] for r in trial['runs']]}"
    runs = sum(len(t['runs']) - 1 for t in report['trials'])
    print(f'\n{runs} interrupted runs ({killed} killed before finishing), {len(report["trials"])} trials: '
          f'{resumes} resumed, {clean_starts} started clean; all bit-identical; kinds {sorted(kinds)}')
    assert killed == KILLS

    damaged = report['damaged']  # the newest state emptied: named in the log, the one before resumed from
    assert damaged['code'] == 0 and not damaged['traceback'] and damaged['identical'], damaged
    newest = int(damaged['plan'].split('.')[0])
    assert any('skipping a bad training state' in n and f'{newest}.state does not load' in n
               for n in damaged['notes']), damaged['notes']
    assert 'Auto resume: resuming from' in damaged['notes'][-1] and f'{newest - freq}.state' in damaged['notes'][-1]
    assert 'WARNING: Auto resume: skipping a bad training state' in damaged['log']
    assert resumes and {'write:partial', 'write:before_rename', 'iter'} <= kinds
