"""``xmr_lib.chapters.ch08.finetune``: crops by hand, the frozen / trainable split of :class:`Layer4Classifier`, bad
input. (The full fine-tuning path, on the real-format fixture: ``test_full_ch08.py``.)"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch08 import finetune
from xmr_lib.encoders import backbones


@pytest.fixture(scope="module")
def trunk():
    torch.manual_seed(0)
    return backbones.backbone("resnet18", pretrained=False, device="cpu")  # same layout as ResNet-101, smaller


def test_random_crop_takes_windows_at_the_drawn_offsets():
    x = torch.arange(2 * 3 * 5 * 5, dtype=torch.float32).reshape(2, 3, 5, 5)
    gen = torch.Generator().manual_seed(3)
    off = torch.randint(0, 3, (2, 2), generator=torch.Generator().manual_seed(3))
    got = finetune.random_crop(x, 3, gen)
    for i, (r, c) in enumerate(off.tolist()):
        assert torch.equal(got[i], x[i, :, r : r + 3, c : c + 3])
    assert torch.equal(finetune.centre_crop(x, 3), x[..., 1:4, 1:4])
    with pytest.raises(ValueError, match="6 px crop of 5 px"):
        finetune.random_crop(x, 6, gen)


def test_layer4_classifier_freezes_all_but_layer4_and_fc(trunk):
    w, b = np.ones((4, 512), np.float32), np.arange(4, dtype=np.float32)
    m = finetune.Layer4Classifier(trunk, w, b, dropout=0.5).train()
    trainable = {n.split(".")[0] for n, p in m.named_parameters() if p.requires_grad}
    assert trainable == {"layer4", "fc"} and not m.frozen.training and m.layer4.training
    assert torch.equal(m.fc.bias, torch.arange(4.0)) and m.fc.weight.shape == (4, 512)
    x = torch.randn(2, 3, 32, 32)
    m.eval()
    want = trunk.net.layer4(trunk.features[:-1](x)).mean(dim=(2, 3)) @ torch.ones(512, 4) + torch.arange(4.0)
    torch.testing.assert_close(m(x), want, rtol=1e-4, atol=1e-4)  # before training: the source trunk + new head
    assert m.layer4 is not trunk.net.layer4  # a copy: the source is never trained


def test_bad_input_is_named(trunk):
    with pytest.raises(ValueError, match=r"weight, bias: expected \(N, 512\)"):
        finetune.Layer4Classifier(trunk, np.ones((4, 10)), np.zeros(4))
    with pytest.raises(ValueError, match="dropout"):
        finetune.Layer4Classifier(trunk, np.ones((4, 512)), np.zeros(4), dropout=1.0)
    lite = backbones.backbone("efficientnet_lite0", pretrained=False, device="cpu")
    with pytest.raises(ValueError, match="expected a ResNet"):
        finetune.Layer4Classifier(lite, np.ones((4, 1280)), np.zeros(4))
