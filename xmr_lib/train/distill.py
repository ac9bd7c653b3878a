"""Losses for incremental retrieval: semantic preserving, knowledge distillation, MMD, feature regularisers.

Thesis chapter 5 (BMVC 2020 "On the Exploration of Incremental Learning for Fine-grained
Image Retrieval"). A frozen copy **A** of the model trained on the old classes (the *teacher*) and an adaptive copy
**B** (the *student*) see the same mini-batch of **new-class** images only; the student is trained with

    L = α L_dist + β L_mmd + (L_ce + L_triplet)                                              (Eq. 5.6)

- :func:`new_class_cross_entropy` — ``L_ce`` (Eq. 5.1): cross-entropy over the *new* logits ``o'_{n+1..n+m}`` only.
- :func:`semantic_triplet_loss` — ``L_triplet`` (Eq. 5.2): ``max(0, λ + S_neg − S_pos)`` on inner products of
  L2-normalised embeddings, batch-hard mining. For unit vectors ``||a − b||² = 2 − 2 a·b``, so this is
  :func:`xmr_lib.retrieval.losses.triplet_loss` (Eq. 2.17, squared distances) with margin ``2λ``, halved — which is how it
  is computed here.
- :func:`semantic_preserving_loss` — ``L_ce + L_triplet`` (§5.3.1).
- :func:`distillation_loss` — ``L_dist`` (Eq. 5.3): LwF's soft-target cross-entropy over the first ``n`` (old)
  logits with temperature ``T`` (2 in the thesis).
- :func:`mmd_loss` — ``L_mmd`` (Eq. 5.5): square root of the biased MMD² between the teacher's and the student's
  embeddings of the batch, with a sum of Gaussian kernels (:func:`gaussian_kernel`). The thesis does not give the
  bandwidths ("σ_m means m variances"); see :data:`DEFAULT_MMD_SIGMAS` and :func:`mmd_bandwidths`.
- :func:`kd_mmd_loss` — the regulariser part of Eq. 5.6, ``α L_dist + β L_mmd``.

Baselines and relatives:

- :func:`l2_feature_loss` — the "L2 loss" baseline (Michieli & Zanuttigh; the author's released ``L2Norm``):
  ``mean_i ||f_s(x_i) − f_t(x_i)||₂`` between student and teacher embeddings of the same images.
- :func:`correlation_distillation_loss` — KL between row-softmaxed Gram matrices of teacher and student (thesis
  chapter 6, Eq. 6.5; used again in chapter 7).

Shapes: embeddings ``(B, D)``, logits ``(B, C)``, labels ``(B,)`` int64. All losses return a scalar tensor.
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from xmr_lib.core.checks import check_2d, check_int_labels
from xmr_lib.retrieval.losses import triplet_loss

__all__ = [
    "new_class_cross_entropy",
    "semantic_triplet_loss",
    "semantic_preserving_loss",
    "distillation_loss",
    "gaussian_kernel",
    "mmd_bandwidths",
    "mmd_squared",
    "mmd_loss",
    "kd_mmd_loss",
    "l2_feature_loss",
    "correlation_distillation_loss",
    "DEFAULT_MMD_SIGMAS",
    "hardest_triplets",
]

#: Our default Gaussian bandwidths σ_m for Eq. 5.5 (UNSPECIFIED in the thesis). The embeddings are L2-normalised,
#: so squared distances lie in [0, 4] (0 = same point, 2 = orthogonal); σ ∈ {0.5, 1, 2} gives one kernel that
#: sees local structure (a pair at distance 1 has k = e^-2), one at the typical inter-class distance and one
#: nearly linear. The data-driven alternative (``sigmas="auto"``) is the DAN/RTN recipe, :func:`mmd_bandwidths`.
DEFAULT_MMD_SIGMAS: tuple[float, ...] = (0.5, 1.0, 2.0)


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


# ----------------------------------------------------------------------------------------------------------------
# semantic preserving loss (§5.3.1)


def new_class_cross_entropy(logits: torch.Tensor, labels: torch.Tensor, n_old: int = 0) -> torch.Tensor:
    """Eq. (5.1): cross-entropy over the new logits only, ``softmax`` over ``o'_{n+1} … o'_{n+m}``.

    Args:
        logits: ``(B, n + m)`` student logits (old classes first).
        labels: ``(B,)`` global class ids, all in ``[n_old, n + m)`` (only new-class images are used).
        n_old: ``n``, the number of old-class logits to leave out (0 for the first task or joint training, which
            is then the plain cross-entropy).
    Returns:
        the mean cross-entropy (scalar).
    """
    check_2d(logits, "logits")
    labels = check_int_labels(labels, "labels", logits.shape[0]).long()
    n_old = int(n_old)
    if not 0 <= n_old < logits.shape[1]:
        raise ValueError(f"n_old: expected 0 <= n_old < {logits.shape[1]} (the number of logits), got {n_old}")
    if len(labels) and (labels.min() < n_old or labels.max() >= logits.shape[1]):
        raise ValueError(
            f"labels: Eq. 5.1 needs new-class labels in [{n_old}, {logits.shape[1]}), got values in "
            f"[{int(labels.min())}, {int(labels.max())}]"
        )
    return F.cross_entropy(logits[:, n_old:], labels - n_old)


def hardest_triplets(embeddings: torch.Tensor, labels: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Batch-hard mining: for each anchor, its least similar positive and its most similar negative.

    Args:
        embeddings: ``(B, D)``; labels: ``(B,)``.
    Returns:
        ``(anchor, positive, negative)`` index tensors ``(A,)`` over the ``A`` anchors that have at least one other
        item of their class and one item of another class in the batch (similarity = inner product).
    """
    check_2d(embeddings, "embeddings")
    labels = check_int_labels(labels, "labels", embeddings.shape[0]).long()
    with torch.no_grad():
        s = embeddings @ embeddings.T
        same = labels[:, None] == labels[None, :]
        eye = torch.eye(len(labels), dtype=torch.bool, device=labels.device)
        pos, neg = same & ~eye, ~same
        valid = pos.any(1) & neg.any(1)
        hardest_pos = s.masked_fill(~pos, float("inf")).argmin(1)
        hardest_neg = s.masked_fill(~neg, float("-inf")).argmax(1)
        a = torch.nonzero(valid).flatten()
    return a, hardest_pos[a], hardest_neg[a]


