"""The packaged gin files parse and build the networks they describe."""

import pathlib

import gin
import numpy as np
import pytest

from sagan_tf import Discriminator, Generator, config, gin_registry  # noqa: F401  (every configurable)

GIN_DIR = pathlib.Path(__file__).resolve().parents[1] / "gin"


CONFIGS = sorted(set(GIN_DIR.glob("*.gin")) - {GIN_DIR / "base.gin"}) + sorted(GIN_DIR.glob("experiments/*.gin"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.name)
def test_every_config_parses_and_builds_its_networks(path):
    config.parse([str(path.relative_to(GIN_DIR))])
    resolution = gin.query_parameter("%RESOLUTION")
    assert resolution in (32, 64, 128)
    assert gin.query_parameter("build_input.global_batch_size") >= 32
    Generator(num_classes=10, resolution=resolution)
    Discriminator(num_classes=10, resolution=resolution)


def _built_configs(files):
    """{(part, key): value} of the networks and the two optimizers built from `files` alone."""
    gin.clear_config()
    config.parse(files)
    parts = {"Generator": Generator().get_config(), "Discriminator": Discriminator().get_config()}
    for scope in ("generator", "discriminator"):
        with gin.config_scope(scope):
            optimizer = gin.get_configurable("sagan_tf.optimizers.FusedAdam")().get_config()
            parts[f"{scope}/Adam"] = {k: v for k, v in optimizer.items() if k != "name"}  # adam_1, adam_2, ...
    return {(part, key): value for part, values in parts.items() for key, value in values.items()}


# What each ablation changes in what its base builds (and nothing else). An attention ablation is stacked on a
# base whose attention is elsewhere; each base has the feature map it names.
ABLATIONS = {
    "attention_8.gin": ("imagenet.gin", {"attention_resolutions": (8,)}, {"attention_resolutions": (8,)}, {}),
    "attention_16.gin": ("imagenet.gin", {"attention_resolutions": (16,)}, {"attention_resolutions": (16,)}, {}),
    "attention_32.gin": ("imagenet.gin", {"attention_resolutions": (32,)}, {"attention_resolutions": (32,)}, {}),
    "attention_64.gin": ("imagenet_feat32.gin", {"attention_resolutions": (64,)}, {"attention_resolutions": (64,)},
                         {}),
    "no_attention.gin": ("imagenet.gin", {"attention_resolutions": ()}, {"attention_resolutions": ()}, {}),
    "sn_d_only.gin": ("cifar10.gin", {"use_spectral_norm": False}, {}, {}),
    "equal_lr.gin": ("cifar10.gin", {}, {}, {"learning_rate": 1e-4}),
}


def test_every_ablation_is_in_the_table():
    assert sorted(ABLATIONS) == sorted(p.name for p in (GIN_DIR / "ablations").glob("*.gin"))


@pytest.mark.parametrize("ablation", sorted(ABLATIONS))
def test_an_ablation_changes_what_it_names_and_nothing_else(ablation):
    """The networks and optimizers built from base + ablation differ from those of the base alone in exactly
    the ablation's settings (a binding the base already has, or one that does not reach the built object,
    would show as no change)."""
    base, generator, discriminator, d_optimizer = ABLATIONS[ablation]
    before = _built_configs([base])
    after = _built_configs([base, f"ablations/{ablation}"])
    assert before.keys() == after.keys()
    changed = {key: after[key] for key in after if after[key] != before[key]}
    expected = {**{("Generator", k): v for k, v in generator.items()},
                **{("Discriminator", k): v for k, v in discriminator.items()},
                **{("discriminator/Adam", k): v for k, v in d_optimizer.items()}}
    assert changed.keys() == expected.keys(), changed
    for key, value in expected.items():
        got = tuple(changed[key]) if isinstance(changed[key], list) else changed[key]
        assert got == (pytest.approx(value, rel=1e-6) if isinstance(value, float) else value), (key, got, before[key])


def test_equal_lr_ablation_changes_only_the_discriminator_rate():
    config.parse(["cifar10.gin", "ablations/equal_lr.gin"])
    assert gin.query_parameter("discriminator/sagan_tf.optimizers.FusedAdam.learning_rate") == 1e-4
    assert gin.query_parameter("generator/sagan_tf.optimizers.FusedAdam.learning_rate") == 1e-4


def test_missing_gin_file_names_it():
    with pytest.raises(config.ConfigError, match="'nope.gin' not found"):
        config.parse(["nope.gin"])


def test_imagenet_gin_is_the_paper_setup():
    """imagenet.gin is the paper's headline model (IS 52.52, FID 18.65): Table 1's "SAGAN, feat64" row,
    attention at the 64x64 feature map of G and D; imagenet_feat32.gin is the released code's 32x32 placement."""
    config.parse(["imagenet.gin"])
    g, d = Generator(), Discriminator()
    assert (g.resolution, g.num_classes, g.base_channels, g.attention_resolutions) == (128, 1000, 64, (64,))
    assert g.channel_multipliers == (16, 16, 8, 4, 2, 1)
    assert d.channel_multipliers == (1, 2, 4, 8, 16, 16)
    assert [layer.name for layer in d.attention_layers] == ["attention64"]
    assert d._attention_after == (0,)  # after the first down-block
    assert g._attention_after == (3,)  # after the fourth up-block
    assert g.attention_block_size == d.attention_block_size == 256  # the memory-bounded path at 4,096 queries
    assert d.attention_layers[0].query_block_size == 256
    gin.clear_config()
    config.parse(["imagenet_feat32.gin"])
    g, d = Generator(), Discriminator()
    assert g.attention_resolutions == d.attention_resolutions == (32,)
    assert (d._attention_after, g._attention_after) == ((1,), (2,))


@pytest.mark.parametrize("files, num_classes, g_params, d_params", [
    (["cifar10.gin"], 10, 4.39e6, 4.29e6),
    (["imagenet64.gin"], 1000, 41.6e6, 20.6e6),
    (["imagenet.gin"], 1000, 42.0e6, 39.5e6),
], ids=["32", "64", "128"])
def test_benchmark_configs_have_the_reference_sizes(files, num_classes, g_params, d_params):
    """The three configurations of the speed comparison have BigGAN-PyTorch's SA-GAN parameter counts."""
    config.parse(files)
    resolution = gin.query_parameter("%RESOLUTION")
    count = lambda model: sum(int(np.prod(w.shape)) for w in model.trainable_weights)  # noqa: E731
    generator = Generator(num_classes=num_classes, resolution=resolution)
    generator.build()
    discriminator = Discriminator(num_classes=num_classes, resolution=resolution)
    discriminator.build((None, resolution, resolution, 3))
    assert count(generator) == pytest.approx(g_params, rel=0.003)
    assert count(discriminator) == pytest.approx(d_params, rel=0.003)


@pytest.mark.parametrize("binding, message", [
    ("Generator.base_chanels = 8", "Generator takes no parameter 'base_chanels' (did you mean 'base_channels'?)"),
    ("Discriminator.attention_resolution = (16,)", "did you mean 'attention_resolutions'?"),
    ("generator/sagan_tf.optimizers.FusedAdam.learnin_rate = 1e-3", "did you mean 'learning_rate'?"),
    ("train.num_step = 3", "did you mean 'num_steps'?"),
    ("Generatr.base_channels = 8", "did you mean 'Generator'?"),
])
def test_a_misspelt_binding_is_one_line_naming_it(binding, message):
    with pytest.raises(config.ConfigError) as error:
        config.parse(["synthetic.gin"], [binding])
    assert message in str(error.value) and "\n" not in str(error.value)


def test_keras_base_arguments_and_ablations_still_parse():
    config.parse(["synthetic.gin"], ["Generator.name = 'g'", "Discriminator.dtype = 'float32'"])
    for ablation in sorted((GIN_DIR / "ablations").glob("*.gin")):
        gin.clear_config()
        config.parse(["synthetic.gin", str(ablation)])


def test_the_package_ships_every_file_of_the_gin_folder():
    shipped = config.packaged_gin_names()
    assert shipped == sorted(str(p.relative_to(GIN_DIR)) for p in GIN_DIR.rglob("*.gin"))
    assert config.resolve_gin_file("imagenet").endswith("imagenet.gin")
    assert config.resolve_gin_file("ablations/equal_lr.gin").endswith("equal_lr.gin")
    assert config.packaged_gin_file("../pyproject.toml") is None and config.packaged_gin_file("/etc/passwd") is None


def test_a_users_gin_file_includes_a_shipped_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no gin/ folder here: base.gin comes from the package
    (tmp_path / "mine.gin").write_text("include 'synthetic.gin'\nGenerator.base_channels = 8\n")
    assert config.parse(["mine.gin"]) == ["mine.gin"]
    assert gin.query_parameter("Generator.base_channels") == 8
    assert gin.query_parameter("%RESOLUTION") == 32


def test_isolated_runs_on_an_empty_config_and_restores_the_callers():
    config.parse(["experiments/fashion_mnist_quality.gin"], ["Generator.base_channels = 8"])
    before = gin.config_str()
    with config.isolated():
        assert not config.is_bound("Generator.base_channels")
        config.parse(["synthetic.gin"], ["Generator.base_channels = 4"])
    assert gin.config_str() == before
    assert gin.query_parameter("Generator.base_channels") == 8


def test_bindings_are_read_from_the_config_string():
    config.parse(["cifar10.gin"])
    bindings = config.current_bindings()
    assert any(scope == "discriminator" and selector.endswith("Adam") and parameter == "learning_rate"
               for scope, selector, parameter in bindings)
    assert any(selector.endswith("Generator") and parameter == "base_channels" for _, selector, parameter in bindings)
