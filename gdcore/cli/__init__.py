"""The ``gdcore`` console script: one module per subcommand, registered here."""

from __future__ import annotations

import argparse
import contextlib
import re
import signal
import sys
import threading

from .. import __version__, build_info
from .._validation import nearest_name
from . import bench, demo, fit, lr_search, predict
from ._messages import drop_stdout

# Each subcommand module has add_parser(subparsers) and run(args) -> exit code.
SUBCOMMANDS = [demo, fit, predict, lr_search, bench]


class _Parser(argparse.ArgumentParser):
    """argparse's parser with errors as one line, like the subcommands' own (not a usage
    block), pointing to --help; subcommands' parsers are of this class too.  Options are
    spelled out: an abbreviation (--epoch for --epochs) is refused with the nearest option,
    so that a script does not change meaning when an option is added."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("allow_abbrev", False)
        super().__init__(*args, **kwargs)

    def error(self, message):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:      # a mistyped subcommand: the nearest one (Python 3.12+ says it too)
            names = re.findall(r"'([^']*)'", choice.group(2))
            close = nearest_name(choice.group(1), names)
            if close and "did you mean" not in message:
                message += f"; did you mean {close!r}?"
        print(f"{self.prog}: error: {message} (see {self.prog} --help)", file=sys.stderr)
        sys.exit(2)


class _Version(argparse.Action):
    """--version as one line: argparse's own wraps the text to the terminal's width."""

    def __init__(self, option_strings, version, dest=argparse.SUPPRESS, help=None):
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0,
                         help=help or "show the version and the compiled core's build, and exit")
        self.version = version

    def __call__(self, parser, namespace, values, option_string=None):
        print(self.version)
        parser.exit()


# What to say about an option a subcommand does not have on purpose.
ABSENT_ON_PURPOSE = {("lr-search", "--lr"): "lr-search tries the rates given with --grid "
                                            "LR,LR,... or --random N"}


def _unrecognized(parser, args, extra):
    """The error for options the subcommand does not have, with the nearest it has."""
    sub = parser.commands[args.command]
    message = f"unrecognized arguments: {' '.join(extra)}"
    flags = [flag for action in sub._actions for flag in action.option_strings
             if flag.startswith("--")]
    token = next((t.split("=")[0] for t in extra if t.startswith("--")), None)
    if (args.command, token) in ABSENT_ON_PURPOSE:
        message += "; " + ABSENT_ON_PURPOSE[args.command, token]
    elif token is not None:
        close = nearest_name(token, flags)
        if close:
            message += f"; did you mean {close}?"
    sub.error(message)


def build_parser():
    parser = _Parser(
        prog="gdcore",
        description="Linear regression by gradient descent: every classic optimizer in a "
                    "fused, multithreaded Cython core.")
    info = build_info()
    # what a bug report needs: which compiled core runs here and how it was built
    version = (f"gdcore {__version__} (compiled core: {info['core']}"
               + (f", {info['flags']}" if info["flags"] else "")
               + f"; OpenMP {'on' if info['openmp'] else 'off'})")
    parser.add_argument("--version", action=_Version, version=version)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True
    parser.commands = {}
    for module in SUBCOMMANDS:
        sub = module.add_parser(subparsers)
        parser.commands[sub.prog.split()[-1]] = sub
    return parser


# what is likely to have filled the memory, as each command uses it
_FIT_MEMORY = ("a CSV or Parquet file, or a stream, is read whole, or many --epochs with "
               "--tol none: a fit keeps each epoch's loss")
_OUT_OF_MEMORY = {
    "fit": _FIT_MEMORY,
    "lr-search": _FIT_MEMORY,
    "predict": "a CSV or Parquet file, or a stream, is read whole: split it into a folder of "
               "smaller files, or save it as .npy, which is read in blocks",
    "bench": "the problem is made in memory: try a smaller --n or --d",
    "demo": "the problem is made in memory: try a smaller --n or --d",
}


class _Terminated(BaseException):
    """SIGTERM, raised where the command is (between epochs, as Ctrl-C is), so that a file
    being written is removed as on Ctrl-C: Python's default ends the process on the spot,
    leaving the temporary file of a model or predictions behind."""


def _on_sigterm(signum, frame):
    raise _Terminated


@contextlib.contextmanager
def _sigterm_raises():
    """SIGTERM raises _Terminated while the command runs, where nothing else handles it (the
    main thread, Python's default handler), and the handler before is put back after."""
    if (threading.current_thread() is not threading.main_thread()
            or signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL):
        yield
        return
    signal.signal(signal.SIGTERM, _on_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _check_own_options(parser, argv):
    """Refuse an option before COMMAND that gdcore itself does not have, naming it with the
    nearest it has (--vers for --version), or the commands it belongs to (--threads):
    argparse's error, the COMMAND missing, named neither."""
    for token in argv:
        if token == "--" or not token.startswith("-"):
            return      # the COMMAND (or the end of the options): its own options follow
        flag = token.split("=")[0]
        if flag.startswith("--") and flag not in parser._option_string_actions:
            # a command's option given before the command: say where it goes
            owners = [name for name, sub in parser.commands.items()
                      if flag in sub._option_string_actions]
            if owners:
                given = next((t for t in argv if t in parser.commands), None)
                example = given if given in owners else owners[0]
                listed = (", ".join(owners[:-1]) + " and " if len(owners) > 1 else "") \
                    + owners[-1]
                parser.error(f"unrecognized arguments: {token}; it is an option of {listed}: "
                             f"give it after the command (gdcore {example} ... {token})")
            close = nearest_name(flag, [f for f in parser._option_string_actions
                                        if f.startswith("--")])
            parser.error(f"unrecognized arguments: {token}"
                         + (f"; did you mean {close}?" if close else ""))


def main(argv=None):
    parser = build_parser()
    _check_own_options(parser, sys.argv[1:] if argv is None else list(argv))
    # unknown options are reported by the subcommand they were given to, with a hint
    args, extra = parser.parse_known_args(argv)
    if extra:
        _unrecognized(parser, args, extra)
    try:
        with _sigterm_raises():
            status = args.run(args)
        sys.stdout.flush()      # here, where a failure can be reported, not at exit
        return status
    except KeyboardInterrupt:
        print(f"gdcore {args.command}: interrupted", file=sys.stderr)
        return 130
    except _Terminated:
        print(f"gdcore {args.command}: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except BrokenPipeError:
        drop_stdout()      # the reader had enough (| head): not an error
        return 0
    except MemoryError:     # one line, not a traceback (which may itself need memory)
        print(f"gdcore {args.command}: error: out of memory ({_OUT_OF_MEMORY[args.command]})",
              file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.filename is not None:    # a file's error the subcommand did not expect
            raise
        # stdout itself (> /dev/full): one line, not a traceback (files are written first)
        drop_stdout()
        print(f"gdcore {args.command}: error: cannot write to stdout: {exc.strerror}",
              file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
