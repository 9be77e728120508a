"""converse_basicsr.utils.runtime: freed memory stays in the heap, so a new activation costs no page faults."""
import os
import subprocess
import sys

import pytest

import converse_basicsr.utils.runtime

PROBE = r'''
import importlib.util, resource, sys, torch
spec = importlib.util.spec_from_file_location('runtime', sys.argv[2])  # the module alone, without basicsr
runtime = importlib.util.module_from_spec(spec)
spec.loader.exec_module(runtime)
applied = runtime.retain_freed_memory() if sys.argv[1] == 'on' else False
faults = []
for _ in range(16):  # like a model's activations: 64 MiB (above glibc's largest mmap threshold) made and freed
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    t = torch.ones(2 ** 24)
    faults.append(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
    del t
print(applied, min(faults[-8:]))  # once the heap has grown to fit the pattern
'''


def probe(mode, **env):
    out = subprocess.run([sys.executable, '-c', PROBE, mode, converse_basicsr.utils.runtime.__file__],
                         capture_output=True, text=True, check=True, env={**os.environ, **env}).stdout.split()
    return out[0] == 'True', int(out[1])


@pytest.mark.skipif(not sys.platform.startswith('linux'), reason='mallopt is glibc (Linux) only')
def test_retained_memory_is_reused_without_page_faults():
    applied, faults_retained = probe('on')
    _, faults_default = probe('off')
    assert applied
    pages = 2**26 // 4096
    assert faults_default > pages // 2  # glibc's default: a fresh mapping each time, every page faulted in again
    assert faults_retained < pages // 20


def test_environment_variable_turns_it_off():
    applied, _ = probe('on', CONVERSE_RETAIN_FREED_MEMORY='0')
    assert not applied
