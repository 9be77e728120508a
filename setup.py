"""Packaging of converse-basicsr.

The version is read from ``converse_basicsr/version.py`` without importing the package. The shipped
option files live in the repository's top-level ``options/`` (the README's ``-opt options/...``
commands) and are installed as ``converse_basicsr/options/`` so that ``--config NAME``
(``converse_basicsr/configs.py``) finds them after a non-editable install too.
"""
import os
from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


def read_version():
    namespace = {}
    with open(os.path.join(HERE, 'converse_basicsr', 'version.py'), encoding='utf-8') as f:
        exec(f.read(), namespace)
    return namespace['__version__']


with open(os.path.join(HERE, 'README.md'), encoding='utf-8') as f:
    long_description = f.read()

CONSOLE_SCRIPTS = [
    'converse-train=converse_basicsr.train:main',
    'converse-test=converse_basicsr.test:main',
    'converse-restore=converse_basicsr.restore:main',
    'converse-demo=converse_basicsr.demo:main',
    'converse-compare=converse_basicsr.compare:main',
    'converse-export=converse_basicsr.export.cli:main',
]

setup(
    name='converse-basicsr',
    version=read_version(),
    description='Reverse convolution (Converse2D, ICCV 2025) and its restoration models for BasicSR',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(include=['converse_basicsr', 'converse_basicsr.*']) + ['converse_basicsr.options'],
    package_dir={'converse_basicsr.options': 'options'},
    package_data={'converse_basicsr.options': ['**/*.yml']},
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.5',  # weights_only loads with safe_globals (training states, converse_basicsr.training.checkpoints)
        'torchvision',
        'basicsr==1.4.2',
        'numpy',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'scipy',
        'scikit-image',
        'tqdm',
        'spandrel==0.4.2',  # load any public checkpoint by path; ours inside spandrel (docs/spandrel.md)
        'safetensors==0.8.0',
    ],
    extras_require={
        # only converse_basicsr/mm_registry.py uses mmengine
        'mmengine': ['mmengine'],
        # converse-export, converse-restore --onnx, .onnx models in converse-compare (converse_basicsr/export/)
        'export': ['onnx==1.23.2', 'onnxruntime==1.32.0', 'onnxscript==0.7.2'],
        # the linters are pinned: their output (and so `make test`'s lint step) changes between versions
        'test': ['pytest>=7', 'hypothesis==6.170.27', 'flake8==7.5.0', 'isort==9.0.2', 'yapf==0.43.0'],
    },
    entry_points={'console_scripts': CONSOLE_SCRIPTS},
    license='Apache-2.0',
    license_files=['LICENSE'],
)
