"""sagan_tf.optimizers.FusedAdam is Keras's Adam on TensorFlow's fused kernel: the same updates, one op per
variable, on one device and under MirroredStrategy, and the configs' optimiser."""

import gin
import keras
import numpy as np
import pytest
import tensorflow as tf

import strategies
from sagan_tf import config, gin_registry, optimizers  # noqa: F401
from sagan_tf.trainer import TrainConfig

SHAPES = [(3, 3, 4, 8), (8,), (10, 8)]


def _variables():
    rng = np.random.RandomState(0)
    return [keras.Variable(rng.randn(*shape).astype("float32"), name=f"v{i}") for i, shape in enumerate(SHAPES)]


def _gradients(step):
    rng = np.random.RandomState(100 + step)
    grads = [tf.constant(rng.randn(*shape).astype("float32")) for shape in SHAPES[:2]]
    # An embedding's gradient is sparse (rows 1 and 4 looked up).
    rows = tf.constant(rng.randn(2, 8).astype("float32"))
    return grads + [tf.IndexedSlices(rows, tf.constant([1, 4]), tf.constant(SHAPES[2]))]


def _train(optimizer, steps=6):
    variables = _variables()
    for step in range(steps):
        optimizer.apply(_gradients(step), variables)
    slots = [v.numpy() for v in optimizer.variables if "momentum" in v.path or "velocity" in v.path]
    return [v.numpy() for v in variables], slots


@pytest.mark.parametrize("settings", [dict(learning_rate=4e-4, beta_1=0.0, beta_2=0.9),
                                      dict(learning_rate=1e-2, beta_1=0.5, beta_2=0.99, epsilon=1e-8)])
def test_updates_equal_keras_adam(settings):
    fused, slots = _train(optimizers.FusedAdam(**settings))
    plain, plain_slots = _train(keras.optimizers.Adam(**settings))
    start = [v.numpy() for v in _variables()]
    assert len(slots) == len(plain_slots) == 2 * len(SHAPES)
    for got, want, w0 in zip(fused, plain, start):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)
        assert not np.allclose(got, w0)  # the steps moved every variable
    for got, want in zip(slots, plain_slots):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-9)


def _pytorch_adam(learning_rate, beta_1, beta_2, epsilon, steps=6):
    """torch.optim.Adam's update (PyTorch's documented algorithm) in NumPy, on the dense variables of `_train`;
    `epsilon(t)` gives the epsilon of step t (1-based)."""
    variables = [v.numpy().astype(np.float64) for v in _variables()[:2]]
    m = [np.zeros_like(v) for v in variables]
    s = [np.zeros_like(v) for v in variables]
    for step in range(steps):
        t = step + 1
        for i, g in enumerate(_gradients(step)[:2]):
            g = g.numpy().astype(np.float64)
            m[i] = beta_1 * m[i] + (1 - beta_1) * g
            s[i] = beta_2 * s[i] + (1 - beta_2) * g * g
            denominator = np.sqrt(s[i]) / np.sqrt(1 - beta_2 ** t) + epsilon(t)
            variables[i] -= learning_rate / (1 - beta_1 ** t) * m[i] / denominator
    return variables


def test_update_is_pytorchs_with_epsilon_over_sqrt_of_the_bias_correction():
    """Keras's Adam (so FusedAdam) adds epsilon to sqrt(v) before the bias correction, PyTorch after it: Keras's
    step with epsilon e is PyTorch's with epsilon e / sqrt(1 - beta_2^t). At the aligned config's 1e-8 on gradients
    of order 1 the two agree to float precision; with a large epsilon the difference shows."""
    settings = dict(learning_rate=4e-4, beta_1=0.0, beta_2=0.9)
    for epsilon in (1e-8, 0.3):
        fused, _ = _train(optimizers.FusedAdam(epsilon=epsilon, **settings))
        scaled = _pytorch_adam(epsilon=lambda t: epsilon / np.sqrt(1 - 0.9 ** t), **settings)
        plain = _pytorch_adam(epsilon=lambda t: epsilon, **settings)
        for got, want, pytorch in zip(fused, scaled, plain):
            np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-7)
            if epsilon == 0.3:
                assert np.abs(got - pytorch).max() > 1e-5
            else:
                np.testing.assert_allclose(got, pytorch, rtol=1e-6, atol=1e-7)


def test_amsgrad_takes_keras_update():
    fused, _ = _train(optimizers.FusedAdam(1e-2, amsgrad=True))
    plain, _ = _train(keras.optimizers.Adam(1e-2, amsgrad=True))
    for got, want in zip(fused, plain):
        np.testing.assert_array_equal(got, want)


def _graph_ops(optimizer):
    variables = _variables()
    optimizer.build(variables)
    function = tf.function(lambda grads: optimizer.apply(grads, variables))
    graph = function.get_concrete_function([tf.TensorSpec(s, "float32") for s in SHAPES]).graph
    return [op.type for op in graph.get_operations()]


def test_one_fused_op_per_variable_and_a_smaller_graph():
    fused, plain = _graph_ops(optimizers.FusedAdam(1e-3)), _graph_ops(keras.optimizers.Adam(1e-3))
    assert fused.count("ResourceApplyAdam") == len(SHAPES) and "ResourceApplyAdam" not in plain
    assert len(fused) * 2 < len(plain), (len(fused), len(plain))


def test_mirrored_replicas_update_alike_and_as_keras_adam():
    strategy = strategies.mirrored()
    results = {}
    for name, cls in (("fused", optimizers.FusedAdam), ("keras", keras.optimizers.Adam)):
        with strategy.scope():
            variables = _variables()
            optimizer = cls(1e-2, beta_1=0.0, beta_2=0.9)
            optimizer.build(variables)

        @tf.function
        def step(seed):
            def replica_fn():
                replica = tf.cast(tf.distribute.get_replica_context().replica_id_in_sync_group, tf.float32)
                grads = [tf.random.stateless_normal(s, [seed, 0]) * (1.0 + replica) for s in SHAPES]
                optimizer.apply(grads, variables)
            strategy.run(replica_fn)

        for seed in range(4):
            step(tf.constant(seed))
        for v in variables:
            first, second = (t.numpy() for t in strategy.experimental_local_results(v.value))
            np.testing.assert_array_equal(first, second)  # the replicas' copies stay identical
        results[name] = [v.numpy() for v in variables]
    for got, want in zip(results["fused"], results["keras"]):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_configs_train_with_it_and_an_unused_keras_binding_is_an_error():
    config.parse(["synthetic.gin"])
    settings = TrainConfig(input_spec=None)
    for factory, rate in ((settings.generator_optimizer, 1e-4), (settings.discriminator_optimizer, 4e-4)):
        optimizer = factory()
        assert type(optimizer) is optimizers.FusedAdam
        assert (optimizer.learning_rate.numpy(), optimizer.beta_1, optimizer.beta_2) == (np.float32(rate), 0.0, 0.9)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is optimizers.FusedAdam and restored.get_config() == optimizer.get_config()
    gin.clear_config()
    with pytest.raises(config.ConfigError, match="Unused gin binding generator/keras.optimizers.Adam.learning_rate: "
                                                 "train.generator_optimizer is @generator/sagan_tf.optimizers.FusedAdam"):
        config.parse(["synthetic.gin"], ["generator/keras.optimizers.Adam.learning_rate = 2e-4"])
