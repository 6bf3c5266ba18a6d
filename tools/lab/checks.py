"""Checks of the tools' flags that run before TensorFlow starts, so that bad input fails fast.

Each raises `sagan_tf.commands.UserError` (one line, exit 2, under `commands.run`) naming the flag and
how to fix it. No TensorFlow here: `sagan_tf.commands` and the standard library only.
"""

import os

from sagan_tf.commands import UserError

RUN_FILES = ("model_config.json", "operative_config.gin")  # as sagan_tf.restore looks for them


def required(flag, value, fix=None):
    if value in (None, "", []):
        raise UserError(f"--{flag} is required", fix or "run the command with --help for the flags")


def folder(flag, path, fix="pass an existing folder"):
    """`path` must be an existing folder."""
    if not os.path.exists(path):
        raise UserError(f"--{flag} {path} does not exist", fix)
    if not os.path.isdir(path):
        raise UserError(f"--{flag} {path} is a file, not a folder", fix)


def file(flag, path, fix="pass an existing file"):
    """`path` must be an existing file."""
    if not os.path.exists(path):
        raise UserError(f"--{flag} {path} does not exist", fix)
    if os.path.isdir(path):
        raise UserError(f"--{flag} {path} is a folder, not a file", fix)


def run_folder(flag, path):
    """`path` must be a training directory written by `python -m sagan_tf.train`."""
    fix = "pass the --model_dir a run of python -m sagan_tf.train wrote"
    if not os.path.isdir(path):
        raise UserError(f"--{flag} {path} is not a folder", fix)
    if not any(os.path.exists(os.path.join(path, name)) for name in RUN_FILES):
        raise UserError(f"{path} holds no {' or '.join(RUN_FILES)}: is {path} a sagan_tf training directory?", fix)


def output_file(flag, path, fix="pass a file path"):
    """`path` will be written: it must not be a folder, and its folder must not be a file."""
    if os.path.isdir(path):
        raise UserError(f"--{flag} {path} is a folder", fix)
    parent = os.path.dirname(os.path.abspath(path))
    while parent and not os.path.exists(parent):
        parent = os.path.dirname(parent)
    if os.path.isfile(parent):
        raise UserError(f"--{flag} {path} lies under {parent}, which is a file", fix)


def output_folder(flag, path, fix="pass a folder path"):
    """`path` will be created or written into: it must not be a file."""
    if os.path.isfile(path):
        raise UserError(f"--{flag} {path} is a file, not a folder", fix)
    output_file(flag, os.path.join(path, "x"), fix)


def integers(flag, values, fix):
    """The comma-separated `values` (a list of strings) as ints."""
    try:
        return [int(value) for value in values]
    except ValueError:
        raise UserError(f"--{flag}={','.join(values)} holds a value that is not an integer", fix) from None
