"""A core compiled with -march=native on another machine must be refused with an ImportError
naming what this CPU lacks, before it is loaded (loading it would kill Python with SIGILL); a
portable build's variants (x86-64-v3, x86-64-v4) are chosen by the CPU's features, or by
GDCORE_CORE, and loaded as gdcore._core.  (scripts/portable.sh runs the whole suite on each
variant of a portable build.)"""

import os
import platform
import shutil
import subprocess
import sys

import pytest

import gdcore
from gdcore import _cpu_check

from conftest import subprocess_env


def write_target(tmp_path, flags, features, variants=(), name=_cpu_check.TARGET_NAME):
    path = tmp_path / name
    path.write_text(flags + "\n" + " ".join(features) + "\n" + " ".join(variants) + "\n")
    return str(path)


V3 = {"avx", "avx2", "fma", "bmi2"}
V4 = V3 | {"avx512f", "avx512bw"}
VARIANTS = {"x86-64-v3": ("-O3 -march=x86-64-v3", V3), "x86-64-v4": ("-O3 -march=x86-64-v4", V4)}


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


def test_the_variant_needing_the_most_of_what_the_cpu_has_is_chosen():
    choose = _cpu_check.choose_core
    assert choose(VARIANTS, V4 | {"sse2"}) == "x86-64-v4"
    assert choose(VARIANTS, V3 | {"avx512f"}) == "x86-64-v3"      # no avx512bw
    assert choose(VARIANTS, {"sse2", "avx"}) == "default"
    assert choose(VARIANTS, None) == "default"       # an unknown CPU: the baseline core
    assert choose({}, V4) == "default"                # a native build has no variants
    assert choose(VARIANTS, V4, requested="auto") == "x86-64-v4"
    assert choose(VARIANTS, V4, requested=" ") == "x86-64-v4"


def test_gdcore_core_chooses_by_hand_but_never_a_core_the_cpu_cannot_run():
    choose = _cpu_check.choose_core
    assert choose(VARIANTS, V4, requested="DEFAULT") == "default"
    assert choose(VARIANTS, V4, requested="x86-64-v3") == "x86-64-v3"
    assert choose(VARIANTS, V4, requested="X86_64_V3") == "x86-64-v3"
    assert choose(VARIANTS, None, requested="x86_64_v4") == "x86-64-v4"   # the user's word
    with pytest.raises(_cpu_check.UnsuitableCoreError) as caught:
        choose(VARIANTS, V3, requested="x86-64-v4")
    assert "avx512bw, avx512f" in str(caught.value) and "Illegal instruction" in str(caught.value)
    with pytest.raises(ImportError) as caught:
        choose(VARIANTS, V4, requested="avx9000")
    assert "'avx9000'" in str(caught.value)
    assert "auto, default, x86-64-v3, x86-64-v4" in str(caught.value)


def test_only_the_variants_built_with_the_core_are_offered(tmp_path):
    cores = tmp_path / "_cores"
    for name, (flags, features) in [*VARIANTS.items(), ("stale", ("-O3 -march=old", set())),
                                    ("no-core-file", ("-O3 -march=x", set()))]:
        (cores / name).mkdir(parents=True)
        write_target(cores / name, flags, sorted(features))
        if name != "no-core-file":
            (cores / name / ("_core" + _cpu_check.EXT_SUFFIX)).write_bytes(b"")
    # another Python's build of a variant: its files are not this Python's
    (cores / "other-python").mkdir()
    write_target(cores / "other-python", "-O3", [], name="_core_target.cpython-399-x.txt")
    (cores / "other-python" / "_core.cpython-399-x.so").write_bytes(b"")
    target = write_target(tmp_path, "-O3", [],
                          ["x86-64-v3", "x86-64-v4", "missing", "no-core-file", "other-python"])
    assert _cpu_check.core_variants(target, str(cores)) == VARIANTS
    assert _cpu_check.core_target(target) == ("-O3", set())
    # a target written before variants existed (two lines) names none
    (tmp_path / "old").mkdir()
    old = tmp_path / "old" / "_core_target.txt"
    old.write_text("-O3 -march=native\navx2 fma\n")
    assert _cpu_check.core_variants(str(old), str(cores)) == {}
    assert _cpu_check.core_target(str(old)) == ("-O3 -march=native", {"avx2", "fma"})


def test_build_info_names_the_core_that_runs():
    info = gdcore.build_info()
    assert info["core"] == _cpu_check.choose_core(
        _cpu_check.core_variants(), _cpu_check.cpu_features(), os.environ.get("GDCORE_CORE"))
    assert info["variants"] == sorted(_cpu_check.core_variants())
    assert info["openmp"] == gdcore._core.openmp_enabled()
    expected = (os.path.join(_cpu_check.VARIANTS_DIR, info["core"]) if info["core"] != "default"
                else _cpu_check.PACKAGE_DIR)
    assert os.path.dirname(os.path.abspath(gdcore._core.__file__)) == expected
    assert sys.modules["gdcore._core"] is gdcore._core


