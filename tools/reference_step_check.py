"""Checks that a sagan_tf config computes BigGAN-PyTorch's SA-GAN training step, number for number.

Two halves, each run with its own Python:

    <torch venv>/bin/python tools/reference_step_check.py --biggan_dir=DIR --write=reference_step.npz
    .venv/bin/python tools/reference_step_check.py --read=reference_step.npz \
        --gin_file=experiments/fashion_mnist_aligned.gin

The first builds the reference's networks as the parity runs trained them (32x32, 3 channels, attention at
16x16 in G and after D's first block, spectral norm, BigGAN's initialisation; --ch sets the width), sets every
attention gamma and bias to non-zero values and every spectral-norm vector to its exact singular vector, then
takes --steps of the reference's training step (D on the concatenated [fake; real] batch, hinge loss, then a G
step through D in training mode) with plain SGD on given z, labels and real batches. It writes the start state,
those inputs, the losses and the end state. DIR holds BigGAN-PyTorch's sources (BigGAN.py, layers.py).

The second builds the networks from the gin config, loads the start state, takes the same steps through
`SAGAN.train_step` with the same z and fake labels, and compares the losses and every trainable tensor.
SGD keeps the steps linear in the gradients; Adam's first steps move each weight by about the learning rate
times the sign of its gradient, so float noise in a near-zero gradient would flip whole steps. Exit 0 when
every loss agrees to --loss_rtol and every weight to --weight_atol, 1 otherwise (the report says where).
"""

import argparse
import json
import os
import sys

import numpy as np

BATCH = 16
LEARNING_RATES = {"generator": 1e-3, "discriminator": 4e-3}  # SGD, in the TTUR ratio; large enough that a wrong detail shows


def _inputs(steps, seed=2):
    rng = np.random.RandomState(seed)
    draws = []
    for _ in range(steps):
        draws.append({"z": rng.randn(BATCH, 128).astype(np.float32), "fake_labels": rng.randint(0, 10, BATCH),
                      "images": rng.randint(0, 256, (BATCH, 32, 32, 1)).astype(np.uint8),  # grey, NHWC
                      "labels": rng.randint(0, 10, BATCH), "z_g": rng.randn(BATCH, 128).astype(np.float32),
                      "fake_labels_g": rng.randint(0, 10, BATCH)})
    return draws


def write_reference(biggan_dir, path, ch, steps):
    """The reference half (needs torch and BigGAN-PyTorch's sources)."""
    import torch  # noqa: PLC0415
    import torch.nn.functional as F  # noqa: PLC0415

    sys.path.insert(0, biggan_dir)
    import BigGAN  # noqa: PLC0415
    import layers  # noqa: PLC0415

    torch.manual_seed(0)
    G = BigGAN.Generator(G_ch=ch, dim_z=128, bottom_width=4, resolution=32, G_kernel_size=3, G_attn="16",
                         n_classes=10, num_G_SVs=1, num_G_SV_itrs=1, G_shared=False, hier=False, G_init="xavier",
                         SN_eps=1e-8, BN_eps=1e-5, G_param="SN", norm_style="bn", no_optim=True)
    D = BigGAN.Discriminator(D_ch=ch, D_wide=True, resolution=32, D_kernel_size=3, D_attn="0", n_classes=10,
                             num_D_SVs=1, num_D_SV_itrs=1, D_init="xavier", SN_eps=1e-8, D_param="SN", skip_init=True,
                             no_optim=True)
    D.blocks[0].append(layers.Attention(D.arch["out_channels"][0], D.which_conv))
    D.init_weights()
    with torch.no_grad():
        for net in (G, D):
            for name, p in net.named_parameters():
                if name.endswith("gamma"):
                    p.fill_(0.7)
                elif name.endswith(".bias") and ".bn" not in name and "output_layer.0" not in name:
                    p.uniform_(-0.1, 0.1)
            for module in net.modules():
                if isinstance(module, layers.SN):
                    u, _, _ = np.linalg.svd(module.weight.view(module.weight.size(0), -1).double().numpy())
                    module.u0.copy_(torch.from_numpy(u[:, :1].T).float())

    def state():
        return {f"{n}.{k}": v.numpy().copy() for n, net in (("G", G), ("D", D)) for k, v in net.state_dict().items()}

    start, draws, losses = state(), _inputs(steps), []
    opt_g = torch.optim.SGD(G.parameters(), lr=LEARNING_RATES["generator"])
    opt_d = torch.optim.SGD(D.parameters(), lr=LEARNING_RATES["discriminator"])
    G.train()
    D.train()
    for draw in draws:
        t = {k: torch.from_numpy(v) for k, v in draw.items()}
        opt_d.zero_grad(set_to_none=True)
        opt_g.zero_grad(set_to_none=True)
        with torch.no_grad():
            fakes = G(t["z"], G.shared(t["fake_labels"]))
        reals = t["images"].permute(0, 3, 1, 2).float().div(127.5).sub(1.0).expand(-1, 3, -1, -1)  # grey as 3 channels
        out = D(torch.cat([fakes, reals], 0), torch.cat([t["fake_labels"], t["labels"]], 0))
        d_fake, d_real = torch.split(out, [BATCH, BATCH])
        d_loss = torch.mean(F.relu(1.0 - d_real)) + torch.mean(F.relu(1.0 + d_fake))
        d_loss.backward()
        opt_d.step()
        for p in D.parameters():
            p.requires_grad = False
        opt_g.zero_grad(set_to_none=True)
        g_loss = -torch.mean(D(G(t["z_g"], G.shared(t["fake_labels_g"])), t["fake_labels_g"]))
        g_loss.backward()
        opt_g.step()
        for p in D.parameters():
            p.requires_grad = True
        losses.append([d_loss.item(), g_loss.item()])
    arrays = {"ch": np.int64(ch), "losses": np.array(losses)}
    arrays.update({f"start/{k}": v for k, v in start.items()})
    arrays.update({f"end/{k}": v for k, v in state().items()})
    for i, draw in enumerate(draws):
        arrays.update({f"step{i}/{k}": v for k, v in draw.items()})
    np.savez_compressed(path, **arrays)


