"""One generic test over every registered model (the timm habit), plus weight loading."""

from __future__ import annotations

import pytest
import torch

import transferguard as tg
from transferguard.errors import CheckpointError, TransferGuardError, UnknownNameError


@pytest.mark.parametrize("name", tg.list_models())
@pytest.mark.parametrize("channels", [3, 1])
def test_every_model_forward_backward_and_fc_split(name, channels):
    torch.manual_seed(0)
    model = tg.create_model(name, num_classes=7, in_channels=channels, input_size=32)
    assert isinstance(model, tg.TransferModel)
    x = torch.randn(2, channels, 32, 32)
    feats = model.features(x)
    assert feats.shape == (2, model.feature_dim)
    logits = model(x)
    assert logits.shape == (2, 7)
    assert torch.isfinite(logits).all()
    assert torch.allclose(model.head(feats), logits, atol=1e-5)  # forward = C(F(x))
    logits.sum().backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    # named blocks exist, in order, and belong to the backbone
    assert model.blocks
    for b in model.blocks:
        assert isinstance(model.block(b), torch.nn.Module)
    # the head resets to new weights
    before = model.head.weight.detach().clone()
    model.reset_head()
    assert not torch.equal(before, model.head.weight)
    model.reset_head(num_classes=3)
    assert model(x).shape == (2, 3)


def test_unknown_model_and_bad_option():
    with pytest.raises(UnknownNameError, match="Known models"):
        tg.create_model("resnet9000", 10)
    with pytest.raises(TransferGuardError, match="does not take"):
        tg.create_model("lenet", 10, pretrained=True)
    with pytest.raises(TransferGuardError, match="at least 2"):
        tg.create_model("lenet", 1)


def test_torchvision_weights_load_from_a_local_file_only(tmp_path):
    import torchvision

    net = torchvision.models.resnet18(weights=None, num_classes=1000)
    path = tmp_path / "r18.pth"
    torch.save(net.state_dict(), path)
    model = tg.create_model("resnet18", 10, weights=str(path))
    assert torch.equal(model.backbone.layer1[0].conv1.weight, net.layer1[0].conv1.weight)
    with pytest.raises(CheckpointError, match="does not exist"):
        tg.create_model("resnet18", 10, weights=str(tmp_path / "missing.pth"))
    torch.save(torchvision.models.mobilenet_v2(weights=None).state_dict(), tmp_path / "mb.pth")
    with pytest.raises(CheckpointError, match="do not fit"):
        tg.create_model("resnet18", 10, weights=str(tmp_path / "mb.pth"))
    (tmp_path / "junk.pth").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="could not read"):
        tg.create_model("resnet18", 10, weights=str(tmp_path / "junk.pth"))
