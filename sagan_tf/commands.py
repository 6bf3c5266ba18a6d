"""The contract every sagan_tf command keeps (train, evaluate, export, and the tools built on them).

- Bad input (a flag, a value, a missing or wrong file or folder, hardware that is not there, a run that
  cannot be read) prints one line, `<command>: error: <what> (<how to fix>)`, on stderr and exits with 2,
  before anything is created or changed. Such errors are `UserError`s; anything else is a bug and keeps
  its traceback.
- `--help` prints the command's description and flags and exits with 0.
- Long work shows a Keras progress bar on a terminal and plain lines without control characters
  elsewhere (`plain_output`).
- The last line names what the command wrote.

This module does not import TensorFlow: a command parses its flags (and sets TensorFlow's environment)
before TensorFlow starts.
"""

import os
import re
import sys

from absl import app, flags

USAGE_EXIT = 2


class UserError(ValueError):
    """Input a user can fix: `what` was wrong, `fix` says how (optional)."""

    def __init__(self, what, fix=None):
        self.what, self.fix = str(what).rstrip("."), fix
        super().__init__(f"{self.what} ({fix})" if fix else self.what)


RUN_FILES = ("model_config.json", "operative_config.gin")  # what a run of sagan_tf.train writes first


def no_run_message(model_dir):
    """Why `model_dir` is no training run (it holds neither of RUN_FILES; older runs have only the
    operative config), or None if it is one. Shared by the commands, the tools and sagan_tf.restore."""
    if any(os.path.exists(os.path.join(model_dir, name)) for name in RUN_FILES):
        return None
    return f"{os.path.join(model_dir, RUN_FILES[1])} does not exist: is {model_dir} a sagan_tf training directory?"


def missing_checkpoint_message(path, steps=()):
    """The message for a checkpoint `path` (prefix) that was never written (shared with checkpointing), naming
    the `steps` the run did save when given."""
    saved = f"; the run has step{'s' if len(steps) > 1 else ''} {', '.join(map(str, steps))}" if steps else ""
    return f"Checkpoint {path} does not exist (no {path}.index{saved})"


def check_run_dir(model_dir, checkpoint=None, flag="model_dir"):
    """Raises UserError unless `model_dir` (given by --`flag`) is a folder holding a training run and, if
    `checkpoint` is a step number, that step's checkpoint. No TensorFlow: commands call it before it
    starts."""
    fix = f"pass the --{flag} a run of python -m sagan_tf.train wrote"
    if not os.path.isdir(model_dir):
        raise UserError(f"--{flag} {model_dir} is not a folder", fix)
    problem = no_run_message(model_dir)
    if problem:
        raise UserError(problem, fix)
    if checkpoint is not None and str(checkpoint).isdigit():
        path = os.path.join(model_dir, "checkpoints", f"ckpt-{checkpoint}")
        if not os.path.exists(path + ".index"):
            raise UserError(missing_checkpoint_message(path, saved_steps(model_dir)),
                            "pass a step the run saved, 'latest' or 'best'")


def saved_steps(model_dir):
    """The steps of the complete checkpoints in `model_dir`/checkpoints (those with an .index), ascending."""
    folder = os.path.join(model_dir, "checkpoints")
    names = os.listdir(folder) if os.path.isdir(folder) else []
    matches = (re.fullmatch(r"ckpt-(\d+)\.index", name) for name in names)
    return sorted(int(match.group(1)) for match in matches if match)


def error_line(command, error):
    """The one line a command prints for a `UserError` (or a flags error)."""
    # One line, whatever the message held, without gin's "In call to configurable ..." context.
    text = " ".join(str(error).split("\n  In call to configurable")[0].split())
    return f"{command}: error: {text}"


def fail(command, error):
    """Prints `error` as the command's one-line error and exits with 2."""
    print(error_line(command, error), file=sys.stderr, flush=True)
    sys.exit(USAGE_EXIT)


def plain_output(stream=None):
    """Whether progress should be plain lines: true unless `stream` (stdout) is a terminal."""
    stream = stream or sys.stdout
    try:
        return not stream.isatty()
    except (AttributeError, ValueError):
        return True


_HELP = ("-h", "--help", "-help", "--helpshort", "--helpfull", "-?")


def _expand_home(flag_values):
    """Expands a leading `~` or `~user` in the values of the flags given on the command line (a path the shell
    left as typed: after `--data_dir=` it expands nothing), as the shell would at the start of a word."""
    def expand(value):  # expanduser returns a string without a leading "~" unchanged
        return os.path.expanduser(value) if isinstance(value, str) else value

    for name in flag_values:
        flag = flag_values[name]
        if flag.present:
            flag.value = [expand(v) for v in flag.value] if isinstance(flag.value, list) else expand(flag.value)


def _parser(command, description):
    def parse(argv):
        if any(arg in _HELP for arg in argv[1:]):
            try:
                print((description or command).strip() + "\n")
                print(flags.FLAGS.main_module_help() or flags.FLAGS.get_help())
            except BrokenPipeError:  # `... --help | head`
                pass
            sys.exit(0)
        try:
            rest = flags.FLAGS(argv)
        except flags.Error as error:
            missing = re.search(r"Flag --(\w+) must have a value other than None", str(error))
            what = f"--{missing.group(1)} is required" if missing else str(error)
            fail(command, f"{what} (run {command} --help for the flags)")
        if len(rest) > 1:
            fail(command, f"unexpected arguments {rest[1:]} (flags take the form --name=value; "
                          f"run {command} --help)")
        _expand_home(flags.FLAGS)
        return rest

    return parse


def run(command, main, description=None):
    """Runs `main(argv)` as `command` under the contract: flag errors and `UserError`s become one line
    and exit 2; `--help` exits 0. Define the flags before calling."""

    def guarded(argv):
        try:
            return main(argv)
        except UserError as error:
            fail(command, error)

    app.run(guarded, flags_parser=_parser(command, description))
