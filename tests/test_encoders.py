"""Image encoders (mocohd_cli/encoders/, loaders/encoder_models.py, train/encoder_recipe.py): the
network's shapes and start, its file and its tie to one generator, and a known answer: trained on
a tiny generator's samples, it finds their latents."""

import pytest
import torch

from mocohd_cli.encoders import EncoderConfig, ImageEncoder
from mocohd_cli.errors import MocohdError, UsageError
from mocohd_cli.formats import canonical, read_any
from mocohd_cli.invert import w_stats
from mocohd_cli.loaders import describe, load_encoder, save_encoder, store_model
from mocohd_cli.loaders.encoder_models import check_encoder, encoder_model
from mocohd_cli.train.encoder_recipe import EncoderRecipe

from .conftest import randomized_generator, tiny_config

pytestmark = pytest.mark.usefixtures("one_thread")  # tiny training steps (tests/conftest.py)


def tiny_encoder(G, space="w+", resolution=None, seed=0, hidden=64):
    """A small encoder for ``G``, centred on G's measured average w (as train-encoder makes it)."""
    w_avg, _ = w_stats(G, samples=2000)
    torch.manual_seed(seed)
    cfg = EncoderConfig(
        resolution=resolution or G.resolution,
        w_dim=G.w_dim,
        num_ws=G.num_ws,
        space=space,
        channel_base=256,
        channel_max=32,
        hidden=hidden,
    )
    return ImageEncoder(cfg, w_avg=w_avg)


def identify(G, name="g"):
    G.identity = {"name": name, "weights_sha256": canonical.weights_sha256(G.state_dict())}
    return {"image_name": name, "image_sha256": G.identity["weights_sha256"]}


@pytest.mark.parametrize("space", ["w", "w+"])
@pytest.mark.parametrize("resolution", [4, 16, 64])
def test_the_config_describes_the_module(space, resolution):
    cfg = EncoderConfig(resolution=resolution, w_dim=24, num_ws=6, space=space, channel_base=512, channel_max=16)
    E = ImageEncoder(cfg)
    assert {k: tuple(v.shape) for k, v in E.state_dict().items()} == cfg.state_shapes()
    assert E(torch.randn(3, 3, resolution, resolution)).shape == (3, 6, 24)


def test_an_untrained_encoder_answers_the_average_w_and_w_space_is_one_w():
    G = randomized_generator(tiny_config(16))
    for space in ("w", "w+"):
        E = tiny_encoder(G, space)
        assert torch.equal(E(torch.randn(2, 3, 16, 16)), E.w_avg.expand(2, G.num_ws, -1))
    E = tiny_encoder(G, "w")
    torch.nn.init.normal_(E.fc1.weight)
    ws = E(torch.randn(2, 3, 16, 16))
    assert not torch.equal(ws[0], ws[1]) and torch.equal(ws[:, :1].expand_as(ws), ws)


def test_other_sizes_are_resized_by_area_and_bad_shapes_refused():
    G = randomized_generator(tiny_config(16))
    E = tiny_encoder(G, resolution=8)
    torch.nn.init.normal_(E.fc1.weight, std=0.1)
    x = torch.randn(2, 3, 32, 32)
    assert torch.allclose(E(x), E(torch.nn.functional.avg_pool2d(x, 4)), atol=1e-6)
    with pytest.raises(UsageError, match=r"images \[B, 3, H, W\]"):
        E(torch.randn(2, 1, 8, 8))
    with pytest.raises(UsageError, match="power of two"):
        EncoderConfig(resolution=48)
    with pytest.raises(UsageError, match="space must be one of w, w\\+"):
        EncoderConfig(space="z")


