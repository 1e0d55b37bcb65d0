"""Load the compiled core this CPU runs best, and never one it is known not to run.

An editable install is compiled with -march=native: every vector instruction of the machine
that built it.  Imported on a machine without one of them (a shared home directory on a
cluster, a container image moved to an older host), the core would kill Python with
"Illegal instruction" at the first one it meets.  setup.py writes beside the core the
instruction-set extensions its flags enabled beyond the compiler's default (CORE_TARGET, as
/proc/cpuinfo names them; one file for each Python's build, as the cores are); this module
compares them with the running CPU's before the core is loaded.  Where either is unknown (no
file: a core not built by this setup.py; no /proc/cpuinfo, or not x86: only x86 features are
recorded) nothing is checked; a portable build's file lists no features.

A portable build (a wheel) on x86-64 Linux holds, beside that baseline core, the same core
compiled for newer levels of the architecture (``_cores/x86-64-v3/``: AVX2 and FMA;
``_cores/x86-64-v4/``: AVX-512), each with its own target file, named on the third line of
CORE_TARGET.  The baseline core alone runs full-batch epochs at d = 10 ~4x slower on an
AVX-512 machine.  The variant used is the one needing the most features that this CPU has by
/proc/cpuinfo, where the features the small ``gdcore._cpu_features`` (built on x86-64 Linux)
asks CPUID about (SSE3 to SSE4.2, POPCNT, AVX, AVX2, FMA, BMI1/2, AVX-512 F/BW/CD/DQ/VL) count
only if the CPU itself also allows them: under valgrind /proc/cpuinfo lists AVX-512 that
CPUID hides.  The others (f16c, movbe, ...) /proc/cpuinfo alone decides.  None, or an
unknown CPU: the baseline core.  ``GDCORE_CORE=<name>`` (``default`` for the baseline core, or a
variant's name) chooses one by hand.  Every variant is loaded under the name
``gdcore._core``, so everything else (pickles, the C API's capsule) sees one module.
"""

from __future__ import annotations

import importlib
import importlib.machinery
import importlib.util
import os
import sys
import sysconfig

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
# This Python's compiled files: "_core" + EXT_SUFFIX; its target files: TARGET_NAME (one per
# Python, as setup.py names them, so builds for two Pythons in one folder do not mix).
EXT_SUFFIX = (sysconfig.get_config_var("EXT_SUFFIX")
              or importlib.machinery.EXTENSION_SUFFIXES[0])
TARGET_NAME = "_core_target" + EXT_SUFFIX.rsplit(".", 1)[0] + ".txt"
CORE_TARGET = os.path.join(PACKAGE_DIR, TARGET_NAME)
VARIANTS_DIR = os.path.join(PACKAGE_DIR, "_cores")
DEFAULT_CORE = "default"

# What was loaded (set by load_core): the variant's name (DEFAULT_CORE for gdcore/_core), its
# compile flags ("" where the build did not say) and the names of the variants the build holds.
loaded = {"core": None, "flags": "", "variants": []}


class UnsuitableCoreError(ImportError):
    """The core asked for, or the only one built, cannot run on this CPU, or GDCORE_CORE
    names no core of this build: said as it is, not as a missing core."""


def _read_lines(path):
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().splitlines()
    except OSError:
        return None


def core_target(path=None):
    """(flags, features): the flags the core was compiled with and the CPU features they
    require (none for a portable build), or None if the build did not say."""
    lines = _read_lines(CORE_TARGET if path is None else path)
    if lines is None:
        return None
    flags = lines[0] if lines else ""
    features = set(lines[1].split()) if len(lines) > 1 else set()
    return flags, features


def core_variants(path=None, variants_dir=None):
    """{name: (flags, features)} of the variants built with the baseline core: the names on
    CORE_TARGET's third line whose folder holds this Python's target file and compiled core.
    A variant left in the folder by an earlier build is not one of them."""
    lines = _read_lines(CORE_TARGET if path is None else path)
    names = lines[2].split() if lines is not None and len(lines) > 2 else []
    variants_dir = VARIANTS_DIR if variants_dir is None else variants_dir
    variants = {}
    for name in names:
        target = core_target(os.path.join(variants_dir, name, TARGET_NAME))
        if target is not None and os.path.exists(os.path.join(variants_dir, name,
                                                              "_core" + EXT_SUFFIX)):
            variants[name] = target
    return variants


