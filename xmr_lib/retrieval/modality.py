"""Modality discrimination: entropy of a modality predictor, its losses, the gradient-reversal layer, a modality
classifier and the modality probe (can a linear classifier tell image from text in a common space?)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from xmr_lib.core.checks import check_2d, check_matrix
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
    return negative_entropy_loss(logits_image, reduction="mean") + negative_entropy_loss(logits_text, reduction="mean")


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


def modality_probe_accuracy(image_z: Any, text_z: Any, seed: int = 0, test_fraction: float = 0.3) -> float:
    """Held-out accuracy of a *fresh* linear probe telling image from text features (or codes): the one protocol
    of chapters 3 and 4. 0.5 = no linear classifier can tell the modalities apart (what the entropy / adversarial
    terms aim at); 1.0 = fully separable.

    Protocol, and why:

    - **balanced classes**: the larger modality is subsampled (seeded, without replacement) to the size ``m`` of
      the smaller one, so that chance is exactly 0.5 (chapter 4 has five captions per image: without this a
      probe answering "text" every time would score 0.83);
    - **split**: a seeded random permutation of the ``2m`` rows; the first ``round(test_fraction · 2m)`` (at
      least 2) are held out, the probe is fitted on the rest;
    - **classifier**: L2-regularised logistic regression (scikit-learn's default ``C = 1``, lbfgs, up to 1,000
      iterations) on features standardised with the training part's mean and standard deviation (``+1e-6``):
      without it the fixed ``C`` would regularise L2-normalised features (entries ~0.05) far more than ±1 codes,
      and the accuracies of the two would not be comparable;
    - **seed**: one ``np.random.default_rng(seed)`` draws the subsample, then the permutation. When the two
      modalities have the same size nothing is subsampled and nothing is drawn for it.

    Args:
        image_z: (n, d); text_z: (m', d) features or codes of the two modalities; ``min(n, m') >= 4``.
        seed: the subsample and the split. test_fraction: the held-out share, in (0, 0.5].
    Returns:
        accuracy in [0, 1] on the held-out rows.
    """
    from sklearn.linear_model import LogisticRegression  # heavy optional dependency: imported on use

    a = check_matrix(image_z, "image_z", dtype=np.float32)
    b = check_matrix(text_z, "text_z", dtype=np.float32)
    m = min(len(a), len(b))
    if m < 4 or a.shape[1] != b.shape[1]:
        raise ValueError(
            f"image_z, text_z: expected (n >= 4, d) and (m >= 4, d) (one dimension d), got {a.shape} and {b.shape}"
        )
    if not (isinstance(test_fraction, (int, float)) and 0 < test_fraction <= 0.5):
        raise ValueError(f"test_fraction: expected a number in (0, 0.5], got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    if len(a) > m:
        a = a[np.sort(rng.choice(len(a), m, replace=False))]
    if len(b) > m:
        b = b[np.sort(rng.choice(len(b), m, replace=False))]
    x = np.concatenate([a, b])
    y = np.r_[np.zeros(m), np.ones(m)]
    perm = rng.permutation(2 * m)
    n_test = max(2, int(round(test_fraction * 2 * m)))
    te, tr = perm[:n_test], perm[n_test:]
    mu, sd = x[tr].mean(0), x[tr].std(0) + 1e-6
    clf = LogisticRegression(max_iter=1000).fit((x[tr] - mu) / sd, y[tr])
    return float(clf.score((x[te] - mu) / sd, y[te]))


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


def domain_classification_loss(
    logits: torch.Tensor, domain: int | torch.Tensor, reduction: str = "mean"
) -> torch.Tensor:
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
