"""The backbone forward on channels-last tensors gives the same layer maps as on contiguous ones."""

import dataclasses

import pytest
import torch

from adlib.data.datasets import Preprocessing
from adlib.features.extractor import FeatureExtractor, FeatureSettings

SMALL = Preprocessing(resize=64, crop=64)


@pytest.mark.parametrize(
    "settings",
    [
        FeatureSettings(backbone="resnet18", weights=None, preprocessing=SMALL),
        FeatureSettings(backbone="wide_resnet50_2", weights=None, preprocessing=SMALL),
        FeatureSettings(preprocessing=SMALL),  # EfficientNet-Lite0 with its ImageNet weights
    ],
    ids=["resnet18", "wide_resnet50_2", "efficientnet-lite0"],
)
def test_channels_last_forward_equals_contiguous_up_to_rounding(settings):
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(0))
    plain = FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=False)
    nhwc = FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=True)
    expected, got = plain._forward(images), nhwc._forward(images)
    assert got.keys() == expected.keys()
    for layer, value in got.items():
        assert value.is_contiguous(), f"{layer}: maps leave the extractor in the default (NCHW) layout"
        scale = expected[layer].abs().max()
        torch.testing.assert_close(value / scale, expected[layer] / scale, rtol=0, atol=1e-5)


def test_bf16_runs_channels_last_and_stays_close_to_fp32():
    """bf16 autocast rounds, so only closeness: the maps agree to bf16's ~3 significant digits."""
    settings = FeatureSettings(backbone="resnet18", weights=None, preprocessing=SMALL)
    images = torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))
    fp32 = FeatureExtractor(settings, device="cpu", use_cache=False, channels_last=False)._forward(images)
    bf16_extractor = FeatureExtractor(dataclasses.replace(settings, precision="bf16"), device="cpu", use_cache=False)
    assert bf16_extractor.channels_last
    bf16 = bf16_extractor._forward(images)
    for layer, value in bf16.items():
        error = (value.float() - fp32[layer]).norm() / fp32[layer].norm()
        assert 0 < error < 0.05, f"{layer}: relative error {error:.3g}"