def semantic_triplet_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.5) -> torch.Tensor:
    """Eq. (5.2): ``1/N Σ_i max(0, λ + S_{i,neg} − S_{i,pos})`` with batch-hard mining, ``S = R Rᵀ``.

    Each anchor takes its least similar positive and most similar negative in the batch (:func:`hardest_triplets`).
    Computed as ``½ · triplet_loss(a, p, n, margin=2λ)`` (Eq. 2.17 on squared distances), which equals Eq. 5.2
    exactly because the embeddings are unit vectors (``||a − b||² = 2 − 2 S``).

    Args:
        embeddings: ``(B, D)`` L2-normalised embeddings ``R``.
        labels: ``(B,)`` class ids (P×K batches give every anchor positives and negatives).
        margin: ``λ`` on the similarity scale (0.5 in the thesis, §5.4.1).
    Returns:
        the mean over anchors with a valid triplet (0, still attached to the graph, when there are none).
    """
    check_2d(embeddings, "embeddings")
    norms = embeddings.detach().norm(dim=1)
    if len(norms) and not torch.allclose(norms, torch.ones_like(norms), atol=1e-3):
        raise ValueError(
            "embeddings: Eq. 5.2 is written for L2-normalised embeddings; got row norms in "
            f"[{float(norms.min()):.3g}, {float(norms.max()):.3g}]"
        )
    if not float(margin) >= 0:
        raise ValueError(f"margin: expected a number >= 0, got {margin!r}")
    a, p, n = hardest_triplets(embeddings, labels)
    if len(a) == 0:
        return embeddings.sum() * 0.0
    return 0.5 * triplet_loss(embeddings[a], embeddings[p], embeddings[n], margin=2.0 * float(margin))