def default_core_file():
    """The baseline (or native) core's compiled file, gdcore/_core + EXT_SUFFIX."""
    return os.path.join(PACKAGE_DIR, "_core" + EXT_SUFFIX)


def cpu_features(path="/proc/cpuinfo", allowed=None):
    """The running CPU's feature flags as Linux names them, or None where unknown, less those
    the CPU itself does not allow this process (allowed: {name: bool} from
    gdcore._cpu_features where it was built)."""
    allowed = cpuid_features() if allowed is None else allowed
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return {name for name in value.split() if allowed.get(name, True)}
    except OSError:
        pass
    return None


def cpuid_features():
    """{feature: allowed} as CPUID says, from gdcore._cpu_features (built on x86-64 Linux), or
    {} where it was not built."""
    try:
        from . import _cpu_features
    except ImportError:
        return {}
    return _cpu_features.cpu_features()


def check_core_target(target=None, present=None):
    """Raise ImportError if the core needs CPU features this CPU lacks."""
    target = core_target() if target is None else target
    present = cpu_features() if present is None else present
    if target is None or present is None:
        return
    flags, required = target
    missing = sorted(required - present)
    if missing:
        raise UnsuitableCoreError(
            f"gdcore's compiled core was built for another CPU (compiled with {flags}) and "
            f"needs {', '.join(missing)}, which this CPU does not have: importing it would "
            f"kill Python with 'Illegal instruction'. Rebuild it on this machine "
            f"(pip install -e . again), or build it for any CPU: "
            f"GDCORE_PORTABLE=1 pip install -e .")


def choose_core(variants, present, requested=None):
    """The name of the core to load: the variant needing the most features among those this
    CPU has (present: None if unknown, then DEFAULT_CORE), or the one requested
    (GDCORE_CORE: "auto" or empty for the choice above, DEFAULT_CORE, or a variant's name;
    in any case, underscores read as dashes).  ImportError for a name that is not built, or
    a variant this CPU cannot run."""
    requested = (requested or "").strip().lower().replace("_", "-") or "auto"
    if requested == "auto":
        if present is None:
            return DEFAULT_CORE
        runnable = [(len(features), name) for name, (_, features) in variants.items()
                    if features <= present]
        return max(runnable)[1] if runnable else DEFAULT_CORE
    if requested == DEFAULT_CORE:
        return DEFAULT_CORE
    if requested not in variants:
        known = ", ".join(["auto", DEFAULT_CORE, *sorted(variants)])
        raise UnsuitableCoreError(f"GDCORE_CORE={requested!r} names no core of this build of "
                                  f"gdcore (it has: {known})")
    missing = sorted(variants[requested][1] - present) if present is not None else []
    if missing:
        raise UnsuitableCoreError(f"GDCORE_CORE={requested!r} asks for a core that needs "
                                  f"{', '.join(missing)}, which this CPU does not have: "
                                  f"loading it would kill Python with 'Illegal instruction'")
    return requested


def load_core(package):
    """Import and return the compiled core as ``<package>._core`` (see the module's doc)."""
    variants = core_variants()
    present = cpu_features()
    name = choose_core(variants, present, os.environ.get("GDCORE_CORE"))
    module_name = package + "._core"
    if name == DEFAULT_CORE:
        target = core_target()
        check_core_target(target, present)
        module = importlib.import_module(module_name)
    else:
        spec = importlib.util.spec_from_file_location(
            module_name, os.path.join(VARIANTS_DIR, name, "_core" + EXT_SUFFIX))
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            del sys.modules[module_name]
            raise
        target = variants[name]
    loaded.update(core=name, flags=target[0] if target is not None else "",
                  variants=sorted(variants))
    return module
