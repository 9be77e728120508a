"""The package's training pipeline: BasicSR's ``train_pipeline`` with checked options and an exact resume.

:func:`train_pipeline` is what ``converse-train`` runs, and the call to use in one's own script in place of
``basicsr.train.train_pipeline`` (it applies :func:`converse_basicsr.training.compat.apply_training_fixes`). Around
BasicSR's loop it adds, for the duration of the call only:

- **checked resume** (``converse_basicsr.training.checkpoints``): the state to resume from is validated; with
  ``--auto_resume`` a bad one is named in the log and the newest good one used, none good means a clean start;
- **exact resume**: basicsr 1.4.2 resumes with fresh random seeds and replays the interrupted epoch from its
  start, so a resumed run trains on other batches, crops and noise than an uninterrupted one. Training states
  hold every rank's random states (``checkpoints.save_training_state``); on resume the train sampler skips the
  batches of the epoch already trained on and the random states are restored where the uninterrupted run
  would have them (before the first new sample, or before the next epoch's loader if the epoch was finished).
  Bit-identical with ``num_worker_per_gpu: 0``; with loader workers their random streams restart.

- **archives that never collide**: a run that starts clean renames an existing experiment folder with a
  timestamp, numbered when two clean starts fall in the same second.
- **files as data**: BasicSR reads the option file with the package's safe YAML loader
  (:func:`converse_basicsr.utils.safe_yaml.basicsr_reads_safely`), states and models load with ``weights_only``,
  and a checkpoint that cannot be saved ends the run (:class:`~converse_basicsr.training.checkpoints.SaveError`,
  exit status 1 from ``converse-train``).

The hand-off from the model (which reads the state) to the sampler (built before it) goes through one
:class:`TrainingRun` object per call, not through module or class attributes.
"""
import argparse
import contextlib
import logging
import os
import sys
from os import path as osp

import basicsr.train
import basicsr.utils.misc
from basicsr.data.data_sampler import EnlargedSampler
from basicsr.utils import get_root_logger, get_time_str
from converse_basicsr.training.basicsr_keys import dataroot_errors
from converse_basicsr.training.checkpoints import (ResumeError, SaveError, load_resume_state, remove_stale_temps,
                                                   set_rng_state)
from converse_basicsr.training.compat import apply_training_fixes
from converse_basicsr.training.option_checks import (OptionError, check_color_channels, check_data, check_options,
                                                     input_file_errors, load_options)
from converse_basicsr.utils.imports import import_user_modules, import_yaml_modules
from converse_basicsr.utils.options import SPECS, CheckedParser, add_import_option, arg, check_writable_dir, config_arg
from converse_basicsr.utils.safe_yaml import basicsr_reads_safely


class ResumableSampler(EnlargedSampler):
    """BasicSR's ``EnlargedSampler`` whose first pass after :meth:`resume_at` continues an interrupted epoch."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.pending_resume = None  # set by resume_at, used by the next __iter__
        self.pending_rng = None  # random states to restore when the next epoch starts

    def resume_at(self, epoch, iteration, batch, rng):
        """Continue after ``iteration`` (trained with ``batch`` samples per step and process) of ``epoch``,
        with this rank's saved random states ``rng`` (or None to keep the seeded streams)."""
        self.pending_resume = {'epoch': epoch, 'iter': iteration, 'batch': batch, 'rng': rng}

    def set_epoch(self, epoch):
        super().set_epoch(epoch)
        if self.pending_rng is not None:  # the interrupted epoch was complete: continue as at its end
            set_rng_state(self.pending_rng)
            self.pending_rng = None

    def __iter__(self):
        indices = list(super().__iter__())
        resume, self.pending_resume = self.pending_resume, None
        if resume is None:
            return iter(indices)
        per_epoch = len(self) // resume['batch']
        done = resume['iter'] - self.epoch * per_epoch  # batches of this epoch trained before the interruption
        if self.epoch != resume['epoch'] or not 0 <= done <= per_epoch:
            get_root_logger().warning(f'Resume: iter {resume["iter"]} is not in epoch {self.epoch} of '
                                      f'{per_epoch} iterations; replaying the epoch from its start.')
            done = 0
        if done == per_epoch:
            self.pending_rng = resume['rng']
            return iter([])
        if resume['rng'] is not None:
            set_rng_state(resume['rng'])
        return iter(indices[done * resume['batch']:])


