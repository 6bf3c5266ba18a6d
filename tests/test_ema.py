"""The generator's exponential moving average (`SAGAN.ema_decay`, `SAGAN.ema_start_step`) against a hand
computation, on one device and under MirroredStrategy with two replicas; and the first of those steps,
which must be the same step on both (gradients aggregated over the global batch)."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies
from test_networks import plain_and_fused_generators
from test_spectral_norm import _normalized_sigma

from sagan_tf import compat
from sagan_tf.layers import spectral_norm
from sagan_tf.models import Discriminator, Generator
from sagan_tf.models.sagan import SAGAN, standing_statistics

DECAY, START, STEPS = 0.75, 2, 4


def _model(ema_decay=DECAY, ema_start_step=START):
    generator = Generator(resolution=16, num_classes=3, base_channels=4, channel_multipliers=(4, 2, 1),
                          attention_resolutions=(8,))
    discriminator = Discriminator(resolution=16, num_classes=3, base_channels=4, channel_multipliers=(1, 2, 2),
                                  attention_resolutions=(8,))
    return SAGAN(generator, discriminator, ema_decay=ema_decay, ema_start_step=ema_start_step, seed=7)


def _expected_ema(history, decay, start):
    """The EMA by hand from the generator's weights before training (`history[0]`) and after each step: a copy
    while the step is at most `start`, then decay * shadow + (1 - decay) * weight, in float32."""
    shadow = [w.copy() for w in history[0]]
    decay = np.float32(decay)
    for step, weights in enumerate(history[1:], start=1):
        if step <= start:
            shadow = [w.copy() for w in weights]
        else:
            shadow = [decay * s + (np.float32(1.0) - decay) * w for s, w in zip(shadow, weights)]
    return shadow


def _train(strategy, initial, images, labels, steps=STEPS, **model_args):
    """Builds a model under `strategy` with the `initial` (generator, discriminator) weights, trains `steps`
    steps on the same global batch; returns (model, [generator weights before and after each step],
    [EMA weights after each step], (the first step's outputs averaged over replicas, every G and D weight
    after it))."""
    with strategy.scope():
        model = _model(**model_args)
        model.build_all()
        model.compile(keras.optimizers.SGD(0.1), keras.optimizers.SGD(0.1))
        model.generator.set_weights(initial[0])
        model.discriminator.set_weights(initial[1])
        for shadow, weight in zip(model._ema_weights, initial[0]):
            shadow.assign(weight)  # the EMA starts from the generator it was built with
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).batch(len(images))
    batch = next(iter(strategy.experimental_distribute_dataset(dataset)))
    step = tf.function(lambda data: strategy.run(model.train_step, args=(data,)), autograph=False)  # as trained
    history, ema, first = [model.generator.get_weights()], [], None
    for _ in range(steps):
        outputs = step(batch)
        if first is None:
            first = ({k: float(strategy.reduce("MEAN", v, axis=None)) for k, v in outputs.items()},
                     [w.numpy() for w in model.generator.weights + model.discriminator.weights])
        history.append(model.generator.get_weights())
        ema.append(model.sampling_generator.get_weights())
    return model, history, ema, first


@pytest.fixture(scope="module")
def runs():
    """The same 4 steps from the same weights on one device and on two mirrored replicas (shared)."""
    keras.utils.set_random_seed(11)
    images = tf.random.uniform((8, 16, 16, 3), -1, 1, seed=1)
    labels = tf.constant([0, 1, 2, 0, 1, 2, 0, 1])
    init = _model()
    init.build_all()
    initial = (init.generator.get_weights(), init.discriminator.get_weights())
    return {"initial": initial[0] + initial[1],  # every G and D weight before training
            "single": _train(tf.distribute.get_strategy(), initial, images, labels),
            "mirrored": _train(strategies.mirrored(), initial, images, labels)}


def _assert_close(got, expected, variables, rtol, atol):
    assert len(got) == len(expected) == len(variables)
    for a, b, variable in zip(got, expected, variables):
        np.testing.assert_allclose(a, b, rtol=rtol, atol=atol, err_msg=variable.path)


def _averaged(weights, variables):
    """`weights` without the spectral-norm u and sigma, which each sync sets by power iteration on the averaged
    kernels (tested below), and the matching `variables`."""
    kept = [(w, v) for w, v in zip(weights, variables) if not v.path.endswith(("/u", "/sigma"))]
    return [w for w, _ in kept], [v for _, v in kept]


@pytest.mark.parametrize("strategy", ["single", "mirrored"])
def test_ema_after_each_step_is_the_hand_computed_average(runs, strategy):
    model, history, ema, _ = runs[strategy]
    variables = model.generator.weights
    # The weights moved at every step, so a wrong decay or start step shows.
    for before, after in zip(history, history[1:]):
        assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    for step in range(1, STEPS + 1):
        got, kept = _averaged(ema[step - 1], variables)
        if step <= START:  # a copy, bit for bit
            for a, b in zip(got, _averaged(history[step], variables)[0]):
                np.testing.assert_array_equal(a, b)
        expected = _averaged(_expected_ema(history[: step + 1], DECAY, START), variables)[0]
        _assert_close(got, expected, kept, 1e-6, 1e-7)
    # The shadows themselves average every weight, spectral-norm u and sigma included.
    _assert_close([s.numpy() for s in model._ema_weights], _expected_ema(history, DECAY, START), variables, 1e-6, 1e-7)
    for wrong_decay, wrong_start in ((0.5, START), (DECAY, START - 1), (DECAY, START + 1)):
        wrong = _averaged(_expected_ema(history, wrong_decay, wrong_start), variables)[0]
        assert any(not np.allclose(w, e, rtol=1e-4, atol=1e-6) for w, e in zip(wrong, _averaged(ema[-1], variables)[0]))


def test_mirrored_ema_equals_the_single_device_ema(runs):
    mirrored, _, mirrored_ema, _ = runs["mirrored"]
    single, _, single_ema, _ = runs["single"]
    # Both replicas hold the same shadow (only_first_replica aggregation), and the synced EMA generator's u
    # vectors (set by power iteration in cross-replica context) are the same on both.
    u_vectors = [w for w in mirrored.sampling_generator.weights if w.path.endswith("/u")]
    assert u_vectors
    for variable in [*mirrored._ema_weights, *u_vectors]:
        first, second = (v.numpy() for v in strategies.mirrored().experimental_local_results(variable.value))
        np.testing.assert_array_equal(first, second)
    # The replicas' weights are the single device's up to the all-reduce's summation order, so the EMAs are too.
    for step in range(STEPS):
        _assert_close(mirrored_ema[step], single_ema[step], single.generator.weights, 1e-5, 1e-6)


def test_mirrored_step_equals_single_device_step(runs):
    """The first step of the runs above: the same losses and the same update on two replicas as on one."""
    single, _, _, (single_values, single_weights) = runs["single"]
    _, _, _, (mirrored_values, mirrored_weights) = runs["mirrored"]
    for name in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(mirrored_values[name], single_values[name], rtol=1e-4, atol=1e-5, err_msg=name)
    every = single.generator.weights + single.discriminator.weights
    assert len(single_weights) == len(mirrored_weights) == len(every) == len(runs["initial"])
    for a, b, w0, variable in zip(single_weights, mirrored_weights, runs["initial"], every):
        update = np.abs(a - w0).max()
        # Summation order differs across replicas: allow float noise, not a wrongly scaled update
        # (averaging over the local instead of the global batch would be off by 100%). The floor
        # covers weights whose true gradient is 0 (conv biases before batch norm): noise only.
        assert np.abs(b - a).max() <= 0.02 * update + 2e-5, variable.path
    generator_count = len(single.generator.weights)
    assert any(not np.allclose(a, w0) for a, w0 in zip(single_weights[:generator_count], runs["initial"]))
    # g_grad_norm is the norm of G's gradient: with SGD(0.1) the trainable weights moved by 0.1 * gradient.
    trainable = [any(w is v for v in single.generator.trainable_weights) for w in single.generator.weights]
    moved = [a - w0 for a, w0, t in zip(single_weights[:generator_count], runs["initial"], trainable) if t]
    expected = np.sqrt(sum(np.sum(m.astype(np.float64) ** 2) for m in moved)) / 0.1
    np.testing.assert_allclose(single_values["g_grad_norm"], expected, rtol=0.02)
    # Under a strategy it is each replica's share times the replica count: an estimate, larger by the batch noise.
    assert expected <= mirrored_values["g_grad_norm"] <= 2 * expected


def test_ema_generator_s_spectral_norms_are_those_of_its_own_kernels():
    """The EMA generator copies averaged weights, u vectors included: here (ema_start_step=0, untrained) the
    initial random u, of length about sqrt(out) and no singular vector of the kernel. Each sync sets u by
    power iteration on the averaged kernel, so every normalised kernel has spectral norm 1, and the shadow
    weights stay as they were."""
    model = _model(ema_start_step=0)
    model.build_all()
    shadows = [s.numpy().copy() for s in model._ema_weights]
    generator = model.sampling_generator
    layers = spectral_norm.spectral_norm_layers(generator)
    assert len(layers) == sum(w.path.endswith("/u") for w in generator.weights) > 5
    for layer in layers:
        top = _normalized_sigma(layer)
        assert 0.999 < top < 1.05, (layer.path, top)  # the power iteration approaches sigma from below
    for shadow, before in zip(model._ema_weights, shadows):
        np.testing.assert_array_equal(shadow.numpy(), before)


def _standing_model(batches, strategy=None):
    """An untrained model whose EMA started at step 0 (the EMA generator averages the initial weights), its
    standing statistics measured on `batches` batches of 4."""
    with (strategy or tf.distribute.get_strategy()).scope():
        keras.utils.set_random_seed(5)
        model = _model(ema_start_step=0)
        model.ema_standing_batches, model.ema_standing_batch_size = batches, 4
        model.build_all()
    return model


def _moving(generator):
    return {w.path: w.numpy() for w in generator.weights if w.path.endswith(("moving_mean", "moving_variance"))}


def test_standing_statistics_are_the_mean_of_each_layer_s_batch_statistics():
    """`SAGAN(ema_standing_batches=N)`: the EMA generator's batch-norm statistics become the mean over N
    training-mode batches (stateless seeds 0..N-1) of each layer's batch statistics; nothing else moves: the
    other weights and the spectral-norm u vectors and sigmas are those of the plain sync."""
    plain = _standing_model(0)
    reference = {w.path: w.numpy() for w in plain.sampling_generator.weights}
    standing = _standing_model(3)
    generator = standing.sampling_generator
    got = _moving(generator)
    assert len(got) >= 6
    for w in generator.weights:
        if w.path not in got:
            np.testing.assert_array_equal(w.numpy(), reference[w.path], err_msg=w.path)
    # Each batch alone, by a momentum-0 update on a fresh sync: the batch statistics of each layer.
    per_batch = []
    for index in range(3):
        single = plain.sampling_generator
        norms = [layer for layer in compat.sublayers(single) if hasattr(layer, "moving_mean") or
                 hasattr(layer, "batch_norm")]
        for layer in norms:
            layer.momentum = 0.0
        z = tf.random.stateless_normal((4, single.dim_z), seed=(index, 0))
        labels = tf.random.stateless_uniform((4,), seed=(index, 1), maxval=3, dtype="int32")
        single(z, labels, training=True)
        for layer in norms:
            layer.momentum = 0.99
        per_batch.append(_moving(single))
    assert not np.allclose(per_batch[0][next(iter(got))], per_batch[1][next(iter(got))])
    for path, value in got.items():
        np.testing.assert_allclose(value, np.mean([b[path] for b in per_batch], axis=0), rtol=1e-5, atol=1e-6,
                                   err_msg=path)
        assert not np.allclose(value, reference[path]), path  # not the averaged moving statistics
    # Measured again at each sync, from the same seeds: the same statistics.
    for path, value in _moving(standing.sampling_generator).items():
        np.testing.assert_array_equal(value, got[path])
    norms = [layer for layer in compat.sublayers(generator) if hasattr(layer, "momentum")]
    assert len(norms) >= 3 and all(layer.momentum == 0.99 for layer in norms)  # put back after the running mean


def test_standing_statistics_put_everything_back_when_a_call_fails(monkeypatch):
    model = _standing_model(3)
    generator = model.sampling_generator
    kept = {w.path: w.numpy() for w in generator.weights}
    calls = []
    original = type(generator).call

    def failing(self, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("second batch")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(type(generator), "call", failing)
    with pytest.raises(RuntimeError, match="second batch"):
        standing_statistics(generator, 3, 4)
    assert len(calls) == 2
    for w in generator.weights:  # statistics, u and sigma as they were before the first call
        np.testing.assert_array_equal(w.numpy(), kept[w.path], err_msg=w.path)
    assert all(layer.momentum == 0.99 for layer in compat.sublayers(generator) if hasattr(layer, "momentum"))


def test_standing_statistics_under_two_mirrored_replicas_equal_one_device_s():
    """Sampling syncs in cross-replica context (periodic evaluation under a strategy): the statistics are
    those of one device, and both replicas hold them."""
    single = _moving(_standing_model(2).sampling_generator)
    model = _standing_model(2, strategies.mirrored())
    generator = model.sampling_generator
    for w in generator.weights:
        if w.path in single:
            first, second = (v.numpy() for v in strategies.mirrored().experimental_local_results(w.value))
            np.testing.assert_array_equal(first, second)
            np.testing.assert_allclose(first, single[w.path], rtol=1e-5, atol=1e-6, err_msg=w.path)


def test_standing_statistics_settings_are_checked_and_kept_in_the_config():
    for bad in ({"ema_standing_batches": -1}, {"ema_standing_batches": 1.5}, {"ema_standing_batch_size": 0}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            _model().__class__(_model().generator, _model().discriminator, **bad)
    model = _standing_model(3)
    config = model.get_config()
    assert (config["ema_standing_batches"], config["ema_standing_batch_size"]) == (3, 4)
    again = SAGAN.from_config(config)
    assert (again.ema_standing_batches, again.ema_standing_batch_size) == (3, 4)


def test_standing_statistics_of_fused_batch_norms_equal_the_unfused_ones():
    """With `Generator.bn_fused`, the training-mode calls normalise in the fused op and update the moving
    statistics there: the running mean over the batches still reaches every layer (float32, same weights)."""
    plain, fused = plain_and_fused_generators(seed=1)
    before = _moving(plain)
    for generator in (plain, fused):
        standing_statistics(generator, 3, 8)
    got, expected = _moving(fused), _moving(plain)
    assert len(got) == 2 * (2 * len(plain.blocks) + 1)
    for path, value in expected.items():
        assert not np.allclose(value, before[path]), path
        np.testing.assert_allclose(got[path], value, rtol=1e-4, atol=1e-6, err_msg=path)