def semantic_preserving_loss(
    logits: torch.Tensor, embeddings: torch.Tensor, labels: torch.Tensor, n_old: int = 0, margin: float = 0.5
) -> torch.Tensor:
    """§5.3.1: ``L_ce + L_triplet`` — Eq. (5.1) on the new logits plus Eq. (5.2) on the embeddings."""
    return new_class_cross_entropy(logits, labels, n_old) + semantic_triplet_loss(embeddings, labels, margin)


# ----------------------------------------------------------------------------------------------------------------
# knowledge distillation (§5.3.2)


def distillation_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    temperature: float = 2.0,
    form: str = "ce",
    t_squared: bool = False,
) -> torch.Tensor:
    """Eq. (5.3): ``−1/N Σ_x Σ_{k≤n} p_k(x) log p'_k(x)``, ``p = softmax(o/T)`` (teacher), ``p' = softmax(o'/T)``.

    Only the first ``n`` student logits (the classes the teacher knows) enter, renormalised among themselves.

    Args:
        student_logits: ``(B, n + m)`` logits ``o'`` of the adaptive network B.
        teacher_logits: ``(B, n)`` logits ``o`` of the frozen network A (treated as constants).
        temperature: ``T`` (2 in the thesis, after LwF).
        form: ``"ce"`` — the printed soft-target cross-entropy (its minimum is the teacher's entropy, not 0);
            ``"kl"`` — ``KL(p ‖ p')`` = the same minus that entropy: identical gradients, 0 when B = A.
        t_squared: multiply by ``T²`` (Hinton et al.'s gradient-scale correction; not in Eq. 5.3).
    """
    check_2d(student_logits, "student_logits")
    check_2d(teacher_logits, "teacher_logits")
    n = teacher_logits.shape[1]
    if student_logits.shape[0] != teacher_logits.shape[0] or student_logits.shape[1] < n:
        raise ValueError(
            f"student_logits, teacher_logits: expected (B, >= n) and (B, n), got "
            f"{_shape(student_logits)} and {_shape(teacher_logits)}"
        )
    if not float(temperature) > 0:
        raise ValueError(f"temperature: expected T > 0, got {temperature!r}")
    if form not in ("ce", "kl"):
        raise ValueError(f"form: expected 'ce' (Eq. 5.3) or 'kl', got {form!r}")
    T = float(temperature)
    log_p_student = F.log_softmax(student_logits[:, :n] / T, dim=1)
    log_p_teacher = F.log_softmax(teacher_logits.detach() / T, dim=1)
    p_teacher = log_p_teacher.exp()
    if form == "ce":
        loss = -(p_teacher * log_p_student).sum(1).mean()
    else:
        loss = (p_teacher * (log_p_teacher - log_p_student)).sum(1).mean()
    return loss * (T * T) if t_squared else loss


# ----------------------------------------------------------------------------------------------------------------
# maximum mean discrepancy (§5.3.3)


def _sigmas(sigmas, device, dtype) -> torch.Tensor:
    s = torch.as_tensor(sigmas, dtype=dtype, device=device).flatten()
    if s.numel() == 0 or not bool((s > 0).all()) or not bool(torch.isfinite(s).all()):
        raise ValueError(f"sigmas: expected one or more positive bandwidths, got {sigmas!r}")
    return s


def gaussian_kernel(
    x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float] | torch.Tensor = DEFAULT_MMD_SIGMAS
) -> torch.Tensor:
    """Multi-kernel Gaussian ``k(a, b) = Σ_m exp(−||a − b||² / (2 σ_m²))`` for all pairs, ``(N, D), (M, D) → (N, M)``.

    A sum of Gaussians is itself a characteristic kernel (the DAN/RTN multi-kernel MMD the thesis cites [222]).
    """
    check_2d(x, "x")
    check_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x, y: feature dimensions differ: {_shape(x)} vs {_shape(y)}")
    s = _sigmas(sigmas, x.device, x.dtype)
    d2 = (x.pow(2).sum(1)[:, None] + y.pow(2).sum(1)[None, :] - 2.0 * x @ y.T).clamp_min(0.0)
    return torch.exp(-d2[None, :, :] / (2.0 * s[:, None, None] ** 2)).sum(0)


