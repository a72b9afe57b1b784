"""Backbone loading, the feature extractor and its on-disk cache."""

from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from adlib.data.datasets import Preprocessing, Sample
from adlib.features import backbones
from adlib.features import extractor as extractor_module
from adlib.features.backbones import load_backbone
from adlib.features.extractor import FeatureExtractor, FeatureSettings, fixed_shape, profile_settings
from adlib.features.patches import locally_aware_features
from adlib.files import file_digest

SMALL = Preprocessing(resize=64, crop=64)


def write_images(folder: Path, count: int, seed: int = 0) -> list[Sample]:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    samples = []
    for i in range(count):
        path = folder / f"{i:03d}.png"
        Image.fromarray(rng.integers(0, 256, (72, 80, 3), dtype=np.uint8)).save(path)
        samples.append(Sample(image=path, masks=(), label=0, defect="good"))
    return samples


def resnet18_settings(**changes) -> FeatureSettings:
    base = dict(backbone="resnet18", weights=None, preprocessing=SMALL, pre_dim=64, target_dim=48)
    return FeatureSettings(**(base | changes))


class CountingModel(torch.nn.Module):
    """Wraps a backbone and counts the distinct images it was run on (a short batch's padding copies its
    last image: not an image of its own)."""

    def __init__(self, model):
        super().__init__()
        self.model, self.images = model, 0

    def forward(self, x):
        self.images += len(torch.unique(x.flatten(1), dim=0))
        return self.model(x)


def test_batch_norm_folding_is_torchs_fusion_done_in_place():
    # the in-place fold gives exactly the weights and biases of torch's reference fusion, downsample included
    from torch.nn.utils.fusion import fuse_conv_bn_eval

    torch.manual_seed(0)
    net = torchvision.models.resnet18().eval()
    for module in net.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            torch.nn.init.normal_(module.weight)
            torch.nn.init.normal_(module.bias)
    pairs = [
        (f"{name}.conv{i}".lstrip("."), fuse_conv_bn_eval(getattr(m, f"conv{i}"), getattr(m, f"bn{i}")))
        for name, m in net.named_modules()
        for i in (1, 2, 3)
        if hasattr(m, f"bn{i}")
    ]
    pairs += [
        (f"{name}.0", fuse_conv_bn_eval(m[0], m[1])) for name, m in net.named_modules() if name.endswith("downsample")
    ]
    weight = net.layer1[0].conv1.weight
    backbones._fold_resnet_batch_norms(net)
    folded = dict(net.named_modules())
    assert len(pairs) == 20 and not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    assert net.layer1[0].conv1.weight is weight  # scaled where it lies, not copied
    for name, reference in pairs:
        assert torch.equal(folded[name].weight, reference.weight), name
        assert torch.equal(folded[name].bias, reference.bias), name


def test_state_dict_file_gives_torchvision_model(tmp_path):
    torch.manual_seed(3)
    reference = torchvision.models.resnet18(weights=None).eval()
    for norm in (m for m in reference.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        # statistics unlike the initial ones (mean 0, var 1, identity affine), so that folding them matters
        norm.running_mean.uniform_(-0.5, 0.5), norm.running_var.uniform_(0.5, 2.0)
        norm.weight.data.uniform_(0.5, 1.5), norm.bias.data.uniform_(-0.2, 0.2)
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    loaded = load_backbone("resnet18", ["layer2", "layer3"], weights=path)
    assert loaded.weights_tag.startswith("resnet18:resnet18.pth:") and loaded.weights_tag.endswith(":bn-folded")
    # the batch norms are folded into the convolutions; the maps equal the literal model's up to rounding
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in loaded.model.modules())
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        maps = loaded.model(x)
        r = reference
        layer1 = r.layer1(r.maxpool(r.relu(r.bn1(r.conv1(x)))))
        layer2 = r.layer2(layer1)
        layer3 = r.layer3(layer2)
        for folded, literal in ((maps["layer2"], layer2), (maps["layer3"], layer3)):  # rounding: ~2e-6 of the peak
            torch.testing.assert_close(folded, literal, rtol=0, atol=1e-5 * literal.abs().max().item())
    assert len(loaded.model.stages) == 4  # stem, layer1..3: layer4 and the head are cut off


def test_weights_that_do_not_fit_are_named(tmp_path):
    path = tmp_path / "other.pth"
    torch.save(torchvision.models.resnet18(weights=None).state_dict(), path)
    with pytest.raises(ValueError, match=r"other\.pth.*resnet50"):
        load_backbone("resnet50", ["layer2"], weights=path)
    garbage = tmp_path / "broken.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="broken.pth"):
        load_backbone("resnet18", ["layer2"], weights=garbage)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_backbone("resnet18", ["layer2"], weights=tmp_path / "missing.pth")


