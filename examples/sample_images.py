"""Sample a grid of images from an image generator with the library API.

python examples/sample_images.py samples.png                 # the embedded demo
python examples/sample_images.py ffhq.png --image ffhq -n 8 --truncation 0.7
python examples/sample_images.py dogs.png --image biggan-deep-128 --class golden_retriever --truncation 0.5
"""

import argparse

import imageio.v3 as iio
import torch

from mocohd_cli import load_image_generator
from mocohd_cli.classes import one_hot, parse_class

p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
p.add_argument("out", help="output image (.png, .jpg)")
p.add_argument("--image", default="demo", help="image generator: name or path")
p.add_argument("-n", type=int, default=8, help="number of images")
p.add_argument("--seed", type=int, default=0)
p.add_argument("--truncation", type=float, default=1.0)
p.add_argument("--noise", default="const", choices=["const", "random", "none"])
p.add_argument("--device", default="auto", help="auto (CUDA, then MPS, then CPU), cpu, cuda, mps")
p.add_argument("--dtype", default="fp32", choices=["fp32", "bf16"], help="synthesis precision")
p.add_argument("--class", dest="klass", default=None, help="BigGAN: class number or ImageNet name (default: drawn)")
args = p.parse_args()

G = load_image_generator(args.image, device=args.device)
device = next(G.parameters()).device
gen = torch.Generator().manual_seed(args.seed)
z = torch.randn(args.n, G.z_dim, generator=gen).to(device)
dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[args.dtype]
if G.c_dim:  # class-conditional (BigGAN): one class for all, or one drawn per image
    labels = (
        [parse_class(args.klass, G.c_dim)] * args.n
        if args.klass
        else torch.randint(G.c_dim, (args.n,), generator=gen).tolist()
    )
    extra = {"c": one_hot(labels, G.c_dim, device), "truncation": args.truncation}
else:
    extra = {"noise_mode": args.noise}
with torch.no_grad():
    img = G.synthesis(G.mapping(z, truncation_psi=args.truncation), dtype=dtype, **extra).cpu()
grid = torch.cat(list(img), dim=2)  # side by side: [3, R, n*R]
grid = ((grid.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
iio.imwrite(args.out, grid)
print(f"wrote {args.out}: {args.n} images of {G.resolution} px from {args.image} on {device}")
