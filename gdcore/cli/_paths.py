"""Checks of output paths made before the work: writable, distinct from the inputs and
from each other, and a plot's image format."""

from __future__ import annotations

import os

from .._io import FOLDER_SUFFIXES, DataError, folder_files, is_folder


def check_plot_path(path):
    """Raise ValueError naming --plot if the loss plot cannot be written to ``path``: checked
    before a fit, so that a long fit does not end in an error about its picture."""
    if path is None:
        return
    from .._plot import supported_image_formats
    try:
        formats = supported_image_formats()
    except ImportError as exc:
        raise ValueError(f"--plot: {exc}") from None
    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    if suffix not in formats:
        raise ValueError(f"--plot {path}: the image format comes from the extension; use one "
                         f"of {', '.join('.' + f for f in sorted(formats))}")
    check_output_path("--plot", path)


def check_output_path(flag, path):
    """Raise ValueError naming the flag if a file cannot be written at ``path`` (its folder
    missing or not writable, or a folder in its place): checked before the work."""
    if path is None:
        return
    if path == "":      # a variable left unset ("$MODEL"): not the same as no option
        raise ValueError(f"{flag}: the path is empty; name the file")
    if path == "-":     # (only predict --out takes "-", for stdout, before this check)
        raise ValueError(f"{flag} -: this output is written to a file, not to stdout; name "
                         "the file")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"{flag} {path}: no such folder {folder}")
    if os.path.isdir(path):
        raise ValueError(f"{flag} {path}: is a folder, not a file")
    if not os.access(folder, os.W_OK):
        raise ValueError(f"{flag} {path}: the folder {folder} is not writable")


def check_distinct_paths(outputs, inputs):
    """Raise ValueError if an output (flag -> path) would be written over an input (name ->
    path) or over another output: the same file, however it is named."""
    given = [(flag, path) for flag, path in outputs.items() if path is not None]
    for index, (flag, path) in enumerate(given):
        for name, other in list(inputs.items()) + given[:index]:
            if other is not None and _same_file(path, other):
                raise ValueError(f"{flag} {path} is the {name} file ({other}): writing it "
                                 f"would destroy it; give {flag} another name")


def data_inputs(data):
    """DATA as check_distinct_paths' inputs: the path, and for a folder each of its files read
    as data (an output written over one would destroy that part of the data)."""
    inputs = {"DATA": data}
    if is_folder(data):
        try:
            files = folder_files(data)
        except DataError:   # no data files: refused when the folder is read
            files = []
        inputs.update((f"DATA folder's {os.path.basename(f)}", f) for f in files)
    return inputs


def check_not_added_to_folder(flag, path, data):
    """Raise ValueError naming the flag if ``path`` would be a new data file of the DATA
    folder: the next fit or predict on the folder would read it as a part of the data."""
    if path is None or not is_folder(data):
        return
    def read_there(written):
        name = os.path.basename(written)
        return (_same_file(os.path.dirname(written), data)
                and name.lower().endswith(FOLDER_SUFFIXES) and not name.startswith((".", "_")))
    name = os.path.basename(path)
    if read_there(os.path.abspath(path)):
        raise ValueError(f"{flag} {path} would add a file to the DATA folder {data}, which the "
                         f"next fit or predict on it would read as data; write it elsewhere, "
                         f"or name it _{name} (names beginning with _ are not read)")
    # a symbolic link's target is what is written (made when not there yet)
    target = os.path.realpath(path)
    if read_there(target):
        raise ValueError(f"{flag} {path} is a link to {target}, which would add a file to the "
                         f"DATA folder {data}, read as data by the next fit or predict on it; "
                         f"write it elsewhere")


def _same_file(a, b):
    try:
        return os.path.samefile(a, b)
    except OSError:     # one of them does not exist (yet): the same only by name
        return os.path.realpath(a) == os.path.realpath(b)