def _conv(w):
    return np.transpose(w, (2, 3, 1, 0))  # torch [out, in, kh, kw] -> Keras [kh, kw, in, out]


def sagan_tf_state(ref, prefix, ch):
    """{sagan_tf weight path: value} of the reference's trainable tensors under `prefix` ("start"/"end")."""
    c = 4 * ch
    r = {k[len(prefix) + 1:]: v for k, v in ref.items() if k.startswith(prefix + "/")}
    # G's first linear: torch reshapes to [C, 4, 4], Keras to [4, 4, C].
    order = np.array([channel * 16 + position for position in range(16) for channel in range(c)])
    m = {"generator/linear_sn/linear/kernel": r["G.linear.weight"].T[:, order],
         "generator/linear_sn/linear/bias": r["G.linear.bias"][order],
         "generator/output_bn/gamma": r["G.output_layer.0.gain"], "generator/output_bn/beta": r["G.output_layer.0.bias"],
         "generator/output_conv_sn/output_conv/kernel": _conv(r["G.output_layer.2.weight"]),
         "generator/output_conv_sn/output_conv/bias": r["G.output_layer.2.bias"],
         "discriminator/linear_sn/linear/kernel": r["D.linear.weight"].T,
         "discriminator/linear_sn/linear/bias": r["D.linear.bias"],
         "discriminator/embedding_sn/embedding/embeddings": r["D.embed.weight"]}
    for net, torch_name in (("generator", "G.blocks.1.1"), ("discriminator", "D.blocks.0.1")):
        for ours, theirs in (("query", "theta"), ("key", "phi"), ("value", "g"), ("output", "o")):
            m[f"{net}/attention16/{ours}_sn/{ours}/kernel"] = _conv(r[f"{torch_name}.{theirs}.weight"])
        m[f"{net}/attention16/gamma"] = r[f"{torch_name}.gamma"]
    for net, letter, blocks in (("generator", "G", 3), ("discriminator", "D", 4)):
        for i in range(blocks):
            theirs, ours = f"{letter}.blocks.{i}.0", f"{net}/block{i + 1}"
            for a, b in (("conv1", "conv1"), ("conv2", "conv2"), ("shortcut", "conv_sc")):
                if f"{theirs}.{b}.weight" in r:
                    m[f"{ours}/{a}_sn/{a}/kernel"] = _conv(r[f"{theirs}.{b}.weight"])
                    m[f"{ours}/{a}_sn/{a}/bias"] = r[f"{theirs}.{b}.bias"]
            if letter == "G":
                for bn in ("bn1", "bn2"):  # the reference's gain is 1 + its embedding
                    m[f"{ours}/{bn}/gain"] = 1.0 + r[f"{theirs}.{bn}.gain.weight"]
                    m[f"{ours}/{bn}/bias"] = r[f"{theirs}.{bn}.bias.weight"]
    return m


