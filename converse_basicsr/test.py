"""``python -m converse_basicsr.test -opt FILE`` (or ``converse-test -opt FILE`` / ``--config NAME``): BasicSR's
test pipeline with this package's archs, datasets and models registered.

On top of ``basicsr.test.test_pipeline`` it skips dataset entries marked ``optional: true`` whose
``dataroot_gt`` does not exist (with a warning; a missing non-optional dataroot is an error) and writes
``results/<name>/per_image_<dataset>.csv`` (one row per image: the ``val.metrics``, computed with BasicSR's
metrics from the saved results, ``val.save_img: true``). The work is in :mod:`converse_basicsr.evaluation.protocols`.
Results go under ``results/`` of the current directory; other BasicSR flags (``--force_yml``, ...) pass through.
"""
import sys

import converse_basicsr  # noqa: F401  (registries)
from converse_basicsr.evaluation.protocols import run_test_config
from converse_basicsr.training.compat import apply_training_fixes
from converse_basicsr.training.option_checks import check_option_file
from converse_basicsr.utils.imports import import_user_modules
from converse_basicsr.utils.options import SPECS, CheckedParser, OptionError, add_import_option, arg, config_arg, fail
from converse_basicsr.utils.runtime import retain_freed_memory


def run(argv=None):
    """Run the test config given by ``-opt`` (or ``--config``) in ``argv``; return the per-image CSV paths."""
    parser = CheckedParser(prog='converse-test', description=__doc__.split('\n')[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('-opt', type=arg(SPECS['text']), help='path to the test option YAML file')
    source.add_argument('--config', type=config_arg('test'),
                        help='a shipped test config by name, e.g. test_converse_dncnn_sigma25')
    add_import_option(parser)
    known, rest = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    import_user_modules(known.imports)  # then the file's custom_imports, in check_option_file
    check_option_file(known.opt or known.config)  # keys, kinds, paths: before BasicSR creates results/<name>/
    return run_test_config(known.opt or known.config, rest)


def main(argv=None):
    """Console entry point (``converse-test``): exit status 0 on success, 2 for a bad option file or argument (one
    line naming the file and the key; nothing created)."""
    retain_freed_memory()
    apply_training_fixes()
    try:
        run(argv)
    except (OptionError, FileNotFoundError) as error:
        return fail('converse-test', error)
    return 0


if __name__ == '__main__':
    sys.exit(main())