def test_the_file_round_trips_and_ties_the_encoder_to_its_generator(tmp_path, isolated_store):
    G = randomized_generator(tiny_config(16))
    image = identify(G, "tiny")
    E = tiny_encoder(G)
    torch.nn.init.normal_(E.fc1.weight, std=0.01)
    path = tmp_path / "enc.safetensors"
    save_encoder(path, E, image=image, source={"format": "mocohd-train-encoder"})
    back = load_encoder(path, G)
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(back(x), E(x)) and back.image == image
    assert describe(path).kind == "encoder" and describe(path).image == image

    other = randomized_generator(tiny_config(16), seed=1)
    identify(other, "other")
    with pytest.raises(MocohdError, match=r"was trained for 'tiny' \(\w{12}\), not for other") as e:
        load_encoder(path, other)
    assert "\n" not in str(e.value)
    wider = randomized_generator(tiny_config(32))
    wider.identity = {"name": "wider"}  # unknown weights: the sizes still have to fit
    back.image = dict(image)
    with pytest.raises(MocohdError, match="answers 6 w's of size 32; the generator needs 8 of size 32"):
        check_encoder(back, wider)
    back.image = {}
    with pytest.raises(MocohdError, match="does not say which image generator"):
        check_encoder(back, G)

    header = store_model(encoder_model(E, image), "enc", str(path))  # into the store by name
    assert header.kind == "encoder" and load_encoder("enc", G).image == image
    assert read_any(header.path).config == E.cfg.to_dict()


def test_a_file_whose_config_lies_is_refused(tmp_path):
    G = randomized_generator(tiny_config(16))
    E = tiny_encoder(G)
    path = tmp_path / "enc.safetensors"
    m = encoder_model(E, identify(G))
    config = dict(m.config, hidden=65)
    canonical.save_model(path, m.tensors, kind="encoder", family=m.family, config=config, source={}, image=m.image)
    with pytest.raises(MocohdError, match=r"fc0\.bias is \[64\] in the file, the config needs \[65\]"):
        load_encoder(path)


def test_the_recipe_is_deterministic_and_each_term_is_there():
    G = randomized_generator(tiny_config(16))
    _, w_std = w_stats(G, samples=2000)
    runs = []
    for _ in range(2):
        E = tiny_encoder(G)
        recipe = EncoderRecipe(E, G, rng=torch.Generator().manual_seed(3), w_std=w_std, lr=1e-3)
        runs.append([recipe.iteration(4, real=torch.rand(2, 3, 16, 16) * 2 - 1) for _ in range(3)])
    assert runs[0] == runs[1]
    assert set(runs[0][0]) == {"loss", "latent", "pixel", "offsets", "real_pixel"}
    assert abs(runs[0][0]["latent"] - 1) < 0.5  # the average w is one variance away, per dimension


def test_the_encoder_recovers_the_latents_of_a_tiny_generators_samples():
    """Known answer: after 300 steps on the generator's own samples, held-out samples' w's are
    found (cosine about the average w) and re-rendered far closer than the average w renders them.
    The generator's noise is off, so that its images determine their w (about 10 s)."""
    G = randomized_generator(tiny_config(8))
    with torch.no_grad():
        for name, p in G.named_parameters():
            if name.endswith("noise_strength"):
                p.zero_()
    _, w_std = w_stats(G, samples=2000)
    E = tiny_encoder(G, hidden=256)
    recipe = EncoderRecipe(E, G, rng=torch.Generator().manual_seed(1), w_std=w_std, lr=3e-3)
    held = EncoderRecipe(E, G, rng=torch.Generator().manual_seed(2), w_std=w_std)
    x, w, noise = held.samples(64)

    def measure():
        with torch.no_grad():
            ws = E.eval()(x)
            img = G.synthesis(ws, noise=noise)
            psnr = (10 * torch.log10(4 / (img - x).square().mean(dim=(1, 2, 3)))).mean()
            centred = ws.mean(1) - E.w_avg, w - E.w_avg
            return float(torch.nn.functional.cosine_similarity(*centred, dim=1).mean()), float(psnr)

    cos0, psnr0 = measure()
    for _ in range(300):
        recipe.iteration(16)
    cos, psnr = measure()
    assert cos0 < 0.05 and cos > 0.8 and psnr > psnr0 + 6, (cos0, psnr0, cos, psnr)
