"""Times BigGAN-PyTorch's SA-GAN networks for tools/bench_reference.py (run with a Python that has torch).

    <torch venv>/bin/python tools/reference_biggan_step.py --biggan_dir=DIR --resolution=32 --batch=64

DIR holds BigGAN-PyTorch's sources (github ajbrock/BigGAN-PyTorch: BigGAN.py, layers.py, losses.py,
sync_batchnorm/). The networks are configured as sagan_tf's benchmark configs are (and as the SA-GAN
launch script of BigGAN-PyTorch): G_ch = D_ch = 64 (--ch; 16 for the Fashion-MNIST quality config), dim_z 128, spectral norm on G and D, Xavier init,
no shared embedding, hinge loss, Adam(0, 0.999), lr G 1e-4 / D 4e-4, one D step per G step, D on the
concatenated [fake; real] batch; attention at 16x16 (32x32 input, CIFAR widths; D gets one attention
layer after its first block, as sagan_tf's), at 32x32 (64x64 input) and at 64x64 (128x128 input).
One training iteration is one D step and one G step on random tensors. Prints `RESULT {json}`: the
median seconds per iteration, the parameter counts, torch's version and threads, the peak memory (resident
set and its anonymous part, lab.memory).
This file needs only torch, the reference's sources and the lab's timing loop (standard library); sagan_tf
never imports it.
"""

import argparse
import json
import os
import statistics
import sys

from lab.memory import AnonymousPeak, peak_rss_gib  # tools/lab: the standard library only
from lab.timing import time_calls

# resolution -> (classes, G attention, D attention as BigGAN-PyTorch spells them)
SETTINGS = {32: (10, "16", "0"), 64: (1000, "32", "32"), 128: (1000, "64", "64")}


def parameters(module):
    return sum(p.numel() for p in module.parameters())


def build(biggan_dir, resolution, ch=64):
    import torch  # noqa: PLC0415
    from torch import nn  # noqa: PLC0415

    sys.path.insert(0, biggan_dir)
    import BigGAN  # noqa: PLC0415
    import layers  # noqa: PLC0415

    classes, g_attention, d_attention = SETTINGS[resolution]
    shared = dict(resolution=resolution, n_classes=classes, SN_eps=1e-8, adam_eps=1e-8)
    generator = BigGAN.Generator(G_ch=ch, dim_z=128, G_attn=g_attention, G_shared=False, hier=False, G_lr=1e-4,
                                 G_B1=0.0, G_B2=0.999, BN_eps=1e-5, G_init="xavier", G_param="SN",
                                 G_activation=nn.ReLU(inplace=False), **shared)
    discriminator = BigGAN.Discriminator(D_ch=ch, D_wide=True, D_attn=d_attention, D_lr=4e-4, D_B1=0.0, D_B2=0.999,
                                         D_init="xavier", D_param="SN", D_activation=nn.ReLU(inplace=False), **shared)
    if resolution == 32:
        # BigGAN-PyTorch's 32x32 D keeps every block at "resolution 16", so D_attn='16' would place four
        # attention layers; sagan_tf's (and SAGAN's) D has one, after the first block.
        discriminator.blocks[0].append(layers.Attention(discriminator.arch["out_channels"][0],
                                                        discriminator.which_conv))
        discriminator.optim = torch.optim.Adam(discriminator.parameters(), lr=4e-4, betas=(0.0, 0.999), eps=1e-8)
    generator.train()
    discriminator.train()
    return BigGAN.G_D(generator, discriminator), generator, discriminator, classes


def iteration_function(biggan_dir, resolution, batch, ch=64):
    import torch  # noqa: PLC0415

    sys.path.insert(0, biggan_dir)
    import losses  # noqa: PLC0415

    both, generator, discriminator, classes = build(biggan_dir, resolution, ch)
    real = torch.rand(batch, 3, resolution, resolution) * 2 - 1
    real_labels = torch.randint(0, classes, (batch,))

    def requires_grad(module, value):
        for p in module.parameters():
            p.requires_grad = value

    def iteration():
        requires_grad(discriminator, True)
        requires_grad(generator, False)
        discriminator.optim.zero_grad()
        z, labels = torch.randn(batch, generator.dim_z), torch.randint(0, classes, (batch,))
        fake_logits, real_logits = both(z, labels, real, real_labels, train_G=False, split_D=False)
        loss_real, loss_fake = losses.loss_hinge_dis(fake_logits, real_logits)
        (loss_real + loss_fake).backward()
        discriminator.optim.step()
        requires_grad(discriminator, False)
        requires_grad(generator, True)
        generator.optim.zero_grad()
        z, labels = torch.randn(batch, generator.dim_z), torch.randint(0, classes, (batch,))
        g_loss = losses.loss_hinge_gen(both(z, labels, train_G=True, split_D=False))
        g_loss.backward()
        generator.optim.step()
        return g_loss.item()

    return iteration, parameters(generator), parameters(discriminator)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--biggan_dir", required=True)
    parser.add_argument("--resolution", type=int, choices=sorted(SETTINGS), required=True)
    parser.add_argument("--batch", type=int, required=True)
    parser.add_argument("--ch", type=int, default=64, help="G_ch = D_ch (16: the Fashion-MNIST quality config)")
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--iters", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    if not os.path.isfile(os.path.join(args.biggan_dir, "BigGAN.py")):
        parser.error(f"--biggan_dir {args.biggan_dir} has no BigGAN.py")

    with AnonymousPeak() as anonymous:
        import torch  # noqa: PLC0415

        stages = {"imported": anonymous.split()}
        torch.set_num_threads(args.threads)
        torch.manual_seed(args.seed)
        iteration, g_params, d_params = iteration_function(args.biggan_dir, args.resolution, args.batch, args.ch)
        stages["built"] = anonymous.split()  # Adam's moments come at the first step (torch.optim's lazy state)
        times = time_calls(iteration, args.iters, args.warmup)
        stages["trained"] = anonymous.split()
    print("RESULT " + json.dumps({
        "implementation": "BigGAN-PyTorch", "torch": torch.__version__, "threads": torch.get_num_threads(),
        "resolution": args.resolution, "batch": args.batch, "ch": args.ch, "g_params": g_params, "d_params": d_params,
        "seconds_per_iteration": statistics.median(times), "iteration_seconds": times,
        "peak_rss_gib": peak_rss_gib(), "peak_anonymous_gib": anonymous.gib, "memory_stages": stages,
    }), flush=True)


if __name__ == "__main__":
    main()
