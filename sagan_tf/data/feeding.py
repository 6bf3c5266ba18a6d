"""Feeding a step's per-replica batches from one checkpointable tf.data iterator per worker.

`strategy.distribute_datasets_from_function` gives an iterator that `tf.train.Checkpoint` cannot save
under MirroredStrategy and MultiWorkerMirroredStrategy, so a resumed multi-replica run would read its
data from the start again. `ReplicaFeed` reads the same per-worker dataset (the same `InputContext`,
the same elements in the same order: consecutive per-replica batches go to the worker's replicas in
turn) through a plain tf.data iterator, which checkpoints its exact position, and hands them to the
replicas with `experimental_distribute_values_from_function`. TPUs keep the distributed iterator (their
infeed needs it); their input position is not checkpointed.
"""

import tensorflow as tf


def _worker(strategy):
    """(this worker's index, the number of workers) as `distribute_datasets_from_function` numbers them:
    a chief first, then the workers."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return 0, 1
    tasks = resolver.cluster_spec().as_dict()
    chiefs = len(tasks.get("chief", []))
    count = chiefs + len(tasks.get("worker", []))
    index = 0 if resolver.task_type == "chief" else chiefs + int(resolver.task_id)
    return index, count


def input_layout(spec, strategy):
    """(global batch, replicas in sync, input pipelines): what a checkpointed input position depends on."""
    return spec.global_batch_size, strategy.num_replicas_in_sync, _worker(strategy)[1]


def feeds_from_host(strategy):
    """Whether `ReplicaFeed` serves this strategy (every one but a TPU's)."""
    return not isinstance(strategy, tf.distribute.TPUStrategy)


class ReplicaFeed:
    """The training input of an `InputSpec` under `strategy`: `next()` (in a tf.function) gives one step's
    distributed batch; `iterator` is the tf.data iterator to checkpoint."""

    def __init__(self, spec, strategy, seed=None, deterministic=False):
        self.strategy = strategy
        index, count = _worker(strategy)
        self.local_replicas = strategy.num_replicas_in_sync // count
        context = tf.distribute.InputContext(num_input_pipelines=count, input_pipeline_id=index,
                                             num_replicas_in_sync=strategy.num_replicas_in_sync)
        self.iterator = iter(spec.input_fn(context, seed, deterministic))

    def next(self):
        batches = [next(self.iterator) for _ in range(self.local_replicas)]
        if self.strategy.num_replicas_in_sync == 1:
            return batches[0]
        local = self.local_replicas
        return self.strategy.experimental_distribute_values_from_function(
            lambda context: batches[context.replica_id_in_sync_group % local])