def mmd_bandwidths(x: torch.Tensor, y: torch.Tensor, n_kernels: int = 5, multiplier: float = 2.0) -> torch.Tensor:
    """Data-driven bandwidths (the DAN / ``guassian_kernel(kernel_mul=2, kernel_num=5)`` recipe), detached.

    ``base`` = mean squared distance between distinct points of the pooled ``2N`` features; the variances are
    ``σ_m² = base · multiplier^(m − n_kernels//2)``, m = 0 … n_kernels−1 (so ``base/4 … 4·base`` for the defaults).
    NB the recipe writes ``exp(−d²/bw)``; we keep Eq. 5.5's ``exp(−d²/(2σ²))`` and return ``σ = sqrt(bw / 2)`` so
    that the kernels are the same.

    Returns:
        ``(n_kernels,)`` bandwidths σ_m.
    """
    check_2d(x, "x")
    check_2d(y, "y")
    if int(n_kernels) < 1 or not float(multiplier) > 0:
        raise ValueError(f"n_kernels, multiplier: expected >= 1 and > 0, got {n_kernels!r}, {multiplier!r}")
    with torch.no_grad():
        z = torch.cat([x, y]).detach()
        n = len(z)
        d2 = (z[:, None, :] - z[None, :, :]).pow(2).sum(-1)
        base = d2.sum() / max(n * n - n, 1)
        base = base.clamp_min(1e-12)
        powers = torch.arange(int(n_kernels), dtype=z.dtype, device=z.device) - int(n_kernels) // 2
        bw = base * float(multiplier) ** powers
    return (bw / 2.0).sqrt()


def mmd_squared(
    x: torch.Tensor, y: torch.Tensor, sigmas: Sequence[float] | torch.Tensor | str = DEFAULT_MMD_SIGMAS
) -> torch.Tensor:
    """Eq. (5.4) with the kernel trick: the biased (V-statistic) ``MMD²`` between the rows of x and of y.

    ``MMD² = mean k(x_i, x_j) + mean k(y_i, y_j) − 2 mean k(x_i, y_j)`` ≥ 0. ``sigmas="auto"`` uses
    :func:`mmd_bandwidths` on the pooled batch.
    """
    check_2d(x, "x")
    check_2d(y, "y")
    if isinstance(sigmas, str):
        if sigmas != "auto":
            raise ValueError(f"sigmas: expected bandwidths or 'auto', got {sigmas!r}")
        sigmas = mmd_bandwidths(x, y)
    return (
        gaussian_kernel(x, x, sigmas).mean()
        + gaussian_kernel(y, y, sigmas).mean()
        - 2.0 * gaussian_kernel(x, y, sigmas).mean()
    )


def mmd_loss(
    teacher: torch.Tensor,
    student: torch.Tensor,
    sigmas: Sequence[float] | torch.Tensor | str = DEFAULT_MMD_SIGMAS,
    squared: bool = False,
    eps: float = 1e-12,
) -> torch.Tensor:
    """Eq. (5.5): ``L_mmd = (1/N) [Σ_ij k(R_i,R_j) − 2 Σ_ij k(R_i,R'_j) + Σ_ij k(R'_i,R'_j)]^{1/2}``.

    ``R = F_f(x)`` (frozen teacher, detached here) and ``R' = F(x)`` (student) are the embeddings of the same
    new-class batch. MMD compares the two *sets* (it is permutation invariant): it does not tie image i of A to
    image i of B, unlike :func:`l2_feature_loss`.

    Args:
        teacher, student: ``(N, D)`` embeddings.
        sigmas: Gaussian bandwidths σ_m (default :data:`DEFAULT_MMD_SIGMAS`), or ``"auto"`` (:func:`mmd_bandwidths`).
        squared: return ``MMD²`` instead of its square root.
        eps: floor under the square root: at the start of training B = A, so MMD² = 0 and the gradient of the
            square root would be infinite; below ``eps`` the gradient is 0 instead.
    """
    check_2d(teacher, "teacher")
    check_2d(student, "student")
    if teacher.shape != student.shape:
        raise ValueError(f"teacher, student: expected the same (N, D), got {_shape(teacher)} and {_shape(student)}")
    m2 = mmd_squared(teacher.detach(), student, sigmas)
    return m2 if squared else m2.clamp_min(float(eps)).sqrt()


