"""The Keras conventions: a SAGAN saved as .keras loads compiled, and `fit` continues from it."""

import keras
import numpy as np
import tensorflow as tf

from sagan_tf import Discriminator, Generator
from sagan_tf.models.sagan import SAGAN


def _data():
    rng = np.random.RandomState(0)
    images = rng.uniform(-1, 1, (16, 32, 32, 1)).astype("float32")
    labels = rng.randint(0, 3, 16).astype("int32")
    return tf.data.Dataset.from_tensor_slices((images, labels)).batch(4)


def test_keras_file_round_trip_loads_compiled_and_fit_continues(tmp_path):
    keras.utils.set_random_seed(0)
    model = SAGAN(Generator(resolution=32, num_classes=3, base_channels=4, out_channels=1, attention_resolutions=()),
                  Discriminator(resolution=32, num_classes=3, base_channels=4, attention_resolutions=()))
    model.build_all(1)
    model.compile(keras.optimizers.Adam(1e-4, beta_1=0.0, beta_2=0.9, epsilon=1e-8),
                  keras.optimizers.Adam(4e-4, beta_1=0.0, beta_2=0.9))
    model.fit(_data(), epochs=1, verbose=0)
    path = str(tmp_path / "sagan.keras")
    model.save(path)

    loaded = keras.saving.load_model(path)
    assert loaded.compiled
    # Both optimisers come back with their settings and their state (step count and Adam slots).
    assert loaded.g_optimizer.epsilon == 1e-8 and float(loaded.d_optimizer.learning_rate) == np.float32(4e-4)
    assert int(loaded.g_optimizer.iterations) == int(loaded.d_optimizer.iterations) == 4
    for saved, restored in zip(model.d_optimizer.variables, loaded.d_optimizer.variables):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())
    for saved, restored in zip(model.generator.weights, loaded.generator.weights):
        np.testing.assert_array_equal(saved.numpy(), restored.numpy())

    before = [w.numpy().copy() for w in loaded.generator.trainable_weights]
    history = loaded.fit(_data(), epochs=1, verbose=0)
    assert int(loaded.g_optimizer.iterations) == 8
    assert np.isfinite(history.history["g_loss"][-1])
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, loaded.generator.trainable_weights))


def test_an_uncompiled_model_saves_without_a_compile_config(tmp_path):
    model = SAGAN(Generator(resolution=32, num_classes=0, base_channels=4, out_channels=1, attention_resolutions=()),
                  Discriminator(resolution=32, num_classes=0, base_channels=4, attention_resolutions=()))
    model.build_all(1)
    assert model.get_compile_config() is None
    model.save(str(tmp_path / "plain.keras"))
    assert not keras.saving.load_model(str(tmp_path / "plain.keras")).compiled
