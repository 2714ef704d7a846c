"""Where the model lives: DeepLabV3 variants, their device and CPU threads.

torchvision's builders download ImageNet backbone weights by default; here
nothing is downloaded unless the user asks for ``weights="imagenet"``.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = [
    "BACKBONES", "ThreadSetting", "build_model", "forward_logits", "output_stride",
    "resolve_device",
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
