"""Strategy factory: default, mirrored, multi_worker, tpu. TensorFlow is imported when a strategy is made:
`check_environment` runs before it starts."""

import json
import os

from sagan_tf.commands import UserError


class StrategyError(UserError):
    """A strategy this machine or environment cannot give."""


def _configure_cpu_devices(count):
    import tensorflow as tf  # noqa: PLC0415

    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:  # already initialised: keep what exists
        pass
    return [d.name for d in tf.config.list_logical_devices("CPU")][:count]


def check_environment(name):
    """Raises StrategyError if strategy `name` needs what the environment lacks: a valid $TF_CONFIG for
    "multi_worker", a known name. No TensorFlow (the train command calls it before TensorFlow starts)."""
    if name not in ("default", "mirrored", "multi_worker", "tpu"):
        raise StrategyError(f"unknown strategy {name!r}", "expected default, mirrored, multi_worker or tpu")
    if name != "multi_worker":
        return
    if "TF_CONFIG" not in os.environ:
        raise StrategyError("--strategy=multi_worker needs $TF_CONFIG, which is not set",
                            'set TF_CONFIG to {"cluster": {"worker": [...]}, "task": {"type": "worker", '
                            '"index": N}} on every worker, or use --strategy=mirrored on one machine')
    try:
        cluster = json.loads(os.environ["TF_CONFIG"])
    except json.JSONDecodeError as error:
        raise StrategyError(f"$TF_CONFIG is not valid JSON: {error}", "see docs/training.md") from None
    if not isinstance(cluster, dict) or "cluster" not in cluster or "task" not in cluster:
        raise StrategyError("$TF_CONFIG needs a \"cluster\" and a \"task\"", "see docs/training.md")


def get_strategy(name="default", num_cpu_devices=0, tpu=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: "default" (one device), "mirrored" (all local GPUs, or `num_cpu_devices` logical CPU
            devices when there is no GPU), "multi_worker" (MultiWorkerMirroredStrategy from
            $TF_CONFIG), or "tpu".
        num_cpu_devices: for "mirrored" without GPUs: how many logical CPU devices to create.
        tpu: TPU name or address for "tpu" (None: the environment's).
    """
    import tensorflow as tf  # noqa: PLC0415

    check_environment(name)
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = _configure_cpu_devices(max(num_cpu_devices, 1))
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if num_cpu_devices:
            _configure_cpu_devices(num_cpu_devices)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.NotFoundError) as error:
            where = f"--tpu={tpu}" if tpu else "this machine"
            raise StrategyError(f"no TPU found at {where}: {' '.join(str(error).split())}",
                                "pass --tpu=NAME of a reachable TPU, or use --strategy=mirrored or default") from None
        return tf.distribute.TPUStrategy(resolver)