class TrainingRun:
    """One call of :func:`train_pipeline`: the stand-ins it gives BasicSR's loop and what they share."""

    def __init__(self):
        self.sampler = None
        self.models = []
        self.notes = []  # resume messages, logged once BasicSR's logger has its file

    def make_sampler(self, *args, **kwargs):
        self.sampler = ResumableSampler(*args, **kwargs)
        return self.sampler

    def note(self, message):
        print(message, file=sys.stderr, flush=True)  # BasicSR's logger is not set up yet
        self.notes.append(message)

    def load_resume_state(self, opt):
        remove_stale_temps([opt['path'].get(k) for k in ('models', 'training_states')], self.note)
        return load_resume_state(opt, self.note)

    def build_model(self, opt, build):
        model = build(opt)
        logger = get_root_logger()
        for message in self.notes:  # a skipped state or a clean start is a warning
            logger.log(logging.INFO if 'resuming from' in message else logging.WARNING, message)
        original_resume = model.resume_training

        def resume_training(resume_state):
            original_resume(resume_state)
            self.continue_sampler(model.opt, resume_state)

        model.resume_training = resume_training
        self.models.append(model)
        return model

    def continue_sampler(self, opt, resume_state):
        """Point the train sampler after the state's iteration, with this rank's saved random states."""
        batch = opt['datasets']['train']['batch_size_per_gpu'] * (1 if opt['dist'] else max(opt['num_gpu'], 1))
        rng = resume_state.get('rng')
        if rng is not None and len(rng) != opt['world_size']:
            get_root_logger().warning(f'Resume: the state holds random states of {len(rng)} process(es), this run '
                                      f'has {opt["world_size"]}; random streams restart from the seed.')
            rng = None
        if self.sampler is not None:
            self.sampler.resume_at(resume_state['epoch'], resume_state['iter'], batch,
                                   None if rng is None else rng[opt['rank']])

    @contextlib.contextmanager
    def installed(self):
        """Give BasicSR's ``train_pipeline`` this run's sampler, resume loading, model hook and archive naming;
        undo after."""
        build = basicsr.train.build_model  # read now: a caller may have wrapped it
        replacements = [(basicsr.train, 'EnlargedSampler', self.make_sampler),
                        (basicsr.train, 'load_resume_state', self.load_resume_state),
                        (basicsr.train, 'build_model', lambda opt: self.build_model(opt, build)),
                        (basicsr.train, 'mkdir_and_rename', mkdir_and_rename),
                        (basicsr.utils.misc, 'mkdir_and_rename', mkdir_and_rename)]  # what make_exp_dirs calls
        saved = [(owner, name, getattr(owner, name)) for owner, name, _ in replacements]
        try:
            for owner, name, value in replacements:
                setattr(owner, name, value)
            yield self
        finally:
            for owner, name, value in saved:
                setattr(owner, name, value)
            # Break the model → hook → run → sampler → dataset chain now, not at the next garbage collection:
            # an LMDB environment stays open while its dataset lives, and a second open of it fails.
            for model in self.models:
                model.__dict__.pop('resume_training', None)
            self.models, self.sampler = [], None


def mkdir_and_rename(path):
    """BasicSR's ``mkdir_and_rename`` (an existing ``path`` is renamed ``<path>_archived_<time>`` and a new one
    made), with a numbered suffix when that name exists: runs that start clean twice within a second (a quick
    restart after a kill) would otherwise fail to archive the folder."""
    if osp.exists(path):
        archive = base = f'{path}_archived_{get_time_str()}'
        count = 1
        while osp.exists(archive):
            archive, count = f'{base}_{count}', count + 1
        print(f'Path already exists. Rename it to {archive}', flush=True)
        os.rename(path, archive)
    os.makedirs(path, exist_ok=True)


def train_pipeline(root_path):
    """BasicSR's ``train_pipeline(root_path)`` (options from ``sys.argv``) with the training fixes, checked
    resume and exact resume (see the module docstring)."""
    apply_training_fixes()
    with TrainingRun().installed(), basicsr_reads_safely():
        basicsr.train.train_pipeline(root_path)


NOTHING_CHECKED = 3  # --check-data's exit status when none of the file's datasets could be checked
EXIT_STATUS = ('exit status: 0 trained / data good, 1 --check-data found bad images, 2 a bad option file, flag, '
               f'dataroot or resume state, {NOTHING_CHECKED} --check-data could check none of the datasets')
# BasicSR 1.4.2's own flags (basicsr.utils.options.parse_options), for --help only: they are passed on to it.
BASICSR_FLAGS = [
    (('--launcher', ), dict(choices=['none', 'pytorch', 'slurm'], default='none', help='job launcher')),
    (('--auto_resume', ), dict(action='store_true', help='resume from the newest good training state')),
    (('--debug', ), dict(action='store_true', help="BasicSR's debug mode (names the run debug_*, logs often)")),
    (('--local_rank', ), dict(type=int, default=0, help='set by older launchers')),
    (('--force_yml', ), dict(nargs='+', metavar='KEY:SUB=VALUE', help='override option-file values')),
]