def compare(path, gin_files, gin_params=()):
    """Takes the reference's steps with the gin config's model; returns a report dict."""
    import keras  # noqa: PLC0415
    import tensorflow as tf  # noqa: PLC0415

    from sagan_tf import config, gin_registry  # noqa: F401, PLC0415 (gin_registry: the configurables)
    from sagan_tf import compat, trainer  # noqa: F401, PLC0415 (trainer registers train)
    from sagan_tf.layers.spectral_norm import SpectralNormalization  # noqa: PLC0415
    from sagan_tf.models import factory  # noqa: PLC0415

    ref = dict(np.load(path))
    ch = int(ref["ch"])
    config.parse(gin_files, [*gin_params, f"Generator.base_channels = {ch}", f"Discriminator.base_channels = {ch}"])
    model = factory.build_model(factory.DataFacts(num_classes=10, resolution=32, channels=3))
    model.build_all(3)
    nets = (model.generator, model.discriminator)
    start = sagan_tf_state(ref, "start", ch)
    for net in nets:
        for weight in net.trainable_weights:
            weight.assign(start[weight.path].astype(np.float32))  # a KeyError names a weight the reference lacks
        # Each spectral norm's u to the top singular vector of its wrapped kernel, whose output axis is the
        # last here (u is [1, out]): the kernel as [fan_in, out].
        for layer in compat.sublayers(net):
            if isinstance(layer, SpectralNormalization):
                kernel = layer.kernel.numpy()
                _, _, vt = np.linalg.svd(kernel.reshape(-1, layer.u.shape[-1]).astype(np.float64))
                layer.u.assign(vt[:1].astype(np.float32))
    model.compile(keras.optimizers.SGD(LEARNING_RATES["generator"]), keras.optimizers.SGD(LEARNING_RATES["discriminator"]))
    steps = len(ref["losses"])
    draws = []
    model.sample_z = lambda batch: tf.constant(draws.pop(0))
    model._fake_labels = lambda labels, batch: tf.constant(draws.pop(0))
    losses = []
    for i in range(steps):
        s = {k.split("/", 1)[1]: v for k, v in ref.items() if k.startswith(f"step{i}/")}
        draws[:] = [s["z"], s["fake_labels"], s["z_g"], s["fake_labels_g"]]  # the order train_step draws them
        images = np.repeat(s["images"], 3, axis=-1).astype(np.float32) / 127.5 - 1.0
        model.train_step((tf.constant(images), tf.constant(s["labels"])))
        losses.append([float(model.trackers[name].result()) for name in ("d_loss", "g_loss")])
        for tracker in model.trackers.values():
            tracker.reset_state()
    end = sagan_tf_state(ref, "end", ch)
    differences = sorted(((float(np.abs(w.numpy() - end[w.path]).max()), w.path) for net in nets
                          for w in net.trainable_weights), reverse=True)
    loss_rtol = float(np.max(np.abs(np.array(losses) - ref["losses"]) / np.abs(ref["losses"])))
    return {"steps": steps, "losses": losses, "reference_losses": ref["losses"].tolist(), "loss_rtol": loss_rtol,
            "weights": len(differences), "largest_weight_differences": differences[:5]}


class _Parser(argparse.ArgumentParser):
    """Bad flags: one line naming the problem, exit 2 (as every sagan_tf command), under either Python."""

    def error(self, message):
        sys.stderr.write(f"tools/reference_step_check.py: error: {message}\n")
        sys.exit(2)


def _reference_file(parser, path):
    if not os.path.isfile(path):
        parser.error(f"--read={path} does not exist (write one with --biggan_dir and --write)")
    try:
        with np.load(path) as data:
            if not {"ch", "losses", "step0/z"} <= set(data.files):
                raise ValueError
    except (ValueError, OSError, EOFError):
        parser.error(f"--read={path} is not a file this tool's reference half wrote")


def main():
    parser = _Parser(description=__doc__.split("\n")[0])
    parser.add_argument("--biggan_dir", help="BigGAN-PyTorch's sources: write the reference half")
    parser.add_argument("--write", help="the .npz the reference half writes")
    parser.add_argument("--ch", type=int, default=16, help="BigGAN's G_ch = D_ch (16: the parity runs' width)")
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--read", help="a reference half's .npz: compare with sagan_tf")
    parser.add_argument("--gin_file", action="append", default=None,
                        help="the config to check (default experiments/fashion_mnist_aligned.gin)")
    parser.add_argument("--gin_param", action="append", default=[])
    parser.add_argument("--loss_rtol", type=float, default=1e-4)
    parser.add_argument("--weight_atol", type=float, default=5e-5)
    args = parser.parse_args()
    for name in ("biggan_dir", "write", "read"):  # "~/..." after --flag= is left as typed by the shell
        if getattr(args, name):
            setattr(args, name, os.path.expanduser(getattr(args, name)))
    args.gin_file = args.gin_file and [os.path.expanduser(f) for f in args.gin_file]
    if bool(args.biggan_dir) == bool(args.read) or bool(args.biggan_dir) != bool(args.write):
        parser.error("give --biggan_dir with --write (the reference half) or --read (the sagan_tf half)")
    if args.biggan_dir:
        if not os.path.isfile(os.path.join(args.biggan_dir, "BigGAN.py")):
            parser.error(f"--biggan_dir={args.biggan_dir} has no BigGAN.py (BigGAN-PyTorch's sources)")
        if args.ch < 1 or args.steps < 1:
            parser.error(f"--ch={args.ch} and --steps={args.steps} must be at least 1")
        write_reference(args.biggan_dir, args.write, args.ch, args.steps)
        print(f"Wrote {args.write}")
        return 0
    _reference_file(parser, args.read)
    from sagan_tf.gin_files import ConfigError  # noqa: PLC0415

    try:
        report = compare(args.read, args.gin_file or ["experiments/fashion_mnist_aligned.gin"], args.gin_param)
    except ConfigError as error:
        parser.error(str(error))
    print(json.dumps(report, indent=1))
    ok = report["loss_rtol"] <= args.loss_rtol and report["largest_weight_differences"][0][0] <= args.weight_atol
    print(("Same step" if ok else "Different step") + f": losses within {report['loss_rtol']:.1e} (relative), "
          f"{report['weights']} trainable tensors within {report['largest_weight_differences'][0][0]:.1e}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
