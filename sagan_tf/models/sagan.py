"""The SAGAN training model: TTUR updates of D and G with the hinge loss under any strategy."""

import keras
import tensorflow as tf
from keras import ops

from sagan_tf import compat, configurables, losses
from sagan_tf.layers import spectral_norm
from sagan_tf.layers.normalization import ConditionalBatchNorm

_TRACKED = ("d_loss", "g_loss", "d_real", "d_fake", "g_grad_norm")
EMA_POWER_ITERATIONS = 50  # power iterations that set the EMA generator's u vectors at each sync


@configurables.configurable
@keras.saving.register_keras_serializable(package="sagan_tf")
class SAGAN(keras.Model):
    """Holds the generator, the discriminator, their optimisers and the generator's EMA.

    `train_step(images, labels)` does `disc_steps` discriminator updates, then one generator
    update. Per-example losses are averaged over the GLOBAL batch, so gradients summed by the
    optimiser across replicas are those of the global-batch mean. The discriminator sees real and
    fake images in one call (one spectral-norm u update per D step). Fresh z every step, drawn
    from a `keras.random.SeedGenerator`.

    Args:
        generator, discriminator: the networks.
        loss: "hinge" (the paper), "non_saturating" or "wasserstein".
        disc_steps: discriminator updates per generator update (the paper: 1).
        fake_labels: "data" (fake images get the real batch's labels) or "sampled" (uniform).
        ema_decay: None (the paper) or the decay of an exponential moving average of G's
            weights, used for samples, evaluation and export.
        ema_start_step: generator steps before the EMA starts averaging (the averages copy G's weights
            until then; the EMA generator's spectral-norm u vectors are set at each sync).
        ema_standing_batches: 0 (default): the EMA generator's batch-norm statistics are the averages of
            G's moving statistics, like its other weights. N > 0: each time `sampling_generator` syncs
            it, they are measured again on the averaged weights ("standing statistics", as BigGAN-PyTorch's
            sampling offers): the mean of the batch statistics of N training-mode batches of
            `ema_standing_batch_size` draws (fixed seeds: fresh z, uniform labels), each layer's own.
        ema_standing_batch_size: the size of those batches.
        seed: seed of z; None draws it from Keras's global seed, which the trainer sets to the
            run seed (`train.seed`).
        joint_discriminator: D sees the real and fake batches in one call on their concatenation
            (one spectral-norm u update per D step, larger matrix products); False: two calls.
        d_sn_update_in_g_step: also advance D's spectral-norm power iteration when the generator
            step calls D (BigGAN-PyTorch does; the released SAGAN code and the default do not).
    """

    def __init__(
        self,
        generator,
        discriminator,
        loss="hinge",
        disc_steps=1,
        fake_labels="data",
        ema_decay=None,
        ema_start_step=0,
        ema_standing_batches=0,
        ema_standing_batch_size=64,
        seed=None,
        joint_discriminator=True,
        d_sn_update_in_g_step=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if disc_steps < 1:
            raise ValueError(f"`disc_steps` must be >= 1. Received: `disc_steps={disc_steps}`")
        if fake_labels not in ("data", "sampled"):
            raise ValueError(f"`fake_labels` must be 'data' or 'sampled'. Received: {fake_labels!r}")
        if ema_decay is not None and not 0.0 < ema_decay < 1.0:
            raise ValueError(f"`ema_decay` must be in (0, 1). Received: `ema_decay={ema_decay}`")
        for name, value, least in (("ema_standing_batches", ema_standing_batches, 0),
                                   ("ema_standing_batch_size", ema_standing_batch_size, 1)):
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"`{name}` must be an int >= {least}. Received: `{name}={value!r}`")
        self.generator = generator
        self.discriminator = discriminator
        self.loss_name = loss
        self.d_loss_fn, self.g_loss_fn = losses.get_losses(loss)
        self.disc_steps = disc_steps
        self.fake_labels = fake_labels
        self.ema_decay = ema_decay
        self.ema_start_step = ema_start_step
        self.ema_standing_batches = ema_standing_batches
        self.ema_standing_batch_size = ema_standing_batch_size
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.joint_discriminator = joint_discriminator
        self.d_sn_update_in_g_step = bool(d_sn_update_in_g_step)
        self.trackers = {name: keras.metrics.Mean(name=name) for name in _TRACKED}
        self.ema_generator = None

    @property
    def num_classes(self):
        return self.generator.num_classes

    def build_all(self, channels=3):
        """Creates every variable (call inside the strategy scope, before training)."""
        self.generator.build()
        self.discriminator.build((None, self.generator.resolution, self.generator.resolution, channels))
        if self.ema_decay is not None and self.ema_generator is None:
            self.ema_generator = self.generator.__class__.from_config(self.generator.get_config())
            self.ema_generator.build()
            self._ema_weights = [
                keras.Variable(w.numpy(), trainable=False, name="ema", aggregation="only_first_replica")
                for w in self.generator.weights
            ]
            self.sync_ema_generator()
        self.built = True

    def compile(self, g_optimizer, d_optimizer, **kwargs):
        """Both optimisers are built here, so call this inside the strategy scope."""
        super().compile(**kwargs)
        self.g_optimizer, self.d_optimizer = g_optimizer, d_optimizer
        self.g_optimizer.build(self.generator.trainable_variables)
        self.d_optimizer.build(self.discriminator.trainable_variables)

    def get_compile_config(self):
        """Both optimisers' configs, so that `keras.saving.load_model` returns a compiled model."""
        if getattr(self, "g_optimizer", None) is None:
            return None
        return {"g_optimizer": keras.optimizers.serialize(self.g_optimizer),
                "d_optimizer": keras.optimizers.serialize(self.d_optimizer)}

    def compile_from_config(self, config):
        """Rebuilds both optimisers from `get_compile_config`'s output and compiles (their slots are then
        restored with the weights)."""
        self.compile(keras.optimizers.deserialize(config["g_optimizer"]),
                     keras.optimizers.deserialize(config["d_optimizer"]))

    @property
    def metrics(self):
        return list(self.trackers.values())

    def tracked_results(self):
        """What `train_step` returns: each tracker's mean since its last reset (per replica under a strategy)."""
        return {name: tracker.result() for name, tracker in self.trackers.items()}

    @staticmethod
    def _replica_slice(values, batch):
        """Every replica draws the global batch's values with the same seed and keeps its own
        slice: replicas get different z, and N replicas x B/N equal one device x B exactly."""
        context = tf.distribute.get_replica_context()
        start = context.replica_id_in_sync_group * batch
        return values[start : start + batch]

    def sample_z(self, batch):
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        z = keras.random.normal((batch * replicas, self.generator.dim_z), seed=self.seed_generator)
        return self._replica_slice(z, batch)

    def _fake_labels(self, labels, batch):
        if not self.num_classes:
            return None
        if self.fake_labels == "data":
            return labels
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        sampled = keras.random.randint((batch * replicas,), 0, self.num_classes, seed=self.seed_generator)
        return self._replica_slice(sampled, batch)

    def train_step(self, data):
        images, labels = data
        batch = ops.shape(images)[0]
        replicas = tf.distribute.get_replica_context().num_replicas_in_sync
        global_batch = batch * replicas
        cond = self.num_classes > 0
        real_labels = labels if cond else None

        previous_grads = []
        for _ in range(self.disc_steps):
            z, fake_labels = self._after(previous_grads, self.sample_z(batch)), self._fake_labels(labels, batch)
            fakes = self.generator(z, fake_labels, training=True)
            with tf.GradientTape() as tape:
                if self.joint_discriminator:
                    both = ops.concatenate([images, ops.cast(fakes, images.dtype)], axis=0)
                    both_labels = ops.concatenate([real_labels, fake_labels], axis=0) if cond else None
                    logits = self.discriminator(both, both_labels, training=True)
                    real_logits, fake_logits = logits[:batch], logits[batch:]
                else:
                    real_logits = self.discriminator(images, real_labels, training=True)
                    fake_logits = self.discriminator(ops.cast(fakes, images.dtype), fake_labels, training=True)
                d_loss = tf.nn.compute_average_loss(
                    self.d_loss_fn(real_logits, fake_logits), global_batch_size=global_batch
                )
                scaled = self.d_optimizer.scale_loss(d_loss)
            d_vars = self.discriminator.trainable_variables
            previous_grads = tape.gradient(scaled, d_vars)
            self.d_optimizer.apply(previous_grads, d_vars)

        z, fake_labels = self._after(previous_grads, self.sample_z(batch)), self._fake_labels(labels, batch)
        with tf.GradientTape() as tape:
            fakes = self.generator(z, fake_labels, training=True)
            # training=False: the released code updates D's spectral-norm u once per step.
            g_logits = self.discriminator(fakes, fake_labels, training=self.d_sn_update_in_g_step)
            g_loss = tf.nn.compute_average_loss(self.g_loss_fn(g_logits), global_batch_size=global_batch)
            scaled = self.g_optimizer.scale_loss(g_loss)
        g_vars = self.generator.trainable_variables
        g_grads = tape.gradient(scaled, g_vars)
        self.g_optimizer.apply(g_grads, g_vars)
        # This replica's share of G's gradient, unscaled (loss scaling) and times the replica count:
        # the global gradient norm on one device, an estimate of it under a strategy.
        g_grad_norm = tf.linalg.global_norm([ops.cast(g, "float32") for g in g_grads]) / ops.cast(
            self.g_optimizer.scale_loss(1.0), "float32") * replicas
        if self.ema_decay is not None:
            self._update_ema()

        # Each replica's value is its share of the global mean: summing over replicas gives the
        # mean; Mean trackers average, so scale by the replica count.
        values = {
            "d_loss": d_loss,
            "g_loss": g_loss,
            "d_real": ops.sum(real_logits) / ops.cast(global_batch, "float32"),
            "d_fake": ops.sum(fake_logits) / ops.cast(global_batch, "float32"),
        }
        for name, value in values.items():
            self.trackers[name].update_state(value * replicas)
        self.trackers["g_grad_norm"].update_state(g_grad_norm)
        return self.tracked_results()

    @staticmethod
    def _after(tensors, value):
        """`value`, available only once `tensors` are computed. Each G forward pass waits for the previous
        update's gradients: otherwise the graph may start the next pass's generator (which reads no D
        weight) while the previous backward pass still holds its activations, and both sets are alive at
        once (without this, an ImageNet 128 step at batch 8 peaks about 0.6 GiB higher; CHANGELOG.md)."""
        tensors = [t for t in tf.nest.flatten(tensors, expand_composites=True) if t is not None]
        if not tensors:
            return value
        with tf.control_dependencies(tensors):
            return tf.identity(value)

    def _update_ema(self):
        step = ops.cast(self.g_optimizer.iterations, "float32")
        decay = ops.where(step <= self.ema_start_step, 0.0, self.ema_decay)
        for shadow, weight in zip(self._ema_weights, self.generator.weights):
            value = ops.cast(weight, shadow.dtype)
            shadow.assign(decay * shadow + (1.0 - decay) * value)

    def sync_ema_generator(self):
        """Copies the averaged weights into `ema_generator`, then sets each of its spectral-norm u vectors by
        power iteration on its own averaged kernel (an average of u vectors is neither of unit length nor,
        once u has turned or when the average includes the initial random u, the averaged kernel's top
        singular vector). Call outside the train step."""
        if self.ema_generator is not None:
            for target, shadow in zip(self.ema_generator.weights, self._ema_weights):
                target.assign(shadow.value)
            for layer in spectral_norm.spectral_norm_layers(self.ema_generator):
                layer.refresh(EMA_POWER_ITERATIONS)

    @property
    def sampling_generator(self):
        """The EMA generator (synced, with standing statistics if `ema_standing_batches`) when enabled, else
        the generator. (`sagan_tf.eval.periodic` syncs the EMA generator and measures the standing statistics on
        the network it scores, in a mixed-precision run a float32 copy, instead.)"""
        if self.ema_generator is None:
            return self.generator
        self.sync_ema_generator()
        if self.ema_standing_batches:
            standing_statistics(self.ema_generator, self.ema_standing_batches, self.ema_standing_batch_size)
        return self.ema_generator

    def call(self, z, labels=None, training=False):
        return self.generator(z, labels, training=training)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "generator": keras.saving.serialize_keras_object(self.generator),
                "discriminator": keras.saving.serialize_keras_object(self.discriminator),
                "loss": self.loss_name,
                "disc_steps": self.disc_steps,
                "fake_labels": self.fake_labels,
                "ema_decay": self.ema_decay,
                "ema_start_step": self.ema_start_step,
                "ema_standing_batches": self.ema_standing_batches,
                "ema_standing_batch_size": self.ema_standing_batch_size,
                "joint_discriminator": self.joint_discriminator,
                "d_sn_update_in_g_step": self.d_sn_update_in_g_step,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        networks = {name: keras.saving.deserialize_keras_object(config.pop(name))
                    for name in ("generator", "discriminator")}
        return cls(**networks, **config)