def test_missing_imagenet_weights_offline_say_how_to_supply_them(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    monkeypatch.setattr(backbones, "_can_reach", lambda url: False)
    with pytest.raises(FileNotFoundError) as error:
        load_backbone("wide_resnet50_2", ["layer2", "layer3"], weights="imagenet")
    message = str(error.value)
    assert "wide_resnet50_2-95faca4d.pth" in message and str(tmp_path) in message and "weights=" in message


def test_imagenet_weights_from_torchvision_cache(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    (tmp_path / "checkpoints").mkdir()
    torch.save(
        torchvision.models.resnet18(weights=None).state_dict(), tmp_path / "checkpoints" / "resnet18-f37072fd.pth"
    )
    assert load_backbone("resnet18", ["layer1"]).weights_tag.startswith("resnet18:resnet18-f37072fd.pth:")


def test_bad_backbone_settings_are_rejected():
    with pytest.raises(ValueError, match="layer9"):
        load_backbone("resnet18", ["layer9"], weights=None)
    with pytest.raises(ValueError, match="init_seed"):
        FeatureSettings(init_seed=1)
    with pytest.raises(ValueError, match="backbone"):
        FeatureSettings(backbone="vgg")
    with pytest.raises(ValueError, match="precision"):
        FeatureSettings(precision="fp16")
    with pytest.raises(ValueError, match="profile"):
        profile_settings("mvtec")


def test_random_init_is_seeded():
    a = load_backbone("resnet18", ["layer1"], weights=None, init_seed=1).model.state_dict()
    b = load_backbone("resnet18", ["layer1"], weights=None, init_seed=1).model.state_dict()
    c = load_backbone("resnet18", ["layer1"], weights=None, init_seed=2).model.state_dict()
    name = "stages.0.0.weight"
    assert torch.equal(a[name], b[name]) and not torch.equal(a[name], c[name])


def test_efficientnet_lite0_imagenet_layers():
    model = load_backbone("efficientnet-lite0", ["layer2", "layer3"]).model
    with torch.no_grad():
        maps = model(torch.zeros(1, 3, 224, 224))
    assert maps["layer2"].shape == (1, 40, 28, 28) and maps["layer3"].shape == (1, 112, 14, 14)


def test_embedding_is_aggregation_of_backbone_maps(tmp_path):
    samples = write_images(tmp_path / "img", 3)
    extractor = FeatureExtractor(resnet18_settings(), device="cpu", use_cache=False, batch_size=2)
    embedding = extractor.embed(samples, progress=False)
    assert embedding.grid == (8, 8) and embedding.features.shape == (3, 64, 48)
    maps = extractor.layer_maps(samples[1:2], progress=False)
    expected = locally_aware_features([maps["layer2"], maps["layer3"]], 3, 64, 48)
    torch.testing.assert_close(embedding.features[1:2], expected)


def test_embed_fills_one_tensor_equal_to_the_concatenated_batches(tmp_path):
    # 5 images in batches of 2: the last batch is short; the result is what concatenating the batches gave
    samples = write_images(tmp_path / "img", 5)
    extractor = FeatureExtractor(resnet18_settings(), device="cpu", use_cache=False, batch_size=2)
    embedding = extractor.embed(samples, progress=False)
    maps = extractor.layer_maps(samples, progress=False)
    batches = [
        locally_aware_features([maps["layer2"][i : i + 2], maps["layer3"][i : i + 2]], 3, 64, 48)
        for i in range(0, 5, 2)
    ]
    assert torch.equal(embedding.features, torch.cat(batches))
    one_at_a_time = [extractor.layer_maps([sample], progress=False)["layer3"] for sample in samples]
    torch.testing.assert_close(maps["layer3"], torch.cat(one_at_a_time))
    assert not embedding.features.is_inference() and not maps["layer2"].is_inference()
    embedding.features.mul_(1.0)  # a normal tensor: callers may change it in place


def test_every_batch_has_one_shape_so_an_images_bits_do_not_depend_on_its_neighbours(tmp_path, monkeypatch):
    """5 images in batches of 2: the backbone and the aggregation see [2, ...] every time (the short last
    batch is padded with copies of its last image and the copies dropped), and each image's features are
    bit for bit those it gets in a batch of its own."""
    samples = write_images(tmp_path / "img", 5)
    extractor = FeatureExtractor(resnet18_settings(), device="cpu", use_cache=False, batch_size=2)
    seen = []
    forward = extractor._forward
    monkeypatch.setattr(extractor, "_forward", lambda images: seen.append(len(images)) or forward(images))
    aggregate = extractor_module.locally_aware_features
    monkeypatch.setattr(
        extractor_module,
        "locally_aware_features",
        lambda maps, *args: seen.append(len(maps[0])) or aggregate(maps, *args),
    )
    together = extractor.embed(samples, progress=False).features
    assert together.shape[0] == 5 and set(seen) == {2}
    alone = torch.cat([extractor.embed([sample], progress=False).features for sample in samples[::-1]])
    assert torch.equal(together, alone.flip(0))
    assert torch.equal(fixed_shape(torch.arange(3), 3), torch.arange(3))
    assert torch.equal(fixed_shape(torch.arange(2), 4), torch.tensor([0, 1, 1, 1]))


def test_cache_hit_miss_and_corruption(tmp_path):
    samples = write_images(tmp_path / "img", 4)
    settings = resnet18_settings()

    def extractor():
        e = FeatureExtractor(settings, device="cpu", cache_dir=tmp_path / "cache", batch_size=3)
        e.model = CountingModel(e.model)
        return e

    first = extractor()
    reference = first.embed(samples, progress=False).features
    assert first.model.images == 4  # all misses

    second = extractor()
    torch.testing.assert_close(second.embed(samples, progress=False).features, reference)
    assert second.model.images == 0  # all hits

    entry = second.cache.path(file_digest(samples[2].image), "layer3")
    data = bytearray(entry.read_bytes())
    data[len(data) // 2] ^= 0xFF  # flip a byte inside the payload
    entry.write_bytes(bytes(data))
    third = extractor()
    with pytest.warns(UserWarning, match="broken"):
        torch.testing.assert_close(third.embed(samples, progress=False).features, reference)
    assert third.model.images == 1  # only the broken entry was recomputed

    entry.write_bytes(entry.read_bytes()[:100])  # a truncated file
    fourth = extractor()
    with pytest.warns(UserWarning, match="broken"):
        fourth.embed(samples, progress=False)
    assert fourth.model.images == 1

    Image.fromarray(np.zeros((72, 80, 3), np.uint8)).save(samples[0].image)  # a changed image misses
    fifth = extractor()
    changed = fifth.embed(samples, progress=False).features
    assert fifth.model.images == 1 and not torch.allclose(changed[0], reference[0])

    other = FeatureExtractor(resnet18_settings(precision="bf16"), device="cpu", cache_dir=tmp_path / "cache")
    assert other.cache.directory != first.cache.directory  # other settings, other cache entries
    assert (first.cache.directory / "config.json").is_file()


def test_layer_sets_share_the_maps_they_have_in_common(tmp_path):
    samples = write_images(tmp_path / "img", 3)

    def extractor(layers):
        e = FeatureExtractor(resnet18_settings(layers=layers), device="cpu", cache_dir=tmp_path / "cache")
        e.model = CountingModel(e.model)
        return e

    pair = extractor(("layer2", "layer3"))
    reference = pair.layer_maps(samples, progress=False)
    assert pair.model.images == 3
    subset = extractor(("layer3",))  # every map it needs is cached by the pair
    torch.testing.assert_close(subset.layer_maps(samples, progress=False)["layer3"], reference["layer3"])
    assert subset.model.images == 0
    wider = extractor(("layer1", "layer2", "layer3"))  # layer1 is missing: one backbone pass per image
    maps = wider.layer_maps(samples, progress=False)
    assert wider.model.images == 3
    torch.testing.assert_close(maps["layer2"], reference["layer2"])
    again = extractor(("layer1", "layer3"))
    again.layer_maps(samples, progress=False)
    assert again.model.images == 0


def test_aggregation_settings_reuse_cached_maps(tmp_path):
    samples = write_images(tmp_path / "img", 2)
    a = FeatureExtractor(resnet18_settings(patch_size=3), device="cpu", cache_dir=tmp_path / "c")
    b = FeatureExtractor(resnet18_settings(patch_size=5), device="cpu", cache_dir=tmp_path / "c")
    assert a.cache.directory == b.cache.directory
    a.embed(samples, progress=False)
    b.model = CountingModel(b.model)
    assert not torch.allclose(a.embed(samples, progress=False).features, b.embed(samples, progress=False).features)
    assert b.model.images == 0


def test_bf16_stays_close_to_fp32(tmp_path):
    samples = write_images(tmp_path / "img", 2)
    fp32 = FeatureExtractor(resnet18_settings(), device="cpu", use_cache=False).embed(samples, progress=False)
    bf16 = FeatureExtractor(resnet18_settings(precision="bf16"), device="cpu", use_cache=False).embed(
        samples, progress=False
    )
    relative = (bf16.features - fp32.features).norm() / fp32.features.norm()
    assert 0 < relative < 0.03


def test_embed_remembers_its_last_sets_and_hands_out_copies(tmp_path):
    """The second embedding of the same images takes no backbone pass and equals the first; changing a
    returned tensor in place does not change what is handed out next; a third set pushes out the oldest."""
    samples = write_images(tmp_path / "img", 3)
    extractor = FeatureExtractor(resnet18_settings(), device="cpu", use_cache=False)
    extractor.model = CountingModel(extractor.model)
    first = extractor.embed(samples, progress=False).features
    reference = first.clone()
    first.zero_()  # the caller's own tensor
    again = extractor.embed(samples, progress=False).features
    assert extractor.model.images == 3  # no second pass
    torch.testing.assert_close(again, reference)
    extractor.embed(samples[:1], progress=False)
    extractor.embed(samples[1:], progress=False)  # RECENT = 2: the full set is now the oldest, pushed out
    assert extractor.model.images == 6
    torch.testing.assert_close(extractor.embed(samples, progress=False).features, reference)
    assert extractor.model.images == 9
