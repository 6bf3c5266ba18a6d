"""Strategy factory: default, mirrored, multi_worker, tpu."""

import json
import os

import tensorflow as tf


def _configure_cpu_devices(count):
    cpus = tf.config.list_physical_devices("CPU")
    try:
        tf.config.set_logical_device_configuration(
            cpus[0], [tf.config.LogicalDeviceConfiguration() for _ in range(count)]
        )
    except RuntimeError:  # already initialised: keep what exists
        pass
    return [d.name for d in tf.config.list_logical_devices("CPU")][:count]


def get_strategy(name="default", num_cpu_devices=0, tpu=None):
    """Returns a `tf.distribute.Strategy`.

    Args:
        name: "default" (one device), "mirrored" (all local GPUs, or `num_cpu_devices` logical CPU
            devices when there is no GPU), "multi_worker" (MultiWorkerMirroredStrategy from
            $TF_CONFIG), or "tpu".
        num_cpu_devices: for "mirrored" without GPUs: how many logical CPU devices to create.
        tpu: TPU name or address for "tpu" (None: the environment's).
    """
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        gpus = tf.config.list_physical_devices("GPU")
        if gpus:
            return tf.distribute.MirroredStrategy()
        devices = _configure_cpu_devices(max(num_cpu_devices, 1))
        return tf.distribute.MirroredStrategy(devices)
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError("The multi_worker strategy needs $TF_CONFIG (cluster and task) to be set.")
        json.loads(os.environ["TF_CONFIG"])  # fail here, with the JSON error, if it is malformed
        if num_cpu_devices:
            _configure_cpu_devices(num_cpu_devices)
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=tpu)
            tf.config.experimental_connect_to_cluster(resolver)
            tf.tpu.experimental.initialize_tpu_system(resolver)
        except (ValueError, RuntimeError, tf.errors.NotFoundError) as error:
            raise ValueError(f"No TPU found (tpu={tpu!r}): {error}") from error
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(
        "Unknown strategy; expected default, mirrored, multi_worker or tpu. "
        f"Received: `strategy={name!r}`"
    )
