"""Errors in the command line's words: the library's messages with its argument names
replaced by the flags that set them, as one line; stdout whose reader has gone."""

from __future__ import annotations

import os
import re
import sys

from .._io import DataError, one_line
from .._result import DivergenceError


# gdcore's argument names, as error messages begin with them, and the flags that set them
FLAGS = {"n_threads": "--threads", "batch_size": "--batch-size",
         "n_iter_no_change": "--n-iter-no-change", "epochs": "--epochs", "lr": "--lr",
         "l1": "--l1", "l2": "--l2", "seed": "--seed", "tol": "--tol", "gtol": "--gtol",
         "optimizer": "--optimizer", "schedule": "--schedule"}


ARGUMENT_AT_START = re.compile(r"^(%s)\b(?=( must|:| applies| >))" % "|".join(FLAGS))


FLAG_MAY_BE_NONE = re.compile(r"^(--[a-z-]+ )must be None, ")


SEED_KINDS = re.compile(r"^--seed must be an int >= 0, .*; got (\S+) \(.*$")


# the library's advice, and the options it names, in the command line's words
CLI_WORDS = [("standardise X", "--standardize"), ("try a smaller lr", "try a smaller --lr"),
             (" or pass X as float64", " or store the features as float64"),
             ("Use l2, or optimizer='sgd'", "Use --l2, or --optimizer sgd"),
             ("use tol, or batch_size=None", "use --tol, or leave out --batch-size"),
             (" The last finite parameters are in .result", "")]


# ... and the library's argument values, as the command line's options and data
CLI_PATTERNS = [(re.compile(r"\(batch_size=(\d+) < n_samples=(\d+)\)"),
                 r"(--batch-size \1, of \2 rows)")]


def in_cli_words(text):
    for library, command_line in CLI_WORDS:
        text = text.replace(library, command_line)
    for pattern, command_line in CLI_PATTERNS:
        text = pattern.sub(command_line, text)
    return text


def fail(command, message):
    """Print ``message`` (an exception or text) as one error line; returns exit status 2."""
    if isinstance(message, (DivergenceError, str)):
        # (.result is the library's handle on the last parameters, not the command line's)
        message = in_cli_words(str(message))
    elif isinstance(message, (ValueError, TypeError)) and not isinstance(message, DataError):
        message = ARGUMENT_AT_START.sub(lambda match: FLAGS[match.group(1)], str(message))
        # A flag left out is the library's None: the command line cannot pass None itself.
        message = in_cli_words(FLAG_MAY_BE_NONE.sub(r"\1must be ", message))
        # numpy's kinds of seed mean nothing on a command line, which passes integers
        message = SEED_KINDS.sub(r"--seed must be an integer >= 0, got \1", message)
    # one line whatever the message embeds (a library's multi-line exception text)
    print(f"gdcore {command}: error: {one_line(message)}", file=sys.stderr)
    return 2


def drop_stdout():
    """Point stdout at /dev/null once its reader has gone (``| head``) or it cannot be
    written: the interpreter's last flush of what is left in its buffer must not fail again
    at exit ("Exception ignored ...", status 120)."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
