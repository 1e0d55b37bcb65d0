#!/usr/bin/env bash
# Build gdcore as a wheel is built (GDCORE_PORTABLE=1: the baseline core, and on x86-64 Linux
# its x86-64-v3 and x86-64-v4 variants) in a scratch copy of the repository, and run the
# whole test suite (or the pytest arguments given) on each core this CPU can run, chosen with
# GDCORE_CORE; then checks the import's own choice. Exits non-zero if any run fails.
#
#   bash scripts/portable.sh
#   bash scripts/portable.sh tests/test_trajectories.py -x
set -euo pipefail
# shellcheck source=scripts/scratch_copy.sh
. "$(dirname "$0")/scratch_copy.sh"
build_in_scratch_copy "gdcore portably" GDCORE_PORTABLE=1

export PYTHONPATH="$work"
# the cores this CPU can run: the baseline one and each variant whose features it has; on
# x86-64 Linux the build must hold both variants (setup.py falls back to feature flags where
# the compiler lacks -march=x86-64-vN, so none may be missing)
cores=$(env -u GDCORE_CORE python - <<'PY'
import platform, sys
from gdcore import _cpu_check
variants = _cpu_check.core_variants()
if sys.platform.startswith("linux") and platform.machine() == "x86_64":
    assert sorted(variants) == ["x86-64-v3", "x86-64-v4"], f"variants built: {sorted(variants)}"
present = _cpu_check.cpu_features()
runnable = sorted((len(needs), name) for name, (_, needs) in variants.items()
                  if present is not None and needs <= present)
print(" ".join(["default"] + [name for _, name in runnable]))   # the most features last
PY
)
status=0
for core in $cores; do
    echo "== the test suite on the core '$core' ($(GDCORE_CORE=$core python -c \
        'import gdcore; i = gdcore.build_info(); print(i["core"] + ": " + i["flags"])'))"
    GDCORE_CORE=$core python -m pytest -q -p no:cacheprovider "${@:-tests}" || status=1
done
# left to choose (whatever the caller's environment says), the import takes the variant
# needing the most of what this CPU has: the last core listed above
env -u GDCORE_CORE python -m pytest -q -p no:cacheprovider tests/test_cpu_check.py || status=1
chosen=$(env -u GDCORE_CORE python -c 'import gdcore; print(gdcore.build_info()["core"])')
expected=${cores##* }
echo "the import chose '$chosen' (expected '$expected')"
[ "$chosen" = "$expected" ] || status=1
exit $status
