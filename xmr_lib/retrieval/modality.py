"""Modality discrimination: entropy of a modality predictor, its losses, the gradient-reversal layer, a modality
classifier and the modality probe (can a linear classifier tell image from text in a common space?)."""
from __future__ import annotations
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


from xmr_lib.core.checks import check_2d
from xmr_lib.retrieval.losses import reduce_loss

IMAGE, TEXT = 0, 1  # modality labels: images are class 0, texts class 1


def negative_modality_entropy_loss(logits_image: torch.Tensor, logits_text: torch.Tensor) -> torch.Tensor:
    """Eq. 4.4, the encoders' adversarial loss ``L_s = (1/N) Σ_j Σ_m [P log P (image j) + P log P (text j)]``.

    ``L_s = −H(P_D)`` summed over the two modalities; minimising it drives D's prediction for every feature
    towards (½, ½). Its minimum is ``−2 log 2`` (both modalities fully confused).

    Args:
        logits_image: (N, 2) D's outputs on ``Z^i``; logits_text: (N', 2) on ``Z^t`` (each averaged over its rows).
    Returns:
        scalar in ``[−2 log 2, 0]``.
    """
    check_2d(logits_image, "logits_image", 2)
    check_2d(logits_text, "logits_text", 2)
    return negative_entropy_loss(logits_image, reduction="mean") + negative_entropy_loss(logits_text,
                                                                                        reduction="mean")


def modality_classification_loss(logits_image: torch.Tensor, logits_text: torch.Tensor) -> torch.Tensor:
    """Eq. 4.5, the discriminator's loss ``L_c = −(1/N) Σ_j [log P_D(image | Z_j^i) + log P_D(text | Z_j^t)]``.

    Args:
        logits_image: (N, 2) D's outputs on image features (true class 0); logits_text: (N', 2) (true class 1).
    Returns:
        scalar ≥ 0 (``2 log 2`` for a classifier that always says ½).
    """
    check_2d(logits_image, "logits_image", 2)
    check_2d(logits_text, "logits_text", 2)
    return domain_classification_loss(logits_image, IMAGE) + domain_classification_loss(logits_text, TEXT)


class _GradReverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """Gradient-reversal layer (Ganin & Lempitsky): identity forward, gradient multiplied by ``−coeff`` backward.

    Args:
        x: any tensor. coeff: λ ≥ 0.
    Returns:
        ``x`` (a view), whose gradient is reversed.
    """
    if not isinstance(x, torch.Tensor):
        raise ValueError(f"x: expected a torch.Tensor, got {type(x).__name__}")
    if not (isinstance(coeff, (int, float)) and coeff >= 0):
        raise ValueError(f"coeff: expected a number >= 0, got {coeff!r}")
    return _GradReverse.apply(x, float(coeff))


class ModalityClassifier(nn.Module):
    """The discriminator D (Fig. 4.3): ``d → hidden → 2`` logits (image = 0, text = 1)."""

    def __init__(self, dim: int = 512, hidden: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim, hidden), nn.ReLU(), nn.Linear(hidden, 2))
        self.dim = dim

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        check_2d(z, "z", self.dim)
        return self.net(z)


def modality_probe_accuracy(z_image: np.ndarray, z_text: np.ndarray, seed: int = 0) -> float:
    """Accuracy of a *fresh* linear probe (logistic regression) telling image from text features, on a
    held-out half. 0.5 = the modalities are indistinguishable to any linear classifier; 1.0 = fully separable.

    Args:
        z_image: (n, d); z_text: (m, d). Both modalities are subsampled to the smaller size.
    """
    from sklearn.linear_model import LogisticRegression

    zi, zt = np.asarray(z_image, np.float32), np.asarray(z_text, np.float32)
    if zi.ndim != 2 or zt.ndim != 2 or zi.shape[1] != zt.shape[1] or min(len(zi), len(zt)) < 4:
        raise ValueError(f"z_image, z_text: expected (n >= 4, d) each with equal d, got {zi.shape}, {zt.shape}")
    rng = np.random.default_rng(seed)
    m = min(len(zi), len(zt))
    zi, zt = zi[rng.choice(len(zi), m, replace=False)], zt[rng.choice(len(zt), m, replace=False)]
    x = np.concatenate([zi, zt])
    y = np.r_[np.zeros(m), np.ones(m)]
    perm = rng.permutation(len(x))
    x, y = x[perm], y[perm]
    h = len(x) // 2
    clf = LogisticRegression(max_iter=2000).fit(x[:h], y[:h])
    return float(clf.score(x[h:], y[h:]))


def modality_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy (nats) of the predicted domain distribution ``softmax(logits)`` per row.

    Args:
        logits: (n, M) domain-predictor outputs (M = 2 for image/text).
    Returns:
        (n,) entropies in [0, log M].
    """
    check_2d(logits, "logits")
    logp = F.log_softmax(logits, dim=1)
    return -(logp.exp() * logp).sum(dim=1)


def negative_entropy_loss(logits: torch.Tensor, reduction: str = "sum") -> torch.Tensor:
    """Eq. 3.2 for one set of features: ``Σ_i Σ_j P_j log P_j`` = −(sum of the domain-prediction entropies).

    Minimising it drives every prediction towards P = (½, ½): the predictor cannot tell the modality.

    Args:
        logits: (n, M) domain-predictor outputs.
        reduction: ``"sum"`` or ``"mean"`` (divided by n).
    Returns:
        scalar ≤ 0; its minimum is ``−n log M`` (sum).
    """
    return reduce_loss(-modality_entropy(logits), reduction, logits.shape[0])


def domain_classification_loss(logits: torch.Tensor, domain: int | torch.Tensor,
                               reduction: str = "mean") -> torch.Tensor:
    """Cross-entropy of the domain predictor against the true modality (image = 0, text = 1).

    This is the predictor's own objective (thesis ch. 4's L_c, Eq. 4.5); ch. 3 leaves it implicit.

    Args:
        logits: (n, M); domain: an int (every row) or (n,) long tensor.
    Returns:
        scalar.
    """
    check_2d(logits, "logits")
    if isinstance(domain, int):
        domain = torch.full((logits.shape[0],), domain, dtype=torch.long, device=logits.device)
    if domain.shape != (logits.shape[0],):
        raise ValueError(f"domain: expected an int or shape ({logits.shape[0]},), got {tuple(domain.shape)}")
    return F.cross_entropy(logits, domain, reduction=reduction)