def standing_statistics(generator, batches, batch_size):
    """Sets the moving statistics of every batch norm in `generator` to the mean of its batch statistics over
    `batches` training-mode calls on `batch_size` draws each (z from the standard normal, labels uniform over
    the classes; stateless seeds 0, 1, ..., so the result depends on the weights only). The calls change nothing
    else: each spectral-norm layer's u vector and sigma are put back before each call and after the last, so
    every batch sees the same normalised kernels; if a call fails, the statistics are put back too. Call outside
    the train step."""
    norms = [layer for layer in compat.sublayers(generator)
             if isinstance(layer, (ConditionalBatchNorm, keras.layers.BatchNormalization))]
    power = spectral_norm.spectral_norm_layers(generator)
    kept = [(layer.u.numpy(), layer.sigma.numpy()) for layer in power]
    momenta = [layer.momentum for layer in norms]
    statistics = [w for layer in norms for w in layer.weights if not w.trainable]  # the moving statistics
    before = [w.numpy() for w in statistics]

    def put_back():
        for layer, (u, sigma) in zip(power, kept):
            layer.u.assign(u)
            layer.sigma.assign(sigma)

    try:
        for index in range(batches):
            put_back()  # each batch from the synced u: a training call takes one power iteration from it
            for layer in norms:
                layer.momentum = index / (index + 1)  # a running mean: the first batch replaces what was there
            z = tf.random.stateless_normal((batch_size, generator.dim_z), seed=(index, 0))
            labels = None
            if generator.num_classes:
                labels = tf.random.stateless_uniform((batch_size,), seed=(index, 1), maxval=generator.num_classes,
                                                     dtype="int32")
            generator(z, labels, training=True)
    except BaseException:
        for variable, value in zip(statistics, before):  # not a partial mean
            variable.assign(value)
        raise
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum
        put_back()
