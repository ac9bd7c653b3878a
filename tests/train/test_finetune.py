"""End-to-end fine-tuning of a tiny GeM network with mined tuples: it learns, p moves, checkpoints resume."""

import numpy as np
import pytest
import torch

from xmr_lib.core import checkpoint
from xmr_lib.retrieval.pooling import GeM
from xmr_lib.train.finetune import RetrievalNet, embed, parameter_groups, train_retrieval_net


def _toy(seed=0, groups=12, per=6):
    """Inputs (N, 8, 5, 5): a group's signature is the activation level of channels 0-3, hidden under strong
    random nuisance activations in channels 4-7, so the untrained network retrieves poorly."""
    g = torch.Generator().manual_seed(seed)
    sig = torch.rand(groups, 4, 1, 1, generator=g)
    n = groups * per
    x = torch.cat(
        [
            sig.repeat_interleave(per, 0) * (0.7 + 0.6 * torch.rand(n, 4, 5, 5, generator=g)),
            3.0 * torch.rand(n, 4, 5, 5, generator=g),
        ],
        dim=1,
    )
    return x, np.repeat(np.arange(groups), per)


def _net(seed=0):
    torch.manual_seed(seed)
    conv = torch.nn.Sequential(torch.nn.Conv2d(8, 8, 1), torch.nn.BatchNorm2d(8), torch.nn.ReLU())
    return RetrievalNet(conv, GeM(p=3.0, learnable=True))


def _map_at_5(net, x, g):
    d = embed(net, x)
    s = d @ d.T
    s.fill_diagonal_(-np.inf)
    top = torch.topk(s, 5, dim=1).indices.numpy()
    return float((g[top] == g[:, None]).mean())


def test_parameter_groups_pool_lr_and_no_weight_decay():
    net = _net()
    groups = parameter_groups(net, lr=1e-3, pool_lr_mult=10, weight_decay=1e-4)
    assert len(groups) == 2
    assert groups[1]["params"] == [net.pool.p] and groups[1]["lr"] == pytest.approx(1e-2)
    assert groups[1]["weight_decay"] == 0 and groups[0]["weight_decay"] == 1e-4


def test_training_improves_retrieval_and_moves_p(run_dir):
    x, g = _toy()
    net = _net()
    before = _map_at_5(net, x, g)
    bn_mean = net.features[1].running_mean.clone()
    hist = train_retrieval_net(
        net,
        x,
        g,
        epochs=4,
        queries_per_epoch=48,
        pool_size=72,
        n_negatives=3,
        margin=0.7,
        lr=1e-2,
        seed=0,
        device="cpu",
        progress=False,
    )
    after = _map_at_5(net, x, g)
    assert after > before + 0.1, (before, after)
    assert len(hist.loss) == 4 and hist.loss[-1] < hist.loss[0]
    assert hist.p[-1] != pytest.approx(3.0, abs=1e-4)
    assert torch.equal(net.features[1].running_mean, bn_mean)  # BatchNorm statistics frozen


def test_checkpoint_resume_gives_the_same_result(run_dir):
    x, g = _toy(1)
    kw = dict(queries_per_epoch=24, pool_size=48, n_negatives=2, lr=5e-3, seed=3, device="cpu", progress=False)
    ref = _net(1)
    h_ref = train_retrieval_net(ref, x, g, epochs=3, **kw)
    ck = checkpoint.Checkpoint("ft_test")
    net = _net(1)
    train_retrieval_net(net, x, g, epochs=2, checkpoint=ck, **kw)
    resumed = _net(1)  # fresh weights: must come from the checkpoint
    h = train_retrieval_net(resumed, x, g, epochs=3, checkpoint=ck, **kw)
    assert len(h.loss) == 3 and ck.steps() == ["epoch_0", "epoch_1", "epoch_2"]
    assert np.allclose(h.loss, h_ref.loss, rtol=1e-4)
    for a, b in zip(resumed.parameters(), ref.parameters()):
        assert torch.allclose(a, b, atol=1e-5)


