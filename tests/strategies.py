"""One MirroredStrategy per test process: separate instances over the same devices reuse
collective instance keys, and their all-reduces then collide."""

import functools

import tensorflow as tf


@functools.lru_cache(maxsize=None)
def mirrored():
    return tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