def entry_parser():
    """The parser of the package's own flags; ``--help`` lists every flag added to it, then BasicSR's."""
    parser = CheckedParser(prog='converse-train', add_help=False)
    parser.add_argument('-opt', type=arg(SPECS['text']), metavar='PATH', help='the BasicSR option file (YAML)')
    parser.add_argument('--config', type=config_arg('train'),
                        help='a shipped config by name, e.g. denoising/train_ConverseDnCNN_gray_sigma25')
    parser.add_argument(
        '--check-data', action='store_true',
        help='check the option file, decode every image of its datasets once, list the bad ones '
        'and train nothing')
    add_import_option(parser)
    return parser


def print_help(parser, stream=None):
    """``converse-train --help``: the flags of ``parser`` (the package's), then BasicSR's that it passes on."""
    full = argparse.ArgumentParser(
        prog=parser.prog, parents=[parser], epilog=EXIT_STATUS,
        description='Train a model from a BasicSR option file, with checked options '
        "and an exact resume; BasicSR's flags are passed on to its train_pipeline.")
    group = full.add_argument_group("BasicSR's flags")
    for flags, kwargs in BASICSR_FLAGS:
        if not any(flag in full._option_string_actions for flag in flags):
            group.add_argument(*flags, **kwargs)
    full.print_help(stream)


def parse_entry_arguments(argv):
    """Split the package's own arguments (``--config NAME``, ``--check-data``, ``--import MODULE``, imported here)
    from BasicSR's; returns ``(option file or None, check_data, BasicSR's argv)`` with ``--config`` turned into
    ``-opt PATH``, or None after printing ``--help``."""
    parser = entry_parser()
    if any(a in ('-h', '--help') for a in argv):
        print_help(parser)
        return None
    known, rest = parser.parse_known_args(argv)
    import_user_modules(known.imports)  # the user's archs, datasets, models: before the file is checked
    if known.config:
        if known.opt:
            raise OptionError('give -opt PATH or --config NAME, not both')
        known.opt = known.config
    if known.opt and not os.path.isfile(known.opt):
        raise OptionError(f'-opt {known.opt}: no such file')
    return known.opt, known.check_data, (['-opt', known.opt] if known.opt else []) + rest


def run(argv, root_path):
    """What ``converse-train`` does with ``argv`` (its arguments, BasicSR's plus ``--config`` and ``--check-data``):
    check the option file, then either decode all its data (``--check-data``; returns the exit status) or train
    under ``root_path`` with :func:`train_pipeline`. Bad options raise :class:`OptionError` before anything is built."""
    parsed = parse_entry_arguments(argv)
    if parsed is None:  # --help
        return 0
    opt_path, data_only, basicsr_argv = parsed
    if opt_path:  # without -opt, BasicSR's parser prints the usage
        opt = load_options(opt_path)
        import_yaml_modules(opt, opt_path)  # custom_imports: [MODULE, ...]
        check_options(opt, opt_path, is_train=not data_only)  # --check-data trains nothing
        check_color_channels(opt)
        missing = [] if data_only else dataroot_errors(opt) or input_file_errors(opt)  # --check-data lists them
        if missing:
            raise OptionError(f'{opt_path}: ' + '; '.join(missing))
        if not data_only:  # BasicSR creates experiments/<name> there
            check_writable_dir(os.path.join(root_path, 'experiments'), 'the experiments folder')
        if data_only:
            checked, bad, skipped = check_data(opt)
            for where, image, error in bad:
                print(f'bad: {where}: {image}: {error}', file=sys.stderr)
            not_checked = f'; NOT CHECKED: {", ".join(skipped)}' if skipped else ''
            print(f'checked {checked} image(s) of {opt_path}: {len(bad)} bad{not_checked}', file=sys.stderr)
            if bad:
                return 1
            if not checked:
                print(f'converse-train: nothing was checked in {opt_path} (exit status {NOTHING_CHECKED})',
                      file=sys.stderr)
                return NOTHING_CHECKED
            return 0
    elif data_only:
        raise OptionError('--check-data needs -opt PATH or --config NAME')
    saved_argv = sys.argv
    sys.argv = [sys.argv[0]] + basicsr_argv  # BasicSR's parse_options reads sys.argv
    try:
        train_pipeline(os.path.abspath(root_path))
    finally:
        sys.argv = saved_argv
    return 0


def run_command(argv, root_path):
    """:func:`run` as the ``converse-train`` command: a bad option file, resume state or missing file is one
    error line and exit status 2; a checkpoint that could not be saved one line and exit status 1."""
    try:
        return run(argv, root_path)
    except (OptionError, ResumeError, FileNotFoundError) as error:
        print(f'converse-train: error: {error}', file=sys.stderr)
        return 2
    except SaveError as error:
        print(f'converse-train: error: {error}', file=sys.stderr)
        return 1
