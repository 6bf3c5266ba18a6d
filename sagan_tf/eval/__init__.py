"""Evaluation: tensorflow-gan's metric functions (through `sagan_tf.eval.tfgan`)."""