def _run_with_target(tmp_path, lines, body, extra_env=None):
    """A child Python whose _cpu_check reads a made-up CORE_TARGET and VARIANTS_DIR, then
    imports gdcore and runs body; its stdout.  GDCORE_CORE is the one given, else unset
    (scripts/portable.sh sets it for the whole suite)."""
    # the check's module loaded on its own (importing it as gdcore._cpu_check would run
    # gdcore's __init__ first), pointed at the made-up files, then gdcore imported
    code = ("import importlib.util, sys\n"
            "spec = importlib.util.spec_from_file_location('gdcore._cpu_check', "
            + repr(_cpu_check.__file__) + ")\n"
            "c = importlib.util.module_from_spec(spec)\n"
            "spec.loader.exec_module(c)\n"
            "sys.modules['gdcore._cpu_check'] = c\n"
            f"c.CORE_TARGET = {lines!r}\n"
            f"c.VARIANTS_DIR = {str(tmp_path / '_cores')!r}\n" + body)
    env = {k: v for k, v in subprocess_env().items() if k != "GDCORE_CORE"}
    env.update(extra_env or {})
    child = subprocess.run([sys.executable, "-c", code], env=env, timeout=120,
                           capture_output=True, text=True)
    assert child.returncode == 0, child.stderr
    return child.stdout


def test_a_variant_loads_as_gdcore_core_and_fits_as_the_default_does(tmp_path):
    """The loading itself, on this build: the core's own file copied in as a variant this
    CPU can run is the one imported, under the name gdcore._core, and it fits bit for bit
    as the core loaded the usual way (GDCORE_CORE=default)."""
    variant = tmp_path / "_cores" / "copy"
    variant.mkdir(parents=True)
    shutil.copy(_cpu_check.default_core_file(), variant / ("_core" + _cpu_check.EXT_SUFFIX))
    present = sorted(_cpu_check.cpu_features() or [])[:1]    # features this CPU has
    write_target(variant, "-O3 -march=copy", present)
    target = write_target(tmp_path, "-O3", [], ["copy"])
    body = ("import gdcore, numpy as np\n"
            "X, y, _ = gdcore.make_regression(2000, 13, seed=3)\n"
            "r = gdcore.fit(X, y, optimizer='adam', lr=0.01, epochs=7, batch_size=64, seed=1)\n"
            "print(gdcore.build_info()['core'], gdcore._core.__file__, gdcore._core.__name__,\n"
            "      sys.modules['gdcore._core'] is gdcore._core)\n"
            "print(np.concatenate([r.coef, [r.intercept], r.loss_history]).tobytes().hex())\n")
    chosen = _run_with_target(tmp_path, target, body).splitlines()
    default = _run_with_target(tmp_path, target, body, {"GDCORE_CORE": "default"}).splitlines()
    core, path, name, registered = chosen[0].split()
    if _cpu_check.cpu_features() is not None:
        assert core == "copy" and path.startswith(str(variant)), chosen
    assert name == "gdcore._core" and registered == "True"
    assert default[0].split()[0] == "default"
    assert chosen[1] == default[1]


def test_gdcore_core_naming_no_core_fails_the_import_plainly(tmp_path):
    target = write_target(tmp_path, "-O3", [], [])
    body = ("try:\n"
            "    import gdcore\n"
            "except ImportError as e:\n"
            "    print(type(e).__name__, e)\n")
    out = _run_with_target(tmp_path, target, body, {"GDCORE_CORE": "x86_64_v9"})
    assert out.startswith("UnsuitableCoreError GDCORE_CORE='x86-64-v9' names no core"), out


def test_cpuinfo_flags_are_read(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nvendor_id\t: AuthenticAMD\n"
                       "flags\t\t: fpu sse2 avx2 avx512f\n\nprocessor\t: 1\n")
    assert _cpu_check.cpu_features(str(cpuinfo), allowed={}) == {"fpu", "sse2", "avx2",
                                                                   "avx512f"}
    # what CPUID does not allow this process is not present, whatever /proc/cpuinfo says
    # (valgrind hides AVX-512 from CPUID; /proc/cpuinfo still lists it)
    assert _cpu_check.cpu_features(str(cpuinfo), allowed={"avx512f": False, "avx2": True,
                                                          "fma": False}) == {"fpu", "sse2",
                                                                             "avx2"}


@pytest.mark.skipif(not _cpu_check.cpuid_features(),
                    reason="gdcore._cpu_features is built on x86-64 Linux only")
def test_cpuid_and_proc_cpuinfo_agree_on_this_machine():
    allowed = _cpu_check.cpuid_features()
    listed = _cpu_check.cpu_features(allowed={})
    assert {"avx2", "avx512f", "fma", "bmi1", "sse4_2"} <= set(allowed)
    if listed is not None:
        assert {name for name, ok in allowed.items() if ok} == set(allowed) & listed


@pytest.mark.skipif(not os.path.exists(_cpu_check.CORE_TARGET),
                    reason="this core's build wrote no target (built before the check)")
def test_this_build_says_what_it_needs_and_this_cpu_has_it():
    flags, required = _cpu_check.core_target()
    present = _cpu_check.cpu_features()
    if ("-march=native" in flags.split() and sys.platform.startswith("linux")
            and platform.machine() == "x86_64"):     # only x86 features are recorded
        assert required, "a native x86 build uses more than the default target"
    if present is not None:
        assert required <= present


def test_import_refuses_before_loading_the_core(tmp_path):
    """gdcore's import runs the check before the core is loaded: a target naming a feature no
    CPU has makes the import fail with the message, not with SIGILL."""
    target = write_target(tmp_path, "-O3 -march=future", ["no_such_feature"])
    body = ("try:\n"
            "    import gdcore\n"
            "except ImportError as e:\n"
            "    print('refused:', e)\n"
            "    print('core loaded:', 'gdcore._core' in sys.modules)\n")
    out = _run_with_target(tmp_path, target, body)
    assert "refused:" in out and "no_such_feature" in out, out
    assert "core loaded: False" in out, out
