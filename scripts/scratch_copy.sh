# Sourced by the scripts that build gdcore a second way and test it (asan.sh, portable.sh).
#
#   build_in_scratch_copy "what is built" VAR=value ...
#
# copies the repository into a new temporary folder (removed when the script exits), tracked
# files only, so stale in-place builds are not picked up (an unpacked sdist, which is not a git
# checkout and holds no builds: all of it); cds there and builds gdcore in place with the
# environment given, printing the build's log only if it fails.  GNU coreutils (Linux).
build_in_scratch_copy() {
    local what=$1 root
    shift
    root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
    work=$(mktemp -d)
    # shellcheck disable=SC2064  # $work is expanded now, on purpose
    trap "rm -rf '$work'" EXIT
    # gdcore's own checkout only: an unpacked sdist inside some other git work tree (a home
    # folder kept in git) has no tracked files there
    if [ "$(git -C "$root" rev-parse --show-toplevel 2>/dev/null)" = "$root" ] &&
        [ -n "$(git -C "$root" ls-files -- setup.py)" ]; then
        (cd "$root" && git ls-files -z | xargs -0 -r cp --parents -t "$work")
    else
        cp -r "$root"/. "$work"
    fi
    cd "$work"
    echo "building $what in $work"
    env "$@" python setup.py build_ext --inplace >build.log 2>&1 || { cat build.log; exit 1; }
}
