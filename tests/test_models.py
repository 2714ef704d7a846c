"""Tests of particleseg._models: the DeepLabV3 variants the estimator builds.

The networks are checked as modules (type, backbone depth, head), not by the
name of a parameter. Nothing here may download weights: torchvision's weight
loader is replaced by one that fails.
"""

from __future__ import annotations

import pytest
import torch
import torchvision.models._api as torchvision_api
from torch import nn
from torchvision.models.mobilenetv3 import InvertedResidual
from torchvision.models.resnet import Bottleneck
from torchvision.models.segmentation.deeplabv3 import DeepLabHead, DeepLabV3

from particleseg import ParticleSegmenter
from particleseg._models import (
    BACKBONES,
    build_model,
    fold_batch_norms,
    forward_logits,
    output_stride,
)
from particleseg.datasets import make_particles


class _DownloadAttempted(Exception):
    pass


@pytest.fixture(autouse=True)
def no_download(monkeypatch):
    """Make any attempt to fetch torchvision weights fail loudly."""

    def refuse(url, *args, **kwargs):
        raise _DownloadAttempted(url)

    monkeypatch.setattr(torchvision_api, "load_state_dict_from_url", refuse)


def _resnet_depths(model):
    """Number of Bottleneck blocks in layer1..layer4 of a DeepLabV3 ResNet backbone."""
    depths = []
    for name in ("layer1", "layer2", "layer3", "layer4"):
        layer = getattr(model.backbone, name)
        assert all(isinstance(block, Bottleneck) for block in layer)
        depths.append(len(layer))
    return depths


def _assert_three_class_head(model):
    assert isinstance(model, DeepLabV3)
    assert isinstance(model.classifier, DeepLabHead)
    last = model.classifier[-1]
    assert isinstance(last, nn.Conv2d)
    assert last.out_channels == 3
    assert model.aux_classifier is None


def _assert_resnet50(model):
    _assert_three_class_head(model)
    assert _resnet_depths(model) == [3, 4, 6, 3]
    # The ResNet-50 stem takes the three (repeated) channels of a micrograph.
    assert model.backbone.conv1.in_channels == 3
    assert model.backbone.layer4[-1].conv3.out_channels == 2048


def test_build_model_resnet50_module():
    _assert_resnet50(build_model("resnet50"))


def test_build_model_resnet101_depth():
    model = build_model("resnet101")
    _assert_three_class_head(model)
    assert _resnet_depths(model) == [3, 4, 23, 3]


def test_build_model_mobilenet_module():
    model = build_model("mobilenet_v3_large")
    _assert_three_class_head(model)
    # MobileNetV3-Large has 15 inverted-residual blocks.
    blocks = [m for m in model.backbone.modules() if isinstance(m, InvertedResidual)]
    assert len(blocks) == 15
    # The backbone's BatchNorm momentum is raised from torchvision's 0.01 to
    # 0.1 so that the running statistics follow a short training.
    momenta = {m.momentum for m in model.modules() if isinstance(m, nn.BatchNorm2d)}
    assert momenta == {0.1}


def test_build_model_weights_are_random_and_never_downloaded():
    torch.manual_seed(0)
    a = build_model("mobilenet_v3_large").state_dict()
    torch.manual_seed(1)
    b = build_model("mobilenet_v3_large").state_dict()
    name = "backbone.0.0.weight"  # first convolution
    assert not torch.equal(a[name], b[name])


def test_build_model_imagenet_asks_for_backbone_weights():
    # imagenet=True must go to torchvision's weight loader (here: refused).
    with pytest.raises(_DownloadAttempted, match="mobilenet_v3_large"):
        build_model("mobilenet_v3_large", imagenet=True)


def test_build_model_unknown_backbone():
    with pytest.raises(ValueError, match=r"backbone must be one of .*resnet50.*; got 'vgg16'"):
        build_model("vgg16")


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v3_large"])
def test_output_stride_matches_the_network(backbone):
    model = build_model(backbone).eval()
    with torch.no_grad():
        features = model.backbone(torch.zeros(1, 3, 64, 64))["out"]
    assert features.shape[-2:] == (64 // output_stride(backbone),) * 2


def test_forward_logits_shape():
    model = build_model("mobilenet_v3_large").eval()
    with torch.no_grad():
        out = forward_logits(model, torch.zeros(2, 1, 48, 80))
    assert out.shape == (2, 3, 48, 80)


def test_backbones_constant():
    assert set(BACKBONES) == {"resnet50", "resnet101", "mobilenet_v3_large"}


def test_default_segmenter_trains_deeplabv3_resnet50():
    """ParticleSegmenter() with its defaults fits a 3-class DeepLabV3-ResNet-50.

    Only the training length and crop are shrunk: one 64x64 image, one epoch
    (two 64x64 crops of the one image in one step).
    """
    X, y = make_particles(n_images=1, shape=(64, 64), random_state=0)
    seg = ParticleSegmenter(max_epochs=1, crop_size=64, batch_size=2, device="cpu",
                            random_state=0)
    assert seg.get_params()["backbone"] == "resnet50"
    seg.fit(X, y)
    _assert_resnet50(seg.model_)
    assert seg.n_iter_ == 1
    # Exactly one optimisation step ran (BatchNorm counts the batches it saw).
    assert int(seg.model_.backbone.bn1.num_batches_tracked) == 1
    assert seg.predict(X[0]).shape == (64, 64)


def test_zero_epochs_builds_an_untrained_model():
    X, y = make_particles(n_images=1, shape=(64, 64), random_state=0)
    seg = ParticleSegmenter(max_epochs=0, crop_size=64, batch_size=2, device="cpu",
                            random_state=0).fit(X, y)
    _assert_resnet50(seg.model_)
    assert seg.n_iter_ == 0
    assert seg.history_ == []
    assert not seg.model_.training
    # Untrained BatchNorm layers still hold their initial statistics.
    bn = seg.model_.backbone.bn1
    assert torch.equal(bn.running_mean, torch.zeros_like(bn.running_mean))
    assert int(bn.num_batches_tracked) == 0


def _with_running_statistics(model, seed=0):
    """``model`` with BatchNorm statistics and affine weights that are not the identity."""
    generator = torch.Generator().manual_seed(seed)
    for module in model.modules():
        if isinstance(module, nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=generator) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=generator) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=generator) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=generator) * 0.1)
    return model.eval()


@pytest.mark.parametrize("backbone", ["resnet50", "mobilenet_v3_large"])
def test_fold_batch_norms_computes_the_same_function(backbone):
    torch.manual_seed(0)
    model = _with_running_statistics(build_model(backbone))
    folded = fold_batch_norms(model)
    assert not any(isinstance(m, nn.BatchNorm2d) for m in folded.modules())
    assert sum(isinstance(m, nn.BatchNorm2d) for m in model.modules()) > 0  # left as it was
    x = torch.randn(2, 1, 64, 80)
    with torch.no_grad():
        expected, got = forward_logits(model, x), forward_logits(folded, x)
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-4)


def test_inference_model_is_folded_again_when_the_weights_change():
    from particleseg._inference import inference_model

    torch.manual_seed(0)
    model = _with_running_statistics(build_model("mobilenet_v3_large"))
    first = inference_model(model)
    assert inference_model(model) is first
    with torch.no_grad():
        model.classifier[-1].bias.add_(1.0)  # as an optimiser step does, in place
    second = inference_model(model)
    assert second is not first
    torch.testing.assert_close(second.classifier[-1].bias, model.classifier[-1].bias)
