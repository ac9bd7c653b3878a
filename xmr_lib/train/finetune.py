"""Fine-tuning a retrieval network end to end with a Siamese or triplet loss and hard-negative mining.

The recipe of cnnimageretrieval-pytorch (Radenović et al. [57], thesis §2.4.1.2): a network ``f`` that maps an
input to an L2-normalised global descriptor (convolutional layers → pooling such as GeM → L2, optionally a
whitening ``nn.Linear`` → L2; :class:`RetrievalNet`) is trained on tuples ``(q, p, n_1 … n_k)``:

- each epoch draws ``queries_per_epoch`` query–positive pairs (:func:`xmr_lib.retrieval.mining.positive_pairs`) and a random
  pool of ``pool_size`` items, embeds the pool with the current network and mines ``n_negatives`` hard negatives
  per query, one per other group (:func:`xmr_lib.retrieval.mining.hard_negatives`);
- the loss of a tuple is the sum over its pairs ``(q, p)`` (matching) and ``(q, n_i)`` (non-matching) of
  :func:`xmr_lib.retrieval.losses.contrastive_loss`, or the sum over ``(q, p, n_i)`` of :func:`xmr_lib.retrieval.losses.triplet_loss`;
- Adam with the pooling parameter ``p`` at ``pool_lr_mult ×`` the learning rate and no weight decay
  (:func:`parameter_groups`), an exponential learning-rate decay per epoch, BatchNorm layers frozen.

:func:`train_retrieval_net` runs it, checkpointing every epoch (``xmr_lib.core.checkpoint.Checkpoint``) so a long run resumes.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.core.setup import resolve_device
from xmr_lib.retrieval import losses, mining
from xmr_lib.retrieval.pooling import MAC, AvgPool, GeM, l2_normalize
from xmr_lib.train import distributed, loop

__all__ = [
    "RetrievalNet",
    "split_trunk",
    "parameter_groups",
    "freeze_batchnorm",
    "embed",
    "FinetuneHistory",
    "train_retrieval_net",
    "load_cirtorch_network",
]


class RetrievalNet(nn.Module):
    """``input → features → pooling → L2 [→ whitening Linear → L2]``: a global-descriptor network.

    Args:
        features: module mapping inputs to ``(B, C, H, W)`` feature maps (a CNN trunk or the trainable top of one).
        pool: module mapping maps to ``(B, C)`` descriptors (e.g. :class:`xmr_lib.retrieval.pooling.GeM`).
        whiten: optional ``nn.Linear(C, D)`` (e.g. ``Whitening.to_linear()``), applied after the first L2.
    """

    def __init__(self, features: nn.Module, pool: nn.Module, whiten: nn.Module | None = None):
        super().__init__()
        self.features, self.pool, self.whiten = features, pool, whiten

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        v = l2_normalize(self.pool(self.features(x)))
        if self.whiten is not None:
            v = l2_normalize(self.whiten(v))
        return v


class _EfficientNetLower(nn.Module):
    def __init__(self, net: nn.Module, k: int):
        super().__init__()
        self.conv_stem, self.bn0, self.act = net._conv_stem, net._bn0, net._swish
        self.blocks = nn.ModuleList(list(net._blocks)[:k])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.act(self.bn0(self.conv_stem(x)))
        for b in self.blocks:
            x = b(x)
        return x


class _EfficientNetUpper(nn.Module):
    def __init__(self, net: nn.Module, k: int):
        super().__init__()
        self.blocks = nn.ModuleList(list(net._blocks)[k:])
        self.conv_head, self.bn1, self.act = net._conv_head, net._bn1, net._swish

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for b in self.blocks:
            x = b(x)
        return self.act(self.bn1(self.conv_head(x)))


def split_trunk(trunk: nn.Module, trainable_blocks: int = 1) -> tuple[nn.Module, nn.Module]:
    """Split a CNN trunk into a frozen ``lower`` part and a trainable ``upper`` part: ``trunk(x) =
    upper(lower(x))``. Fine-tuning only the upper blocks lets ``lower(x)`` be computed once and cached.

    Supports EfficientNet (``efficientnet_lite_pytorch``; also an :class:`xmr_lib.encoders.backbones.FeatureTrunk` wrapping
    one): ``upper`` = the last ``trainable_blocks`` MBConv blocks + head conv, BN, ReLU6; and any trunk whose
    ``features`` is an ``nn.Sequential`` (torchvision ResNet/VGG trunks of :func:`xmr_lib.encoders.backbones.backbone`):
    ``upper`` = its last ``trainable_blocks`` children. The modules are shared with ``trunk`` (no copy).
    """
    net = getattr(trunk, "net", trunk)
    k = int(trainable_blocks)
    if hasattr(net, "_blocks") and hasattr(net, "_conv_head"):
        n = len(net._blocks)
        if not 0 <= k <= n:
            raise ValueError(
                f"trainable_blocks: expected an int in [0, {n}] for this EfficientNet, got {trainable_blocks!r}"
            )
        return _EfficientNetLower(net, n - k), _EfficientNetUpper(net, n - k)
    feats = getattr(trunk, "features", None)
    if isinstance(feats, nn.Sequential):
        n = len(feats)
        if not 1 <= k <= n:
            raise ValueError(f"trainable_blocks: expected an int in [1, {n}] for this trunk, got {trainable_blocks!r}")
        return feats[: n - k], feats[n - k :]
    raise ValueError(
        f"trunk: cannot split a {type(trunk).__name__}; expected an EfficientNet or a trunk with an "
        "nn.Sequential .features"
    )


def parameter_groups(net: nn.Module, lr: float, pool_lr_mult: float = 10.0, weight_decay: float = 1e-6) -> list[dict]:
    """Optimizer groups in cirtorch's way: pooling parameters (GeM's ``p``) at ``lr · pool_lr_mult`` and weight
    decay 0 ("IMPORTANT: no weight decay for pooling parameter p"), everything else at ``lr`` with ``weight_decay``.
    Frozen parameters (``requires_grad=False``) are left out."""
    pool_params = {id(p) for m in net.modules() if isinstance(m, GeM) for p in m.parameters(recurse=False)}
    rest = [p for p in net.parameters() if p.requires_grad and id(p) not in pool_params]
    pooled = [p for p in net.parameters() if p.requires_grad and id(p) in pool_params]
    groups = []
    if rest:
        groups.append({"params": rest, "lr": lr, "weight_decay": weight_decay})
    if pooled:
        groups.append({"params": pooled, "lr": lr * pool_lr_mult, "weight_decay": 0.0})
    if not groups:
        raise ValueError("net: has no trainable parameters")
    return groups


def freeze_batchnorm(net: nn.Module) -> nn.Module:
    """Put every BatchNorm layer in eval mode (running statistics frozen), as cirtorch does during fine-tuning."""
    for m in net.modules():
        if isinstance(m, nn.modules.batchnorm._BatchNorm):
            m.eval()
    return net


def _take(inputs, idx) -> torch.Tensor | list:
    """``inputs[idx]`` for a tensor, or the listed items of a list of variable-size tensors."""
    if isinstance(inputs, torch.Tensor):
        return inputs[torch.as_tensor(np.asarray(idx), dtype=torch.long)]
    return [inputs[int(i)] for i in np.asarray(idx).reshape(-1)]


def _forward(net, items, device) -> torch.Tensor:
    """``net`` on a batch: a ``(B, ...)`` tensor in one call; a list of same-shape tensors stacked; a list of
    variable-size tensors one at a time (images of different aspect ratios, as cirtorch does with batch size 1)."""
    if isinstance(items, torch.Tensor):
        return net(items.to(device))
    if len({tuple(t.shape) for t in items}) == 1:
        return net(torch.stack(list(items)).to(device))
    return torch.cat([net(t[None].to(device)) for t in items])


@torch.no_grad()
def embed(
    net: Callable[[torch.Tensor], torch.Tensor], inputs, batch_size: int = 64, device: str | torch.device = "cpu"
) -> torch.Tensor:
    """Descriptors of ``inputs`` with ``net`` in eval mode, batched: ``(N, D)`` float32 on the CPU.

    ``inputs`` is an ``(N, ...)`` tensor or a list of N tensors (possibly of different spatial sizes).
    """
    if int(batch_size) < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    was_training = getattr(net, "training", False)
    if isinstance(net, nn.Module):
        net.eval()
    out = [_forward(net, inputs[i : i + batch_size], device).float().cpu() for i in range(0, len(inputs), batch_size)]
    if isinstance(net, nn.Module) and was_training:
        net.train()
    return torch.cat(out) if out else torch.empty(0)


@dataclass
class FinetuneHistory:
    """Per-epoch records of :func:`train_retrieval_net` (lists, one entry per epoch)."""

    loss: list[float] = field(default_factory=list)
    negative_distance: list[float] = field(default_factory=list)  # mean L2 distance query–mined negative
    positive_distance: list[float] = field(default_factory=list)  # mean L2 distance query–positive
    p: list[float] = field(default_factory=list)  # mean GeM p after the epoch (nan if none)
    lr: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, list[float]]:
        return {k: list(v) for k, v in self.__dict__.items()}


def _gem_p(net: nn.Module) -> float:
    ps = [m.p.detach().float().mean().item() for m in net.modules() if isinstance(m, GeM)]
    return float(np.mean(ps)) if ps else math.nan


class FinetuneTask(loop.Task):
    """The tuple training of :func:`train_retrieval_net` as a :class:`xmr_lib.train.loop.Task`: every epoch mines
    hard negatives for fresh query–positive pairs (``on_epoch_start``), then steps Adam on batches of tuples.

    Args are those of :func:`train_retrieval_net` (``groups`` as checked integer labels), plus ``dist`` (a
    :class:`xmr_lib.train.distributed.DistContext`) and ``device`` (the resolved ``torch.device``). ``hist``, the
    :class:`FinetuneHistory`, travels with checkpoints together with the network, optimiser and schedule.
    """

    def __init__(
        self,
        net: nn.Module,
        inputs,
        groups: np.ndarray,
        *,
        queries_per_epoch: int,
        pool_size: int,
        n_negatives: int,
        loss: str,
        margin: float,
        contrastive_form: str,
        lr: float,
        pool_lr_mult: float,
        weight_decay: float,
        lr_decay: float,
        batch_tuples: int,
        seed: int,
        device: torch.device,
        dist,
        callback: Callable[[int, nn.Module], None] | None = None,
    ):
        self.net, self.inputs, self.g = net, inputs, groups
        self.queries_per_epoch, self.pool_size, self.n_negatives = queries_per_epoch, pool_size, n_negatives
        self.loss, self.margin, self.contrastive_form = loss, margin, contrastive_form
        self.lr, self.pool_lr_mult, self.weight_decay, self.lr_decay = lr, pool_lr_mult, weight_decay, lr_decay
        self.batch_tuples, self.seed, self.device, self.dist, self.callback = batch_tuples, seed, device, dist, callback
        self.model = None  # DistributedDataParallel under torchrun, else net itself
        self.opt = self.sched = None
        self.hist = FinetuneHistory()
        self.t0, self.rng, self.qi, self.pi, self.neg, self.total = 0.0, None, None, None, None, 0.0  # this epoch's

    def on_fit_start(self, trainer: loop.Trainer) -> None:
        self.net.to(trainer.device)
        self.model = self.dist.wrap(self.net, trainer.device)
        self.opt = torch.optim.Adam(parameter_groups(self.net, self.lr, self.pool_lr_mult, self.weight_decay))
        self.sched = torch.optim.lr_scheduler.ExponentialLR(self.opt, gamma=self.lr_decay)

    def on_epoch_start(self, trainer: loop.Trainer, epoch: int) -> None:
        # every epoch reseeds its own draws, so that an epoch does not depend on how the run got there
        net, inputs, g, dev, k = self.net, self.inputs, self.g, self.device, self.n_negatives
        self.t0 = time.time()
        rng = self.rng = np.random.default_rng([int(self.seed), epoch])
        torch.manual_seed(int(self.seed) * 1000 + epoch)
        qi, pi = mining.positive_pairs(g, int(self.queries_per_epoch), rng)
        pool = rng.choice(len(inputs), size=min(int(self.pool_size), len(inputs)), replace=False)
        qd = embed(net, _take(inputs, qi), device=dev)
        pd = embed(net, _take(inputs, pool), device=dev)
        neg_local, _ = mining.hard_negatives(qd, pd, g[qi], g[pool], k)
        found = neg_local >= 0
        neg = pool[np.maximum(neg_local, 0)]  # (Q, k) indices into inputs
        if not found.all():  # the random pool held too few other groups: fill with random other-group items
            neg = np.where(found, neg, mining.random_negatives(g[qi], g, k, rng))
        self.hist.negative_distance.append(
            float(
                torch.linalg.vector_norm(qd[:, None, :] - pd[torch.as_tensor(np.where(found, neg_local, 0))], dim=2)[
                    torch.as_tensor(found)
                ].mean()
            )
        )
        self.hist.positive_distance.append(
            float(torch.linalg.vector_norm(qd - embed(net, _take(inputs, pi), device=dev), dim=1).mean())
        )
        self.qi, self.pi, self.neg, self.total = qi, pi, neg, 0.0
        net.train()
        freeze_batchnorm(net)

    def batches(self, trainer: loop.Trainer, epoch: int):
        order = self.rng.permutation(len(self.qi))
        for b in range(0, len(order), int(self.batch_tuples)):
            yield order[b : b + int(self.batch_tuples)]  # the global batch

    def training_step(self, trainer: loop.Trainer, sel: np.ndarray) -> dict:
        qi, pi, neg, dev, dist = self.qi, self.pi, self.neg, self.device, self.dist
        B, k = len(sel), self.n_negatives
        mine, weight = dist.shard(sel), 1.0  # this rank's tuples (all of them in one process)
        if len(mine) == 0:  # a short last batch: join the gradient reduction
            mine, weight = sel[:1], 0.0
        Bm = len(mine)
        idx = np.concatenate([qi[mine], pi[mine], neg[mine].reshape(-1)])
        out = _forward(self.model, _take(self.inputs, idx), dev)
        q, p, n = out[:Bm], out[Bm : 2 * Bm], out[2 * Bm :].view(Bm, k, -1)
        if self.loss == "contrastive":
            x1 = torch.cat([q, q.repeat_interleave(k, dim=0)])
            x2 = torch.cat([p, n.reshape(Bm * k, -1)])
            lab = torch.cat([torch.ones(Bm), torch.zeros(Bm * k)]).to(dev)
            value = losses.contrastive_loss(x1, x2, lab, self.margin, form=self.contrastive_form, reduction="sum") / B
        else:
            value = losses.triplet_loss(q, p, n, self.margin, reduction="sum") / B
        # DDP averages gradients over the ranks: scaled by the world size, the average is the gradient of the
        # global batch's loss (this rank's share of it is `value`)
        return {"loss": value * (dist.world * weight), "value": value, "weight": weight, "B": B}

    def optimizers(self, trainer: loop.Trainer, sel: np.ndarray) -> list:
        return [self.opt]

    def on_step_end(self, trainer: loop.Trainer, sel: np.ndarray, out: dict) -> None:
        self.total += self.dist.sum(float(out["value"].detach()) * out["weight"]) * out["B"]

    def on_epoch_end(self, trainer: loop.Trainer, epoch: int) -> None:
        hist = self.hist
        hist.lr.append(float(self.opt.param_groups[0]["lr"]))
        self.sched.step()
        self.net.eval()
        hist.loss.append(self.total / len(self.qi))
        hist.p.append(_gem_p(self.net))
        hist.seconds.append(time.time() - self.t0)
        if self.callback is not None:
            self.callback(epoch, self.net)

    def state_dict(self) -> dict:
        return {
            "net": self.net.state_dict(),
            "optimizer": self.opt.state_dict(),
            "scheduler": self.sched.state_dict(),
            "history": self.hist.as_dict(),
        }

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["optimizer"])
        self.sched.load_state_dict(state["scheduler"])
        self.hist = FinetuneHistory(**state["history"])


def train_retrieval_net(
    net: nn.Module,
    inputs: torch.Tensor,
    groups: Any,
    *,
    epochs: int = 5,
    queries_per_epoch: int = 200,
    pool_size: int = 1000,
    n_negatives: int = 5,
    loss: str = "contrastive",
    margin: float = 0.7,
    contrastive_form: str = "cirtorch",
    lr: float = 1e-4,
    pool_lr_mult: float = 10.0,
    weight_decay: float = 1e-6,
    lr_decay: float = math.exp(-0.01),
    batch_tuples: int = 5,
    seed: int = 0,
    device: str = "auto",
    checkpoint=None,
    progress: bool = True,
    callback: Callable[[int, nn.Module], None] | None = None,
) -> FinetuneHistory:
    """Fine-tune ``net`` on tuples with hard negatives mined every epoch (module docstring).

    Args:
        net: maps a batch of ``inputs`` to ``(B, D)`` L2-normalised descriptors (e.g. :class:`RetrievalNet`).
            Trained in place; its BatchNorm layers stay frozen.
        inputs: ``(N, ...)`` training inputs (images, or cached lower-layer feature maps when only the top of a
            network is trained), or a list of N tensors of different spatial sizes (processed one at a time).
        groups: ``(N,)`` group (instance) id of each input: same group = matching.
        epochs, queries_per_epoch, pool_size, n_negatives: the tuple schedule (cirtorch: 100, 2000, 20000, 5).
        loss: ``"contrastive"`` (:func:`xmr_lib.retrieval.losses.contrastive_loss`, ``form=contrastive_form``) or
            ``"triplet"`` (:func:`xmr_lib.retrieval.losses.triplet_loss`).
        margin: the loss margin (cirtorch: contrastive 0.7-0.85, triplet 0.1).
        lr, pool_lr_mult, weight_decay, lr_decay: Adam settings (:func:`parameter_groups`), decay per epoch.
        batch_tuples: tuples per optimizer step (the loss is summed over a tuple's pairs, averaged over tuples).
        seed: seeds the pair / pool draws and torch.
        device: ``"auto"`` | ``"cpu"`` | ``"cuda"``.
        checkpoint: an ``xmr_lib.core.checkpoint.Checkpoint``; the state (network, optimiser, schedule, history and
            every random state, :class:`xmr_lib.train.loop.Trainer`) is saved after every epoch and training resumes
            from the last saved epoch.
        callback: ``callback(epoch, net)`` after every epoch (e.g. to evaluate).
    Returns:
        a :class:`FinetuneHistory`.
    """

    if loss not in ("contrastive", "triplet"):
        raise ValueError(f"loss: expected 'contrastive' or 'triplet', got {loss!r}")
    g = mining._labels(groups, "groups", len(inputs))
    for name, v in (
        ("epochs", epochs),
        ("queries_per_epoch", queries_per_epoch),
        ("pool_size", pool_size),
        ("n_negatives", n_negatives),
        ("batch_tuples", batch_tuples),
    ):
        if int(v) != v or int(v) < 1:
            raise ValueError(f"{name}: expected a positive int, got {v!r}")
    if len(np.unique(g)) <= n_negatives:
        raise ValueError(
            f"groups: need more than n_negatives={n_negatives} groups to mine distinct negatives, "
            f"got {len(np.unique(g))}"
        )
    dev = torch.device(resolve_device(device))
    dist = distributed.context(dev)
    if dist.enabled and dev.type == "cuda":
        dev = torch.device("cuda", dist.local_rank)
    task = FinetuneTask(
        net,
        inputs,
        g,
        queries_per_epoch=queries_per_epoch,
        pool_size=pool_size,
        n_negatives=n_negatives,
        loss=loss,
        margin=margin,
        contrastive_form=contrastive_form,
        lr=lr,
        pool_lr_mult=pool_lr_mult,
        weight_decay=weight_decay,
        lr_decay=lr_decay,
        batch_tuples=batch_tuples,
        seed=seed,
        device=dev,
        dist=dist,
        callback=callback,
    )
    loop.Trainer(
        max_epochs=int(epochs), device=dev, progress=progress, desc="fine-tuning", checkpoint=checkpoint, dist=dist
    ).fit(task)
    return task.hist


# ---------------------------------------------------------------------------------------------------------------
# networks published with the reference code


def load_cirtorch_network(path, device: str = "cpu") -> tuple[RetrievalNet, dict]:
    """A network fine-tuned and released by cnnimageretrieval-pytorch (e.g. ``retrievalSfM120k-resnet101-gem-*.pth``),
    from a local file (nothing is downloaded), as a :class:`RetrievalNet` (``features`` → GeM/MAC/avg → L2).

    The checkpoint holds ``meta`` (``architecture``, ``pooling``, ``mean``, ``std`` and, for the released networks,
    the learned whitening ``Lw[<dataset>]['ss' | 'ms'] = {'m': (D, 1), 'P': (D, D)}``) and a ``state_dict`` whose
    ``features.<i>.*`` keys follow the children of the torchvision network up to its last convolutional block.
    Supported: ``resnet*`` and ``vgg*`` architectures without local / regional whitening or a whitening layer.

    Returns:
        ``(net, meta)``; ``meta['Lw']`` (when present) can be turned into a :class:`xmr_lib.retrieval.whitening.Whitening`
        with ``Whitening(mean=m.ravel(), projection=P, ...)`` — cirtorch applies ``P (x − m)`` to column vectors.
    """
    import torchvision

    ckpt = torch.load(path, map_location="cpu", weights_only=False)  # meta holds numpy arrays
    if not isinstance(ckpt, dict) or "state_dict" not in ckpt or "meta" not in ckpt:
        raise ValueError(f"path: {path} is not a cnnimageretrieval-pytorch checkpoint (no 'meta' / 'state_dict')")
    meta, state = dict(ckpt["meta"]), ckpt["state_dict"]
    arch = meta.get("architecture", "")
    for flag in ("local_whitening", "regional", "whitening"):
        if meta.get(flag):
            raise ValueError(f"path: {path} uses {flag}=True, which load_cirtorch_network does not support")
    if arch.startswith("resnet"):
        tv = getattr(torchvision.models, arch)(weights=None)
        features = nn.Sequential(*list(tv.children())[:-2])
    elif arch.startswith("vgg"):
        tv = getattr(torchvision.models, arch)(weights=None)
        features = nn.Sequential(*list(tv.features.children())[:-1])
    else:
        raise ValueError(f"path: unsupported architecture {arch!r} (resnet* and vgg* are supported)")
    feats = {k[len("features.") :]: v for k, v in state.items() if k.startswith("features.")}
    features.load_state_dict(feats, strict=True)
    name = meta.get("pooling", "gem")
    if name == "gem":
        pool = GeM(p=float(state["pool.p"].reshape(-1)[0]) if "pool.p" in state else 3.0, learnable=True)
    elif name == "mac":
        pool = MAC()
    elif name == "spoc":
        pool = AvgPool()
    else:
        raise ValueError(f"path: unsupported pooling {name!r} (gem, mac and spoc are supported)")
    net = RetrievalNet(features, pool).to(device).eval()
    return net, meta
