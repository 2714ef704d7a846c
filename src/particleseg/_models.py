"""Where the model lives: DeepLabV3 variants, their device and CPU threads.

torchvision's builders download ImageNet backbone weights by default; here
nothing is downloaded unless the user asks for ``weights="imagenet"``.
"""

from __future__ import annotations

import copy
import re

import torch
from torch import nn

__all__ = [
    "BACKBONES", "ThreadSetting", "build_model", "fold_batch_norms", "forward_logits",
    "output_stride", "resolve_device",
]

#: Backbones the estimator accepts, with their torchvision builders.
BACKBONES = ("resnet50", "resnet101", "mobilenet_v3_large")

N_CLASSES = 3


def build_model(backbone: str = "resnet50", imagenet: bool = False) -> nn.Module:
    """DeepLabV3 with ``backbone`` and a 3-class head (no auxiliary head).

    Parameters
    ----------
    backbone : {"resnet50", "resnet101", "mobilenet_v3_large"}
    imagenet : bool
        Start the backbone from torchvision's ImageNet weights (downloaded by
        torchvision on first use; needs a network).
    """
    from torchvision.models import segmentation as seg

    if backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {BACKBONES}; got {backbone!r}.")
    builder = getattr(seg, f"deeplabv3_{backbone}")
    weights_backbone = "DEFAULT" if imagenet else None
    model = builder(
        weights=None,
        weights_backbone=weights_backbone,
        num_classes=N_CLASSES,
        aux_loss=False,
    )
    if backbone == "mobilenet_v3_large":
        # torchvision's MobileNetV3 uses BatchNorm momentum 0.01 (tuned for long
        # ImageNet runs): its running statistics then lag ~100 steps behind the
        # weights, and after a short training the model predicts from stale
        # statistics (often all background). Use PyTorch's 0.1, like the ResNet
        # backbones and the DeepLab head.
        for module in model.modules():
            if isinstance(module, nn.BatchNorm2d):
                module.momentum = 0.1
    return model


def output_stride(backbone: str) -> int:
    """The factor by which the backbone's features are coarser than the image."""
    return 16 if backbone == "mobilenet_v3_large" else 8


def forward_logits(model: nn.Module, batch: torch.Tensor) -> torch.Tensor:
    """Run the model on a (N, 1, H, W) batch; return (N, 3, H, W) logits.

    The micrograph's one channel is repeated to the three channels the
    backbone expects. This is the one place where torchvision's
    ``{"out": ...}`` dictionary is unwrapped.
    """
    return model(batch.expand(-1, 3, -1, -1))["out"]


def _conv_bn_pairs(parent):
    """Names of (Conv2d, BatchNorm2d) children of ``parent`` where the norm follows the conv.

    In a Sequential, consecutive children; elsewhere (torchvision's ResNet
    stem and bottlenecks), ``convK`` followed by ``bnK``.
    """
    children = parent._modules
    if isinstance(parent, nn.Sequential):
        names = list(children)
        pairs = zip(names, names[1:])
    else:
        pairs = [(name, "bn" + name[4:]) for name in children
                 if re.fullmatch(r"conv\d+", name) and "bn" + name[4:] in children]
    return [(c, b) for c, b in pairs if isinstance(children[c], nn.Conv2d)
            and isinstance(children[b], nn.BatchNorm2d) and children[b].track_running_stats]


def fold_batch_norms(model: nn.Module) -> nn.Module:
    """A copy of ``model`` for inference, each BatchNorm folded into its convolution.

    In evaluation mode a BatchNorm is a fixed affine map per channel, which
    the convolution before it absorbs into its weights and bias: the copy
    computes the same function (up to floating-point rounding) with one pass
    over every layer's output fewer. ``model`` itself is left as it is, so
    it can still be trained.

    Parameters
    ----------
    model : torch.nn.Module
        A network of :func:`build_model`.

    Returns
    -------
    folded : torch.nn.Module
        In evaluation mode, on the same device, without gradients.
    """
    from torch.nn.utils.fusion import fuse_conv_bn_weights

    folded = copy.deepcopy(model).eval().requires_grad_(False)
    for parent in list(folded.modules()):
        for conv_name, bn_name in _conv_bn_pairs(parent):
            conv, bn = parent._modules[conv_name], parent._modules[bn_name]
            conv.weight, conv.bias = fuse_conv_bn_weights(
                conv.weight, conv.bias, bn.running_mean, bn.running_var, bn.eps, bn.weight,
                bn.bias)
            parent._modules[bn_name] = nn.Identity()
    return folded


# ----------------------------------------------------------------------------
# Devices and threads


def resolve_device(device) -> torch.device:
    """``"auto"`` is CUDA when available, else CPU; anything else as given."""
    if device == "auto" or device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f'device must be "auto", "cpu", "cuda" or "cuda:N"; got {device!r}.'
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f'device={device!r} was asked for but no CUDA GPU is available; use device="cpu" '
            'or "auto".'
        )
    return dev


class ThreadSetting:
    """Set torch's CPU thread count for a block, then restore it.

    Parameters
    ----------
    n_threads : int or None
        Threads inside the block; None keeps torch's setting.
    """

    def __init__(self, n_threads):
        self.n_threads = n_threads

    def __enter__(self):
        self.previous = torch.get_num_threads()
        if self.n_threads is not None:
            torch.set_num_threads(self.n_threads)

    def __exit__(self, *exc):
        torch.set_num_threads(self.previous)
