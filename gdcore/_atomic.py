"""Files written whole or not at all: a model, a bench's JSON and predictions replace an
earlier file only once they are complete, and on disk (a crash or power cut just after the
rename leaves the new file or the old one, never an empty one)."""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import uuid


@contextlib.contextmanager
def replaced_on_success(path, newline=None):
    """A text file to write that becomes ``path`` only when the block ends without an error
    (Ctrl-C included): until then an earlier file at ``path`` is kept (its permissions pass to
    the new one), and a failed or interrupted write leaves nothing half-written behind.  A
    symbolic link's target is the file replaced; what is not a regular file (a FIFO, a
    device such as /dev/stdout) is written in place."""
    given = os.fspath(path)
    try:
        # stat follows links as open does: /dev/stdout on a pipe is a FIFO there, while its
        # realpath (/proc/<pid>/fd/pipe:[N]) names nothing that can be opened
        in_place = not stat.S_ISREG(os.stat(given).st_mode)
    except OSError:
        in_place = False
    if in_place:
        with open(given, "w", encoding="utf-8", newline=newline) as f:
            yield f
        return
    path = os.path.realpath(given)
    # a short name: the target's own may already be near the file system's limit
    temporary = os.path.join(os.path.dirname(path), f".gdcore-{uuid.uuid4().hex[:16]}.tmp")
    try:
        try:
            opened = open(temporary, "x", encoding="utf-8", newline=newline)
        except OSError as exc:  # named as the file asked for, not the temporary one
            raise type(exc)(exc.errno, exc.strerror, given) from None
        with opened as f:
            yield f
            # on disk before the rename: else a crash can leave the name on an empty file
            f.flush()
            _sync(f.fileno())
        with contextlib.suppress(OSError):
            os.chmod(temporary, stat.S_IMODE(os.stat(path).st_mode))
        os.replace(temporary, path)
        _sync_folder(os.path.dirname(path))
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise


def _sync(descriptor):
    """fsync, but for a file system that cannot (EINVAL, ENOTSUP: some FUSE and network
    ones), where the write stands as written; an I/O error is raised."""
    try:
        os.fsync(descriptor)
    except OSError as exc:
        if exc.errno not in (errno.EINVAL, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise


def _sync_folder(folder):
    """The rename itself on disk, where the system allows a folder to be synced (POSIX; not
    Windows, nor some network file systems: the file's data is, all the same)."""
    with contextlib.suppress(OSError, AttributeError):
        descriptor = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
