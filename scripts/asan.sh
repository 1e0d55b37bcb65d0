#!/usr/bin/env bash
# Build gdcore._core with AddressSanitizer in a scratch copy of the repository and run the
# whole test suite (or the pytest arguments given) against it. Exits non-zero if a test
# fails or if AddressSanitizer reports anything.
#
#   bash scripts/asan.sh                 # everything
#   bash scripts/asan.sh tests/test_properties.py -x
set -euo pipefail
# shellcheck source=scripts/scratch_copy.sh
. "$(dirname "$0")/scratch_copy.sh"
build_in_scratch_copy "gdcore._core with -fsanitize=address" GDCORE_SANITIZE=address

libasan=$(gcc -print-file-name=libasan.so)
# libstdc++ is preloaded too, or ASan cannot intercept C++ exceptions thrown by libraries
# loaded later (matplotlib, pyarrow) and aborts with "real___cxa_throw != 0".
libstdcxx=$(gcc -print-file-name=libstdc++.so)
mkdir -p asan-reports
# Python itself is not instrumented and keeps memory until exit by design: no leak check.
export ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=1:log_path=$work/asan-reports/report"
export PYTHONPATH="$work"
status=0
LD_PRELOAD="$libasan $libstdcxx" python -m pytest -q -p no:cacheprovider "${@:-tests}" || status=$?

if compgen -G "asan-reports/report*" >/dev/null; then
    echo "AddressSanitizer reports:"
    cat asan-reports/report*
    exit 1
fi
echo "AddressSanitizer: no reports"
exit $status