def kd_mmd_loss(
    student_logits: torch.Tensor,
    teacher_logits: torch.Tensor,
    student_emb: torch.Tensor,
    teacher_emb: torch.Tensor,
    alpha: float = 1.0,
    beta: float = 1.0,
    temperature: float = 2.0,
    sigmas: Sequence[float] | torch.Tensor | str = DEFAULT_MMD_SIGMAS,
) -> torch.Tensor:
    """The regulariser of Eq. (5.6): ``α L_dist + β L_mmd`` (add :func:`semantic_preserving_loss` for the total)."""
    return alpha * distillation_loss(student_logits, teacher_logits, temperature) + beta * mmd_loss(
        teacher_emb, student_emb, sigmas
    )


# ----------------------------------------------------------------------------------------------------------------
# baselines and relatives


def l2_feature_loss(student: torch.Tensor, teacher: torch.Tensor, squared: bool = False) -> torch.Tensor:
    """The "L2 loss" baseline: ``mean_i ||f_s(x_i) − f_t(x_i)||₂`` (``squared``: ``mean_i ||·||²₂``).

    Ties each image's student embedding to its own teacher embedding (teacher detached). Not squared, as in the
    author's released ``L2Norm``.
    """
    check_2d(student, "student")
    check_2d(teacher, "teacher")
    if student.shape != teacher.shape:
        raise ValueError(f"student, teacher: expected the same (N, D), got {_shape(student)} and {_shape(teacher)}")
    d = student - teacher.detach()
    return d.pow(2).sum(1).mean() if squared else torch.linalg.vector_norm(d, dim=1).mean()


def correlation_distillation_loss(
    student: torch.Tensor, teacher: torch.Tensor, temperature: float = 4.0, direction: str = "thesis"
) -> torch.Tensor:
    """KL between row-softmaxed Gram matrices (thesis ch. 6, Eq. 6.5, in the released code's ``·T²/N`` form).

    ``G = F Fᵀ`` for teacher and student embeddings of the same batch;
    ``L = T²/N Σ_i KL(softmax(G_t[i]/T) ‖ softmax(G_s[i]/T))`` (``direction="thesis"``, teacher as target).
    ``direction="code"`` swaps the arguments as the released code does (student Gram as the target).

    Args:
        student, teacher: ``(N, D)`` embeddings (teacher detached).
        temperature: ``T`` (4 in the released code).
    """
    check_2d(student, "student")
    check_2d(teacher, "teacher")
    if student.shape != teacher.shape:
        raise ValueError(f"student, teacher: expected the same (N, D), got {_shape(student)} and {_shape(teacher)}")
    if not float(temperature) > 0:
        raise ValueError(f"temperature: expected T > 0, got {temperature!r}")
    if direction not in ("thesis", "code"):
        raise ValueError(f"direction: expected 'thesis' or 'code', got {direction!r}")
    T = float(temperature)
    g_s = student @ student.T / T
    g_t = (teacher.detach() @ teacher.detach().T) / T
    target, inp = (g_t, g_s) if direction == "thesis" else (g_s, g_t)
    kl = F.kl_div(F.log_softmax(inp, dim=1), F.log_softmax(target, dim=1), reduction="sum", log_target=True)
    return kl * T * T / student.shape[0]
