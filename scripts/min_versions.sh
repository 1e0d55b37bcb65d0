#!/usr/bin/env bash
# The whole test suite (or the pytest arguments given) against the oldest releases of
# gdcore's dependencies that this Python has wheels for: numpy 1.x (pyproject declares
# numpy>=1.24), pandas 1.5, scikit-learn 1.6, pyarrow 10, ... (the newest of each is what
# .ci/run's first suite gets). In a fresh virtual environment and a scratch copy, built
# against that numpy. Exits non-zero if a test fails.
#
#   bash scripts/min_versions.sh
#   bash scripts/min_versions.sh tests/test_cli.py -x
set -euo pipefail
# the declared minimum where a wheel for this Python exists, else the oldest that has one
# (3.11: matplotlib 3.6, dask 2023.1.1; 3.12: numpy 1.26, pandas 2.2, pyarrow 16, ...).
# zstandard (the io extra) is left out: the suite then tests what gdcore says without it.
case $(python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])') in
    3.9|3.10|3.11)
        oldest=("numpy==1.24.*" "pandas==1.5.*" "pyarrow==10.*" "matplotlib==3.6.*"
                "dask[array,dataframe]==2023.1.1" "distributed==2023.1.1") ;;
    3.12)
        oldest=("numpy==1.26.*" "pandas==2.2.*" "pyarrow==16.*" "matplotlib==3.8.*"
                "dask[array,dataframe]>=2023.1" "distributed>=2023.1") ;;
    *)
        echo "min_versions.sh: no set of oldest releases for this Python yet (numpy 1.x has"
        echo "no wheels for it): not run; add one to scripts/min_versions.sh"
        exit 0 ;;
esac
venv=$(mktemp -d)
trap 'rm -rf "$venv"' EXIT
python3 -m venv "$venv"
# shellcheck disable=SC1091
. "$venv/bin/activate"
python -m pip install --quiet --upgrade pip
pip install --quiet --only-binary=:all: "${oldest[@]}" "scikit-learn==1.6.0" "tqdm==4.60.*" \
    "pytest>=7" "pytest-benchmark>=4" "hypothesis>=6" "threadpoolctl>=3" "Cython>=3" \
    "setuptools>=77"
python -c 'import numpy, pandas, sklearn; print("numpy", numpy.__version__, "pandas",
pandas.__version__, "scikit-learn", sklearn.__version__)'
# shellcheck source=scripts/scratch_copy.sh
. "$(dirname "$0")/scratch_copy.sh"
build_in_scratch_copy "gdcore against numpy $(python -c 'import numpy; print(numpy.__version__)')"
trap 'rm -rf "$work" "$venv"' EXIT     # (build_in_scratch_copy's trap removed $work only)
export PYTHONPATH="$work"
python -m pytest -q -p no:cacheprovider "${@:-tests}"
