"""Refuse, with an ImportError, a compiled core this CPU cannot run.

An editable install is compiled with -march=native: every vector instruction of the machine
that built it.  Imported on a machine without one of them (a shared home directory on a
cluster, a container image moved to an older host), the core would kill Python with
"Illegal instruction" at the first one it meets.  setup.py writes beside the core the
instruction-set extensions its flags enabled beyond the compiler's default (CORE_TARGET, as
/proc/cpuinfo names them); this module compares them with the running CPU's before the core
is loaded.  Where either is unknown (no file: a core not built by this setup.py; no
/proc/cpuinfo, or not x86: only x86 features are recorded) nothing is checked; a portable
build's file lists no features.
"""

from __future__ import annotations

import os

CORE_TARGET = os.path.join(os.path.dirname(os.path.abspath(__file__)), "_core_target.txt")


def core_target(path=None):
    """(flags, features): the flags the core was compiled with and the CPU features they
    require (none for a portable build), or None if the build did not say."""
    path = CORE_TARGET if path is None else path
    try:
        with open(path, encoding="utf-8") as f:
            lines = f.read().splitlines()
    except OSError:
        return None
    flags = lines[0] if lines else ""
    features = set(" ".join(lines[1:]).split())
    return flags, features


def cpu_features(path="/proc/cpuinfo"):
    """The running CPU's feature flags as Linux names them, or None where unknown."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() in ("flags", "Features"):
                    return set(value.split())
    except OSError:
        pass
    return None


def check_core_target(target=None, present=None):
    """Raise ImportError if the core needs CPU features this CPU lacks."""
    target = core_target() if target is None else target
    present = cpu_features() if present is None else present
    if target is None or present is None:
        return
    flags, required = target
    missing = sorted(required - present)
    if missing:
        raise ImportError(
            f"gdcore's compiled core was built for another CPU (compiled with {flags}) and "
            f"needs {', '.join(missing)}, which this CPU does not have: importing it would "
            f"kill Python with 'Illegal instruction'. Rebuild it on this machine "
            f"(pip install -e . again), or build it for any CPU: "
            f"GDCORE_PORTABLE=1 pip install -e .")