def test_triplet_loss_option_and_validation(run_dir):
    x, g = _toy(2)
    net = _net(2)
    h = train_retrieval_net(
        net,
        x,
        g,
        epochs=1,
        queries_per_epoch=12,
        pool_size=30,
        n_negatives=2,
        loss="triplet",
        margin=0.1,
        seed=0,
        device="cpu",
        progress=False,
    )
    assert np.isfinite(h.loss[0])
    with pytest.raises(ValueError, match="loss: expected"):
        train_retrieval_net(net, x, g, loss="hinge", device="cpu", progress=False)
    with pytest.raises(ValueError, match="groups: need more than n_negatives"):
        train_retrieval_net(net, x, g, n_negatives=12, device="cpu", progress=False)
    with pytest.raises(ValueError, match=r"groups: expected a 1-D array of group ids \(72,\)"):
        train_retrieval_net(net, x, g[:5], device="cpu", progress=False)


def test_split_trunk_efficientnet_and_sequential():
    from xmr_lib.encoders import backbones as models
    from xmr_lib.train.finetune import split_trunk

    torch.manual_seed(0)
    net = models.efficientnet_lite0(pretrained=False)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        for k in (0, 2):
            lower, upper = split_trunk(net, k)
            assert torch.allclose(upper(lower(x)), net.extract_features(x), atol=1e-5)
    lower, upper = split_trunk(net, 1)
    assert len(upper.blocks) == 1 and lower(x).shape[1] == 192
    seq = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.ReLU(), torch.nn.Conv2d(4, 5, 3))
    holder = torch.nn.Module()
    holder.features = seq
    lo, up = split_trunk(holder, 1)
    assert torch.allclose(up(lo(x)), seq(x))
    with pytest.raises(ValueError, match="trainable_blocks"):
        split_trunk(net, 99)
    with pytest.raises(ValueError, match="trunk: cannot split"):
        split_trunk(torch.nn.Linear(2, 2), 1)


def test_variable_size_inputs_as_a_list(run_dir):
    x, g = _toy(3, groups=8, per=4)
    items = [t[:, : 3 + i % 3, : 4 + i % 2] for i, t in enumerate(x)]  # different spatial sizes
    net = _net(3)
    d = embed(net, items, batch_size=5)
    assert d.shape == (32, 8)
    assert torch.allclose(d[0], embed(net, items[0][None])[0], atol=1e-6)
    h = train_retrieval_net(
        net, items, g, epochs=1, queries_per_epoch=8, pool_size=20, n_negatives=2, seed=0, device="cpu", progress=False
    )
    assert np.isfinite(h.loss[0])


def test_load_cirtorch_network_from_a_local_checkpoint(tmp_path):
    import torchvision

    from xmr_lib.train.finetune import load_cirtorch_network

    torch.manual_seed(0)
    tv = torchvision.models.resnet18(weights=None)
    features = torch.nn.Sequential(*list(tv.children())[:-2])
    state = {f"features.{k}": v for k, v in features.state_dict().items()}
    state["pool.p"] = torch.tensor([2.5])
    m, P = np.zeros((512, 1)), np.eye(512)
    meta = {
        "architecture": "resnet18",
        "pooling": "gem",
        "local_whitening": False,
        "regional": False,
        "whitening": False,
        "mean": [0.485, 0.456, 0.406],
        "std": [0.229, 0.224, 0.225],
        "Lw": {"retrieval-SfM-120k": {"ss": {"m": m, "P": P}, "ms": {"m": m, "P": P}}},
    }
    path = tmp_path / "net.pth"
    torch.save({"meta": meta, "state_dict": state}, path)
    net, got = load_cirtorch_network(path)
    assert abs(net.pool.p.item() - 2.5) < 1e-6 and got["Lw"]["retrieval-SfM-120k"]["ms"]["P"].shape == (512, 512)
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        expect = torch.nn.functional.normalize(
            features.eval()(x).clamp(min=1e-6).pow(2.5).mean(dim=(2, 3)).pow(1 / 2.5), dim=1
        )
        assert torch.allclose(net(x), expect, atol=1e-5)
    torch.save({"weights": 1}, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="not a cnnimageretrieval-pytorch checkpoint"):
        load_cirtorch_network(tmp_path / "bad.pth")


def test_small_pool_falls_back_to_random_negatives(run_dir):
    x, g = _toy(4, groups=6, per=4)
    net = _net(4)
    # a pool of 3 images has at most 3 groups, fewer than needed for 4 negatives once the query's group is out
    h = train_retrieval_net(
        net, x, g, epochs=1, queries_per_epoch=6, pool_size=3, n_negatives=4, seed=0, device="cpu", progress=False
    )
    assert np.isfinite(h.loss[0]) and np.isfinite(h.negative_distance[0])
