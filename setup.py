from setuptools import find_packages, setup

with open('README.md', encoding='utf-8') as f:
    long_description = f.read()

setup(
    name='converse-basicsr',
    version='0.1.0',
    description='Reverse convolution (Converse2D, ICCV 2025) and its restoration models for BasicSR',
    long_description=long_description,
    long_description_content_type='text/markdown',
    packages=find_packages(include=['converse_basicsr', 'converse_basicsr.*']),
    python_requires='>=3.9',
    install_requires=[
        'torch>=2.0',
        'torchvision',
        'basicsr==1.4.2',
        'mmengine',
        'numpy',
        'opencv-python',
        'lmdb',
        'pyyaml',
        'scipy',
        'scikit-image',
        'tqdm',
    ],
    extras_require={'test': ['pytest>=7']},
    entry_points={
        'console_scripts': [
            'converse-train=converse_basicsr.train:main',
            'converse-test=converse_basicsr.test:main',
            'converse-restore=converse_basicsr.restore:main',
        ],
    },
    license='Apache-2.0',
)
