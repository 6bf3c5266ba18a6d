"""JSON records on disk: written atomically (a killed process never leaves half a file) and read back
with a default for a record that does not exist yet."""

import json
import os


def write_json(path, value, indent=2):
    """Writes `value` as JSON to `path` through a temporary file and a rename."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as f:
        json.dump(value, f, indent=indent)
    os.replace(temporary, path)


def read_json(path, default=None):
    """The JSON value in `path`, or `default` when there is no such file."""
    if not os.path.exists(path):
        return default
    with open(path) as f:
        return json.load(f)
