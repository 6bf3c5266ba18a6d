"""GAN losses as pure functions of discriminator logits. Each returns per-example losses [B];
the model averages them over the GLOBAL batch (`tf.nn.compute_average_loss`).

Hinge (SAGAN, after Lim & Ye 2017 and Tran et al. 2017):
    L_D = E[relu(1 - D(x, y))] + E[relu(1 + D(G(z), y))],   L_G = -E[D(G(z), y)].
"""

from keras import ops


def hinge_discriminator_loss(real_logits, fake_logits):
    return ops.relu(1.0 - real_logits) + ops.relu(1.0 + fake_logits)


def hinge_generator_loss(fake_logits):
    return -fake_logits


def non_saturating_discriminator_loss(real_logits, fake_logits):
    """-log sigmoid(D(x)) - log(1 - sigmoid(D(G(z)))) (Goodfellow et al., 2014)."""
    return ops.softplus(-real_logits) + ops.softplus(fake_logits)


def non_saturating_generator_loss(fake_logits):
    return ops.softplus(-fake_logits)


def wasserstein_discriminator_loss(real_logits, fake_logits):
    return fake_logits - real_logits


def wasserstein_generator_loss(fake_logits):
    return -fake_logits


LOSSES = {
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
    "non_saturating": (non_saturating_discriminator_loss, non_saturating_generator_loss),
    "wasserstein": (wasserstein_discriminator_loss, wasserstein_generator_loss),
}


def get_losses(name="hinge"):
    """(discriminator_loss, generator_loss) functions of a loss by name."""
    if name not in LOSSES:
        raise ValueError(f"Unknown loss; expected one of {sorted(LOSSES)}. Received: `loss={name!r}`")
    return LOSSES[name]
