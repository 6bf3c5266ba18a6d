"""The gin files sagan_tf ships and how a `--gin_file` name finds one. No TensorFlow: the train command
checks its --gin_file flags before TensorFlow starts; `sagan_tf.config` parses them."""

import importlib.resources
import os

from sagan_tf.commands import UserError

GIN_PACKAGE = "sagan_tf.gin"  # the top-level gin/ folder, installed as package data


class ConfigError(UserError):
    """A gin file or binding that cannot be used."""


def packaged_gin_file(name):
    """The gin file `name` ("imagenet.gin", "ablations/equal_lr.gin") shipped with sagan_tf, as an
    importlib.resources Traversable, or None."""
    if not name or os.path.isabs(name) or ".." in name.split("/"):
        return None
    resource = importlib.resources.files(GIN_PACKAGE)
    for part in name.split("/"):
        resource = resource.joinpath(part)
    return resource if resource.is_file() else None


def packaged_gin_names():
    """The names of the shipped gin files, e.g. ["ablations/equal_lr.gin", "base.gin", ...]."""
    names, folders = [], [("", importlib.resources.files(GIN_PACKAGE))]
    while folders:
        prefix, folder = folders.pop()
        for entry in folder.iterdir():
            if entry.is_dir() and not entry.name.startswith("__"):
                folders.append((f"{prefix}{entry.name}/", entry))
            elif entry.name.endswith(".gin"):
                names.append(prefix + entry.name)
    return sorted(names)


def resolve_gin_file(name):
    """A path as given if it exists, else the shipped gin file `name` (with .gin added if missing).

    Returns a path for gin to open: the file's own path where the package is on disk, else its name
    (read through the reader `sagan_tf.config` registers)."""
    names = [name] if name.endswith(".gin") else [name, name + ".gin"]
    for candidate in names:
        if os.path.isfile(candidate):
            return candidate
        resource = packaged_gin_file(candidate)
        if resource is not None:
            return str(resource) if os.path.isfile(str(resource)) else candidate
    raise ConfigError(f"gin file {name!r} not found (looked in . and the shipped configs: "
                      f"{', '.join(packaged_gin_names())}).")
