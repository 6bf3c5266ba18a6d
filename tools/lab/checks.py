"""Checks of the tools' flags that run before TensorFlow starts, so that bad input fails fast.

Each raises `sagan_tf.commands.UserError` (one line, exit 2, under `commands.run`) naming the flag and
how to fix it. No TensorFlow here: `sagan_tf.commands` and the standard library only.
"""

import json
import os

from sagan_tf.commands import UserError, check_run_dir


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


def json_file(flag, path, fix, keys=(), kind=None):
    """The JSON object in the existing file `path`; with `keys`, it must hold them (else it is no `kind`)."""
    file(flag, path, fix)
    try:
        with open(path) as f:
            value = json.load(f)
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"--{flag} {path} is not JSON ({error})", fix) from None
    if keys and (not isinstance(value, dict) or not set(keys) <= set(value)):
        raise UserError(f"--{flag} {path} is not {kind or 'the JSON expected'}", fix)
    return value


def run_folder(flag, path):
    """`path` must be a training directory written by `python -m sagan_tf.train`."""
    check_run_dir(path, flag=flag)


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


def gin_files(flag, names):
    """Each of `names` must be a gin file: a path, or a name in sagan_tf's gin/ folder (as sagan_tf.config
    resolves them, without importing it: it starts TensorFlow)."""
    import importlib.util  # noqa: PLC0415

    gin_dir = os.path.join(os.path.dirname(os.path.dirname(importlib.util.find_spec("sagan_tf").origin)), "gin")
    for name in names:
        candidates = [name, os.path.join(gin_dir, name)]
        if not name.endswith(".gin"):
            candidates += [name + ".gin", os.path.join(gin_dir, name + ".gin")]
        if not any(os.path.isfile(path) for path in candidates):
            raise UserError(f"gin file {name!r} not found in . or {gin_dir} (--{flag})",
                            "pass a path, or a name such as synthetic.gin from that folder")


def executable(flag, path, fix):
    """`path` must be a file this user may run."""
    file(flag, path, fix)
    if not os.access(path, os.X_OK):
        raise UserError(f"--{flag} {path} is not an executable", fix)
