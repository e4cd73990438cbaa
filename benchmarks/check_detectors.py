"""Our detectors against the real files, on a machine that has them: the first check to run
where StyleGAN-V's ``i3d_torchscript.pt`` and pytorch-fid's Inception weights can be downloaded.

    python benchmarks/check_detectors.py --i3d i3d_torchscript.pt
    python benchmarks/check_detectors.py --inception pt_inception-2015-12-05-6726825d.pth
    python benchmarks/check_detectors.py --i3d i3d_torchscript.pt --device cuda --clips 8

I3D: the file is converted by mocohd's reader (as ``mocohd import`` does), and ALSO loaded with
``torch.jit.load``, which runs the code inside the archive: do this only with the file from its
published source, on a machine you do not mind that code running on. Both get the same random
uint8 videos (16 and 9 frames, several sizes: the detector resizes to 224), StyleGAN-V's call
``detector(x, rescale=True, resize=True, return_features=True)`` on one side and
``I3D(to_detector_input(clips))`` on the other; the script prints the largest absolute and
relative differences of the 400 features and the FVD between the two feature sets.

Inception: pytorch-fid's own ``InceptionV3([3])`` (``pip install pytorch-fid``) with the weights
file against mocohd's conversion of the same file, on random uint8 frames.

Exit status 0 when every max relative difference is below --tol (default 1e-4), else 1.
"""

from __future__ import annotations

import argparse
import sys

import torch

from mocohd_cli.formats import read_any
from mocohd_cli.loaders.detector_models import build_from
from mocohd_cli.metrics import FeatureStats, frechet_distance
from mocohd_cli.metrics.protocol import to_detector_input


def _ours(path: str, kind: str, device) -> torch.nn.Module:
    model = read_any(path, kind=kind)
    print(
        f"# mocohd read {path} as {kind}: {model.source.get('format')}; notes "
        f"{ {k: v for k, v in model.source.items() if k not in ('file', 'file_sha256', 'format')} }"
    )
    return build_from(model, path).eval().requires_grad_(False).to(device)


def _report(name: str, a: torch.Tensor, b: torch.Tensor, tol: float) -> bool:
    diff = (a - b).abs().max().item()
    rel = diff / max(b.abs().max().item(), 1e-12)
    ok = rel < tol
    print(f"{name}: max |diff| {diff:.3e}, relative to the largest feature {rel:.3e} {'OK' if ok else 'FAIL'}")
    return ok


def check_i3d(path: str, device, clips: int, tol: float) -> bool:
    ours = _ours(path, "i3d", device)
    ref = torch.jit.load(path, map_location=device).eval()  # runs the archive's code: see the docstring
    g = torch.Generator().manual_seed(0)
    ok = True
    feats_ref, feats_ours = FeatureStats(), FeatureStats()
    for frames, size in ((16, 224), (16, 128), (16, 256), (9, 64)):
        clip = torch.randint(0, 256, (clips, frames, size, size, 3), generator=g, dtype=torch.uint8).to(device)
        with torch.no_grad():
            r = ref(clip.permute(0, 4, 1, 2, 3).float(), rescale=True, resize=True, return_features=True).float()
            o = ours(to_detector_input(clip)).float()
        ok &= _report(f"I3D {clips} x {frames} x {size}^2", o.cpu(), r.cpu(), tol)
        feats_ref.update(r.cpu())
        feats_ours.update(o.cpu())
    fvd = frechet_distance(feats_ref.mean, feats_ref.covariance(0), feats_ours.mean, feats_ours.covariance(0))
    print(f"FVD between the two feature sets: {fvd:.3e}")
    return ok


def check_inception(path: str, device, frames: int, tol: float) -> bool:
    try:
        from pytorch_fid.inception import InceptionV3 as FidInception
    except ImportError as e:
        sys.exit(f"pytorch-fid is needed for the Inception check (pip install pytorch-fid): {e}")
    ours = _ours(path, "inception", device)
    import pytorch_fid.inception as fid_inception

    # pytorch-fid's own FID network, given this file where it would download the same one
    fid_inception.load_state_dict_from_url = lambda *a, **k: torch.load(path, map_location="cpu", weights_only=True)
    ref = FidInception(
        [FidInception.BLOCK_INDEX_BY_DIM[2048]], resize_input=True, normalize_input=True, use_fid_inception=True
    )
    ref = ref.eval().to(device)
    g = torch.Generator().manual_seed(0)
    ok = True
    for size in (299, 64, 256):
        x = torch.randint(0, 256, (frames, size, size, 3), generator=g, dtype=torch.uint8).to(device)
        with torch.no_grad():
            r = ref(x.permute(0, 3, 1, 2).float() / 255)[0].flatten(1)
            o = ours(to_detector_input(x[:, None])[:, :, 0])
        ok &= _report(f"Inception {frames} x {size}^2", o.cpu(), r.cpu(), tol)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--i3d", help="StyleGAN-V's i3d_torchscript.pt")
    ap.add_argument("--inception", help="pytorch-fid's pt_inception-2015-12-05-6726825d.pth")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--clips", type=int, default=4)
    ap.add_argument("--tol", type=float, default=1e-4)
    args = ap.parse_args()
    if not (args.i3d or args.inception):
        ap.error("give --i3d FILE and/or --inception FILE")
    device = torch.device(args.device)
    ok = True
    if args.i3d:
        ok &= check_i3d(args.i3d, device, args.clips, args.tol)
    if args.inception:
        ok &= check_inception(args.inception, device, 2 * args.clips, args.tol)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
