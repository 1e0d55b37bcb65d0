# Sourced by the scripts that build gdcore a second way: copy the repository at $root into
# $work, tracked files only, so stale in-place builds are not picked up (an unpacked sdist,
# which is not a git checkout and holds no builds: all of it).
scratch_copy() {
    local root=$1 work=$2
    if git -C "$root" rev-parse --is-inside-work-tree >/dev/null 2>&1; then
        (cd "$root" && git ls-files -z | xargs -0 cp --parents -t "$work")
    else
        cp -r "$root"/. "$work"
    fi
}
