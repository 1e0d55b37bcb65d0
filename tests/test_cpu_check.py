"""A core compiled with -march=native on another machine must be refused with an ImportError
naming what this CPU lacks, before it is loaded (loading it would kill Python with SIGILL)."""

import os
import subprocess
import sys

import pytest

from gdcore import _cpu_check

from conftest import subprocess_env


def write_target(tmp_path, flags, features):
    path = tmp_path / "_core_target.txt"
    path.write_text(flags + "\n" + " ".join(features) + "\n")
    return str(path)


def test_a_core_needing_features_this_cpu_lacks_is_refused(tmp_path):
    target = _cpu_check.core_target(write_target(tmp_path, "-O3 -march=native",
                                                 ["avx2", "avx512f", "fma"]))
    with pytest.raises(ImportError) as caught:
        _cpu_check.check_core_target(target, present={"sse2", "avx", "avx2", "fma"})
    message = str(caught.value)
    assert "avx512f" in message and "avx2," not in message
    assert "-march=native" in message and "GDCORE_PORTABLE=1" in message


def test_a_core_this_cpu_can_run_is_accepted(tmp_path):
    target = _cpu_check.core_target(write_target(tmp_path, "-O3 -march=native", ["avx2"]))
    _cpu_check.check_core_target(target, present={"avx", "avx2"})


def test_nothing_is_checked_where_the_build_or_the_cpu_does_not_say(tmp_path):
    # a portable build: no features; an older build: no file; no /proc/cpuinfo
    portable = _cpu_check.core_target(write_target(tmp_path, "-O3", []))
    _cpu_check.check_core_target(portable, present=set())
    assert _cpu_check.core_target(str(tmp_path / "missing.txt")) is None
    assert _cpu_check.cpu_features(str(tmp_path / "missing-cpuinfo")) is None


def test_cpuinfo_flags_are_read(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "flags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n")
    assert _cpu_check.cpu_features(str(cpuinfo)) == {"fpu", "sse2", "avx2", "avx512f"}


@pytest.mark.skipif(not os.path.exists(_cpu_check.CORE_TARGET),
                    reason="this core's build wrote no target (built before the check)")
def test_this_build_says_what_it_needs_and_this_cpu_has_it():
    flags, required = _cpu_check.core_target()
    present = _cpu_check.cpu_features()
    if "-march=native" in flags.split() and sys.platform.startswith("linux"):
        assert required, "a native x86 build uses more than the default target"
    if present is not None:
        assert required <= present


def test_import_refuses_before_loading_the_core(tmp_path):
    """gdcore's import runs the check before `from . import _core`: a target naming a
    feature no CPU has makes the import fail with the message, not with SIGILL."""
    # the check's module loaded on its own (importing it as gdcore._cpu_check would run
    # gdcore's __init__ first), pointed at a made-up target, then gdcore imported
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('gdcore._cpu_check', "
            + repr(_cpu_check.__file__) + ")\n"
            "c = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(c)\n"
            "sys.modules['gdcore._cpu_check'] = c\n"
            "c.CORE_TARGET = " + repr(write_target(tmp_path, "-O3 -march=future",
                                                   ["no_such_feature"])) + "\n"
            "try:\n"
            "    import gdcore\n"
            "except ImportError as e:\n"
            "    print('refused:', e)\n"
            "    print('core loaded:', 'gdcore._core' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", code], env=subprocess_env(), timeout=60,
                         capture_output=True, text=True, check=True).stdout
    assert "refused:" in out and "no_such_feature" in out, out
    assert "core loaded: False" in out, out
