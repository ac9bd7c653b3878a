"""Feature-estimation based correlation distillation for incremental retrieval (thesis chapter 6).

W. Chen, Y. Liu, N. Pu, W. Wang, L. Liu, M. S. Lew, "Feature Estimations based Correlation Distillation for
Incremental Image Retrieval", IEEE TMM 2021 — chapter 6 of the thesis. Built on the incremental machinery of notebook 05
(:mod:`xmr_lib.train.incremental`): every objective here is a list of :class:`~xmr_lib.train.incremental.Plugin` s.

The objective for the model f_t learning task t from the images of task t only (Eq. 6.3)::

    L = λ1 L_triplet + λ2 L_corr

- :func:`triplet_distance_loss` — ``L_triplet`` (Eqs. 6.1-6.2): ``[δ + D(a,p) − D(a,n)]_+`` with squared Euclidean
  distances, batch-hard mining.
  :func:`hard_mining_loss` — the ranking loss the released code actually trains with;
  :func:`ranking_term` picks either (the batch-hard triplet can stall at collapse on small toys, see notebook 06).
- ``L_corr`` one task (Eqs. 6.4-6.5): :func:`xmr_lib.train.distill.correlation_distillation_loss` — Gram matrices
  ``G = F Fᵀ`` of the teacher's and the student's features of the same batch, row softmax, KL(teacher ‖ student),
  ``T²/N`` (temperature T = 4 as in the released code; ``T = 1`` is the printed Eq. 6.5).
- Multi-task (§6.3.3): only the penultimate model f_{t−1} is stored. The features of the *unsaved* models f_{t−2},
  …, f_0 on the current batch are **estimated** from f_{t−1}'s features and the accuracy changes recorded when
  each of them was trained (Eqs. 6.6-6.9, :func:`accuracy_change`, :func:`accuracy_ranges`,
  :func:`estimate_features`) and enter the loss with decaying importance (Eq. 6.11, :func:`importance_weights`)::

      L_corr = L^{(t−1)→t} + 1/(t−1) L^{(t−2)→t}_virtual + 0.1/(t−2) L^{(t−3)→t}_virtual + … + 0.1^{t−2} L^{0→t}_virtual

- :class:`CorrelationDistillation` — the plugin for the chapter's ablation (Table 6.3): ``"previous"`` (case a,
  only f_{t−1}), ``"augmented"`` (case b, the same extra weight on the actual term), ``"estimation"`` (case c, the
  chapter's method), ``"all_models"`` (case d, every previous model stored).
- :func:`method_plugins` / :data:`METHODS` — the chapter's methods and baselines (fine-tuning, L2, MMD, ...).
- :func:`models_stored`, :func:`memory_cost` — what each method must keep (bytes), the trade-off the chapter is about.
- :class:`KeepModels` (diagnostics) and :func:`estimation_report` — estimated vs actual features of the unsaved
  models (cosine / relative L2 / Gram KL), for the notebook's figures; :func:`expected_virtual_gram` — the closed form ``E[G_virtual]``.

Index conventions (same as :class:`~xmr_lib.train.incremental.IncrementalTrainer`): task 0 trains f_0 on the original
classes, task t ≥ 1 adds the t-th group of new classes and trains f_t; while task t trains,
``trainer.teachers[j]`` is the frozen f_j, j < t.

Departures, all stated: the accuracy of the "old tasks" in Eq. 6.6 is the mean of the per-group metric over the
class groups seen before (each group its own gallery, the chapter's evaluation protocol); α is resampled every
iteration (the released code does so); the virtual features are not re-normalised (as in the code). Recording the
accuracy changes needs the old classes' *test* images after every task — meta-data only, but a use of old data the
chapter does not dwell on.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import torch
import torch.nn as nn

from xmr_lib.retrieval.losses import triplet_loss
from xmr_lib.train import distill
from xmr_lib.train import incremental as inc
from xmr_lib.train.incremental import LossTerm, Plugin, StepContext

__all__ = [
    "triplet_distance_loss",
    "triplet_distance_term",
    "hard_mining_loss",
    "ranking_term",
    "RANKING_LOSSES",
    "accuracy_change",
    "accuracy_ranges",
    "sample_alpha",
    "estimate_features",
    "importance_weights",
    "expected_virtual_gram",
    "CASES",
    "CorrelationDistillation",
    "METHODS",
    "method_plugins",
    "models_stored",
    "memory_cost",
    "estimation_report",
    "latin_square_order",
    "gram_kl_matrix",
    "KeepModels",
]


def _shape(t) -> str:
    return str(tuple(t.shape)) if isinstance(t, torch.Tensor) else type(t).__name__


# ================================================================================================================
# the ranking loss (Eqs. 6.1-6.2)


def triplet_distance_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 1.0) -> torch.Tensor:
    """Eq. (6.1)-(6.2): ``mean_a [δ + ||f(a) − f(p)||² − ||f(a) − f(n)||²]_+`` with batch-hard mining.

    Each anchor takes its farthest positive and nearest negative in the batch
    (:func:`xmr_lib.train.distill.hardest_triplets`). For unit-norm embeddings ``D = 2 − 2 S``, so ``δ = 1`` is the
    similarity margin 0.5 of chapters 5 and 7 (δ itself is not given in chapter 6).

    Args:
        embeddings: ``(B, D)``.
        labels: ``(B,)`` class ids.
        margin: δ on squared distances.
    Returns:
        scalar; 0 (attached to the graph) when no anchor has both a positive and a negative.
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D tensor (B, D), got {_shape(embeddings)}")
    if not float(margin) >= 0:
        raise ValueError(f"margin: expected δ >= 0, got {margin!r}")
    a, p, n = distill.hardest_triplets(embeddings, labels)
    if len(a) == 0:
        return embeddings.sum() * 0.0
    return triplet_loss(embeddings[a], embeddings[p], embeddings[n], margin=float(margin))


def hard_mining_loss(embeddings: torch.Tensor, labels: torch.Tensor, margin: float = 0.1) -> torch.Tensor:
    """The ranking loss the released chapter-6 code actually trains with (``HardMiningLoss`` of the MS-loss code
    base), written from its description: on cosine similarities ``S = F Fᵀ`` of L2-normalised
    features, for each anchor keep the negatives with ``S_neg > min S_pos − margin`` and the positives with
    ``S_pos < max S_neg + margin``; ``loss_a = mean(1 − S_pos) + mean(S_neg)`` over those; anchors lacking either
    are skipped; the sum is divided by the batch size. A contrastive loss on hard pairs: unlike the batch-hard
    triplet it cannot be satisfied by collapsing every feature to one point.

    Args:
        embeddings: ``(B, D)`` L2-normalised; labels: ``(B,)``; margin: 0.1 in the code.
    Returns:
        scalar (0, attached to the graph, when no anchor qualifies).
    """
    if not isinstance(embeddings, torch.Tensor) or embeddings.ndim != 2:
        raise ValueError(f"embeddings: expected a 2-D tensor (B, D), got {_shape(embeddings)}")
    if not isinstance(labels, torch.Tensor) or labels.shape != (embeddings.shape[0],):
        raise ValueError(f"labels: expected a ({embeddings.shape[0]},) tensor, got {_shape(labels)}")
    B = embeddings.shape[0]
    S = embeddings @ embeddings.T
    same = labels[:, None] == labels[None, :]
    eye = torch.eye(B, dtype=torch.bool, device=S.device)
    pos, neg = same & ~eye, ~same
    with torch.no_grad():
        pos_min = S.masked_fill(~pos, float("inf")).min(1).values
        neg_max = S.masked_fill(~neg, float("-inf")).max(1).values
        hard_neg = neg & (S > pos_min[:, None] - float(margin))
        hard_pos = pos & (S < neg_max[:, None] + float(margin))
        ok = hard_neg.any(1) & hard_pos.any(1)
    hp, hn = (hard_pos & ok[:, None]).float(), (hard_neg & ok[:, None]).float()
    pos_term = ((1 - S) * hp).sum(1) / hp.sum(1).clamp_min(1)
    neg_term = (S * hn).sum(1) / hn.sum(1).clamp_min(1)
    return ((pos_term + neg_term) * ok.float()).sum() / B


RANKING_LOSSES = ("triplet", "hard_mining")


def ranking_term(kind: str = "triplet", margin: float | None = None, weight: float = 1.0) -> LossTerm:
    """``λ1 L_triplet`` of Eq. (6.3): ``"triplet"`` (Eq. 6.1, :func:`triplet_distance_loss`, δ default 1.0) or
    ``"hard_mining"`` (the released code's loss, :func:`hard_mining_loss`, margin default 0.1)."""
    if kind not in RANKING_LOSSES:
        raise ValueError(f"kind: expected one of {RANKING_LOSSES}, got {kind!r}")
    if kind == "triplet":
        return triplet_distance_term(1.0 if margin is None else margin, weight)
    m = 0.1 if margin is None else float(margin)
    return LossTerm(
        "triplet",
        lambda ctx: hard_mining_loss(ctx.student.embedding, ctx.labels, m),
        weight,
        params={"margin": m, "form": "hard_mining"},
    )


def triplet_distance_term(margin: float = 1.0, weight: float = 1.0) -> LossTerm:
    """``λ1 L_triplet`` (Eq. 6.3, plasticity) as a :class:`~xmr_lib.train.incremental.LossTerm`."""
    return LossTerm(
        "triplet",
        lambda ctx: triplet_distance_loss(ctx.student.embedding, ctx.labels, margin),
        weight,
        params={"margin": float(margin), "form": "eq6.1"},
    )


# ================================================================================================================
# feature estimation (Eqs. 6.6-6.11)


def accuracy_change(
    acc_old_before: float, acc_old_after: float, acc_new_before: float, acc_new_after: float
) -> tuple[float, float]:
    """Eq. (6.6): ``α_drop = (Acc_o^a − Acc_o^b) / Acc_o^b``, ``α_gain = (Acc_n^a − Acc_n^b) / Acc_n^b``.

    "b"/"a" = before / after training a task; "o" = the old classes, "n" = the task's new classes.
    The thesis' worked example (CUB, t = 1, mAP): old 54.20 → 52.44, new 29.82 → 52.27 gives (−0.0325, 0.7528)
    (the thesis truncates; rounded, 0.7529).

    >>> [round(v, 4) for v in accuracy_change(54.20, 52.44, 29.82, 52.27)]
    [-0.0325, 0.7529]
    """
    vals = (acc_old_before, acc_old_after, acc_new_before, acc_new_after)
    if not all(np.isfinite(float(v)) for v in vals):
        raise ValueError(f"accuracies: expected finite numbers, got {vals!r}")
    if float(acc_old_before) <= 0 or float(acc_new_before) <= 0:
        raise ValueError(
            f"acc_old_before, acc_new_before: expected > 0 (they divide), got {acc_old_before!r}, {acc_new_before!r}"
        )
    return (
        (float(acc_old_after) - float(acc_old_before)) / float(acc_old_before),
        (float(acc_new_after) - float(acc_new_before)) / float(acc_new_before),
    )


def accuracy_ranges(steps: Sequence[dict], metric: str = "mAP") -> list[tuple[float, float]]:
    """The recorded ``(α_drop, α_gain)`` of every finished transition f_{j−1} → f_j, j = 1 … len(steps) − 1.

    Args:
        steps: :attr:`xmr_lib.train.incremental.IncrementalResult.steps` — ``steps[j]["groups"][g]`` holds the metrics of
            class group g (its own gallery) for the model after task j; every group is evaluated at every step, so
            ``steps[j−1]["groups"][j]`` is f_{j−1} on task j's classes *before* they were trained.
        metric: the accuracy (the thesis uses mAP).
    Returns:
        ``[(α_drop, α_gain) of 0→1, of 1→2, …]``. Acc_o is the mean over groups 0 … j−1.
    """
    out = []
    for j in range(1, len(steps)):
        try:
            gb, ga = steps[j - 1]["groups"], steps[j]["groups"]
            old_b = float(np.mean([gb[g][metric] for g in range(j)]))
            old_a = float(np.mean([ga[g][metric] for g in range(j)]))
            new_b, new_a = float(gb[j][metric]), float(ga[j][metric])
        except (KeyError, IndexError, TypeError) as e:
            raise ValueError(
                f"steps: step {j - 1} or {j} lacks the {metric!r} of group {j} or of an earlier group "
                f"(every group must be evaluated after every step): {e!r}"
            ) from None
        out.append(accuracy_change(old_b, old_a, new_b, new_a))
    return out


def sample_alpha(
    shape: Sequence[int],
    low: float,
    high: float,
    generator: torch.Generator | None = None,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """Eq. (6.7): a matrix ``α`` of the features' shape, every entry i.i.d. ``U(α_drop, α_gain)`` (ends ordered)."""
    lo, hi = sorted((float(low), float(high)))
    u = torch.rand(tuple(int(s) for s in shape), generator=generator, dtype=dtype)
    return (lo + (hi - lo) * u).to(device)


def estimate_features(
    actual: torch.Tensor,
    ranges: Sequence[tuple[float, float]],
    k: float = 1.0,
    generator: torch.Generator | None = None,
) -> list[torch.Tensor]:
    """Eqs. (6.7)-(6.9): virtual features of the unsaved models, recursively from the penultimate model's.

    While task t trains, ``actual = F_{t−1} = f_{t−1}(X_t)`` ``(N, d)`` and ``ranges[j]`` is ``(α_drop, α_gain)``
    of the transition f_j → f_{j+1} (j = 0 … t−2, :func:`accuracy_ranges`). Then

        ``F_{t−2} = F_{t−1} + k Δ = (1 + k α_{(t−2)→(t−1)}) ⊙ F_{t−1}``,
        ``F_{t−3} = (1 + k α_{(t−3)→(t−2)}) ⊙ F_{t−2}``, …, ``F_0 = Π_j (1 + k α_{j→j+1}) ⊙ F_{t−1}`` (Eq. 6.9),

    every ``α`` ``(N, d)`` drawn afresh from its own uniform range (Eq. 6.7; ⊙ element-wise, as in the released
    code).

    Returns:
        ``[F_{t−2}, F_{t−3}, …, F_0]``, each ``(N, d)`` (empty when ``ranges`` is empty, i.e. t ≤ 1). ``k = 0`` gives
        copies of ``actual``.
    """
    if not isinstance(actual, torch.Tensor) or actual.ndim != 2:
        raise ValueError(f"actual: expected (N, d) features of the penultimate model, got {_shape(actual)}")
    rs = [tuple(map(float, r)) for r in ranges]
    if any(len(r) != 2 or not all(np.isfinite(r)) for r in rs):
        raise ValueError(f"ranges: expected (α_drop, α_gain) pairs of finite numbers, got {list(ranges)!r}")
    out, f = [], actual.detach()
    for lo, hi in reversed(rs):  # (t−2)→(t−1) first, then back to 0→1
        a = sample_alpha(f.shape, lo, hi, generator, f.device, f.dtype)
        f = f + float(k) * a * f  # F + k Δ, Δ = α ⊙ F (Eqs. 6.7-6.8)
        out.append(f)
    return out


def importance_weights(t: int, decay: float = 0.1) -> list[float]:
    """Eq. (6.11): weights of the virtual terms while task t trains — the term of model f_{t−1−j} (j = 1 … t−1)
    has weight ``decay^{j−1} / (t − j)``: ``[1/(t−1), 0.1/(t−2), …, 0.1^{t−2}/1]`` (empty for t ≤ 1).

    (The thesis labels the last term ``L^{1→t}``; by its weight it is the initial model's.)

    >>> importance_weights(4)
    [0.3333333333333333, 0.05, 0.010000000000000002]
    """
    t = int(t)
    if t < 0:
        raise ValueError(f"t: expected a task index >= 0, got {t}")
    return [float(decay) ** (j - 1) / (t - j) for j in range(1, t)]


def expected_virtual_gram(features: torch.Tensor, low: float, high: float, k: float = 1.0) -> torch.Tensor:
    """``E[G_virtual]`` for one estimation step: ``(1 + kᾱ)² G + k² Var(α) diag(||F_i||²)``, ``(N, N)``.

    With α i.i.d. ``U(low, high)``, ᾱ = (low + high)/2 and Var = (high − low)²/12: off-diagonal entries are only
    rescaled, the diagonal grows. So in expectation the virtual Gram matrix is the penultimate model's, sharpened —
    two scalars carry all the information about the unsaved model.
    """
    if not isinstance(features, torch.Tensor) or features.ndim != 2:
        raise ValueError(f"features: expected (N, d), got {_shape(features)}")
    lo, hi = sorted((float(low), float(high)))
    mean, var = (lo + hi) / 2, (hi - lo) ** 2 / 12
    G = features @ features.T
    return (1 + k * mean) ** 2 * G + (k * k * var) * torch.diag(features.pow(2).sum(1))


def gram_kl_matrix(teacher: torch.Tensor, student: torch.Tensor, temperature: float = 4.0) -> float:
    """``L_corr`` of two feature sets as a float (a diagnostic: how far apart are their correlations?)."""
    with torch.no_grad():
        return float(distill.correlation_distillation_loss(student, teacher, temperature))


# ================================================================================================================
# the plugin


#: the ablation cases of Table 6.3, generalised to any task t by the weights of Eq. 6.11.
CASES = {
    "previous": "(a) L^{(t−1)→t} only: the penultimate model, actual features (stores 1 model)",
    "augmented": "(b) (1 + Σ w_j) L^{(t−1)→t}: the same extra weight, no extra knowledge (stores 1 model)",
    "estimation": "(c) L^{(t−1)→t} + Σ_j w_j L^{(t−1−j)→t}_virtual: estimated features (stores 1 model + 2 floats "
    "per task) — the chapter's method",
    "all_models": "(d) L^{(t−1)→t} + Σ_j w_j L^{(t−1−j)→t}_actual: every previous model stored (stores t models)",
}


class CorrelationDistillation(Plugin):
    """``λ2 L_corr`` of Eq. (6.3) with the multi-task terms of Eq. (6.11), in one of the :data:`CASES`.

    Args:
        case: ``"previous"`` | ``"augmented"`` | ``"estimation"`` | ``"all_models"``.
        weight: λ2 (10 in the thesis).
        temperature: T of the row softmax (4 in the released code; 1 = Eq. 6.5 as printed).
        k: the scaling factor of Eq. (6.8) (1 in the thesis).
        decay: the 0.1 of Eq. (6.11).
        metric: the accuracy of Eq. (6.6) (``"mAP"`` in the thesis).
        direction: ``"thesis"`` (teacher Gram as the target) or ``"code"`` (the released code's swapped arguments).
        weights: ``"eq6.11"`` or ``"equal"`` (every extra term weight 1 — Table 6.3 case (d) as printed at t = 2,
            where both agree).
        seed: seeds the α draws.
    Logged terms: ``corr`` (the actual penultimate term, for every case) and ``corr_extra`` (the weighted sum of the
    extra terms, from task 2 on). :attr:`ranges` holds the recorded ``(α_drop, α_gain)`` pairs (0→1, 1→2, …).
    """

    name = "corr"

    def __init__(
        self,
        case: str = "estimation",
        weight: float = 10.0,
        temperature: float = 4.0,
        k: float = 1.0,
        decay: float = 0.1,
        metric: str = "mAP",
        direction: str = "thesis",
        weights: str = "eq6.11",
        seed: int = 0,
    ):
        if case not in CASES:
            raise ValueError(f"case: expected one of {sorted(CASES)}, got {case!r}")
        if weights not in ("eq6.11", "equal"):
            raise ValueError(f"weights: expected 'eq6.11' or 'equal', got {weights!r}")
        if direction not in ("thesis", "code"):
            raise ValueError(f"direction: expected 'thesis' or 'code', got {direction!r}")
        if not float(temperature) > 0:
            raise ValueError(f"temperature: expected T > 0, got {temperature!r}")
        self.case, self.weight, self.temperature, self.k = case, float(weight), float(temperature), float(k)
        self.decay, self.metric, self.direction, self.weights = float(decay), metric, direction, weights
        self.seed = int(seed)
        self.ranges: list[tuple[float, float]] = []
        self._gen = torch.Generator().manual_seed(self.seed)

    def extra_weights(self, t: int) -> list[float]:
        """Weights of the extra terms (models f_{t−2}, …, f_0) while task t trains."""
        w = importance_weights(t, self.decay)
        return [1.0] * len(w) if self.weights == "equal" else w

    def before_task(self, trainer, task: int) -> None:
        if self.case == "estimation" and task >= 2:
            self.ranges = accuracy_ranges(trainer.result.steps[:task], self.metric)

    def _kl(self, student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
        return distill.correlation_distillation_loss(student, teacher, self.temperature, self.direction)

    def loss(self, ctx: StepContext) -> dict[str, torch.Tensor] | None:
        if self.weight == 0 or not ctx.teachers:
            return None
        t = len(ctx.teachers)  # = the task being trained (teachers f_0 … f_{t−1})
        s = ctx.student.embedding
        prev = ctx.teacher.embedding
        base = self._kl(s, prev)
        out = {"corr": self.weight * base}
        w = self.extra_weights(t)
        if not w:
            return out
        if self.case == "previous":
            return out
        if self.case == "augmented":
            extra = sum(w) * base
        elif self.case == "all_models":
            extra = sum(wj * self._kl(s, ctx.teacher_output(t - 1 - j).embedding) for j, wj in enumerate(w, start=1))
        else:
            if len(self.ranges) < t - 1:
                raise ValueError(
                    f"ranges: {len(self.ranges)} accuracy changes recorded, task {t} needs {t - 1} "
                    "(train with IncrementalTrainer so that before_task sees every step)"
                )
            virt = estimate_features(prev, self.ranges[: t - 1], self.k, self._gen)
            extra = sum(wj * self._kl(s, v) for wj, v in zip(w, virt))
        out["corr_extra"] = self.weight * extra
        return out

    def describe(self) -> dict:
        return {
            "name": self.name,
            "case": self.case,
            "weight": self.weight,
            "temperature": self.temperature,
            "k": self.k,
            "decay": self.decay,
            "metric": self.metric,
            "direction": self.direction,
            "weights": self.weights,
            "seed": self.seed,
        }

    def state(self) -> Any:
        return {"ranges": list(self.ranges)}

    def load_state(self, state: Any) -> None:
        self.ranges = [tuple(r) for r in state.get("ranges", [])]


# ================================================================================================================
# methods


#: The methods of chapter 6 (Table 6.1, Fig. 6.7, Table 6.3) and what they add to ``λ1 L_triplet``.
METHODS = {
    "ft": "fine-tuning: λ1 L_triplet on the new classes only",
    "l2": "L2 loss: + γ mean ||f_t(x) − f_{t−1}(x)||₂",
    "mmd": "MMD loss (chapter 5): + β L_mmd(f_{t−1}(x), f_t(x))",
    "corr": "case (a): + λ2 L_corr^{(t−1)→t} (Eq. 6.5); in the one-task scenario, the chapter's method",
    "corr_aug": "case (b): + λ2 (1 + Σ_j w_j) L_corr^{(t−1)→t}",
    "corr_fe": "case (c), the chapter's method: + λ2 (L^{(t−1)→t} + Σ_j w_j L^{(t−1−j)→t}_virtual), Eq. 6.11",
    "corr_all": "case (d): + λ2 (L^{(t−1)→t} + Σ_j w_j L^{(t−1−j)→t}_actual), every old model stored",
    "joint": "joint training on all classes (reference / upper bound): λ1 L_triplet",
    # the parameter-regularisation baselines of Table 6.1, each with a classifier trained on the embedding (§6.4.1)
    "ewc": "EWC [213]: + L_ce + λ/2 Σ F (θ − θ*)² (per-sample Fisher; λ = 8000)",
    "alasso": "ALASSO [227]: + L_ce + c Σ asymmetric quadratic around θ* (c = 0.2)",
    "nce_ewc": "NCE_EWC [233]: + L_ce + L_nce (9 hard negatives) + λ/2 Σ F (θ − θ*)² (λ = 10)",
}
_CASE_OF = {"corr": "previous", "corr_aug": "augmented", "corr_fe": "estimation", "corr_all": "all_models"}


def method_plugins(
    method: str,
    *,
    lambda1: float = 1.0,
    lambda2: float = 10.0,
    temperature: float = 4.0,
    k: float = 1.0,
    decay: float = 0.1,
    margin: float | None = None,
    l2_weight: float = 1.0,
    mmd_weight: float = 1.0,
    sigmas: Sequence[float] | str = distill.DEFAULT_MMD_SIGMAS,
    metric: str = "mAP",
    direction: str = "thesis",
    weights: str = "eq6.11",
    seed: int = 0,
    ranking: str = "triplet",
    ewc_weight: float = 8000.0,
    alasso_weight: float = 0.2,
    nce_ewc_weight: float = 10.0,
) -> list[Plugin]:
    """The objective of one of :data:`METHODS` (Eq. 6.3: ``λ1 L_triplet + λ2 L_corr``; baselines replace L_corr).

    ``ranking``: ``"triplet"`` (Eq. 6.1, δ = ``margin``) or ``"hard_mining"`` (the released code's loss;
    ``margin`` then is its 0.1). Usable as ``compare_methods(..., methods={name: lambda: method_plugins(name, ...)})``.
    """
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    out: list[Plugin] = [ranking_term(ranking, margin, lambda1)]
    if method in _CASE_OF:
        out.append(
            CorrelationDistillation(_CASE_OF[method], lambda2, temperature, k, decay, metric, direction, weights, seed)
        )
    elif method == "l2":
        out.append(inc.l2_term(l2_weight))
    elif method == "mmd":
        out.append(inc.mmd_term(mmd_weight, sigmas))
    elif method in ("ewc", "alasso", "nce_ewc"):  # §6.4.1: "we further train a classifier on the embedding net"
        weight = {"ewc": ewc_weight, "alasso": alasso_weight, "nce_ewc": nce_ewc_weight}[method]
        reg = [inc.PerSampleEWC(weight)] if method == "ewc" else inc.baseline_plugins(method, weight=weight)
        out += [inc.cross_entropy_term()] + reg
    return out


def models_stored(method: str, task: int) -> int:
    """Frozen models a method must keep while training task ``task`` (≥ 1): t for ``corr_all``, else 1 (0 for ft
    and joint)."""
    if method not in METHODS:
        raise ValueError(f"method: expected one of {sorted(METHODS)}, got {method!r}")
    if method in ("ft", "joint"):
        return 0
    return int(task) if method == "corr_all" else 1


def memory_cost(model: nn.Module, method: str, task: int) -> dict[str, int]:
    """Bytes a method keeps besides the network being trained, while training task ``task``.

    Returns:
        ``{"models": n, "model_bytes": n × (parameters + buffers) bytes, "meta_bytes": the recorded accuracy
        ranges (2 float64 per past transition for corr_fe), "total_bytes": …}``.
    """
    per = sum(p.numel() * p.element_size() for p in model.parameters()) + sum(
        b.numel() * b.element_size() for b in model.buffers()
    )
    n = models_stored(method, task)
    meta = 2 * 8 * max(int(task) - 1, 0) if method == "corr_fe" else 0
    return {"models": n, "model_bytes": n * per, "meta_bytes": meta, "total_bytes": n * per + meta}


# ================================================================================================================
# diagnostics for the notebook


@torch.no_grad()
def estimation_report(
    models: Sequence[nn.Module],
    images: torch.Tensor,
    ranges: Sequence[tuple[float, float]],
    k: float = 1.0,
    temperature: float = 4.0,
    n_draws: int = 8,
    seed: int = 0,
) -> list[dict[str, float]]:
    """How close are the estimated features of the unsaved models to their actual features?

    Args:
        models: ``[f_0, …, f_{t−1}]`` (the frozen models after each task; the last is the stored one).
        images: ``(N, C, H, W)`` network input (a batch of task t's images).
        ranges: ``ranges[j]`` = ``(α_drop, α_gain)`` of f_j → f_{j+1} (at least t − 1 of them).
        k, temperature: as in :class:`CorrelationDistillation`.
        n_draws: α draws averaged over.
    Returns:
        one dict per unsaved model f_m, m = t−2 … 0: ``{"model": m, "depth": t−1−m, "cos_virtual": mean cosine
        between virtual and actual features of each image, "cos_stored": the same for f_{t−1}'s features used
        as they are (the no-estimation baseline), "rel_l2_virtual", "rel_l2_stored": ||·−F_m|| / ||F_m||,
        "kl_virtual", "kl_stored": L_corr between the actual f_m Gram and the virtual / stored one}``.
    """
    t = len(models)
    if t < 2:
        return []
    if len(ranges) < t - 1:
        raise ValueError(f"ranges: expected at least {t - 1} (α_drop, α_gain) pairs for {t} models, got {len(ranges)}")
    outs = [m(images) for m in models]
    feats = [o.embedding if isinstance(o, inc.Output) else o for o in outs]
    stored = feats[-1]
    g = torch.Generator().manual_seed(int(seed))
    draws = [estimate_features(stored, ranges[: t - 1], k, g) for _ in range(int(n_draws))]
    out = []
    for depth in range(1, t):
        m = t - 1 - depth
        act = feats[m]
        cos_v = np.mean([float(torch.nn.functional.cosine_similarity(d[depth - 1], act, dim=1).mean()) for d in draws])
        rel_v = np.mean([float((d[depth - 1] - act).norm(dim=1).mean() / act.norm(dim=1).mean()) for d in draws])
        kl_v = np.mean([gram_kl_matrix(act, d[depth - 1], temperature) for d in draws])
        out.append(
            {
                "model": m,
                "depth": depth,
                "cos_virtual": float(cos_v),
                "cos_stored": float(torch.nn.functional.cosine_similarity(stored, act, dim=1).mean()),
                "rel_l2_virtual": float(rel_v),
                "rel_l2_stored": float((stored - act).norm(dim=1).mean() / act.norm(dim=1).mean()),
                "kl_virtual": float(kl_v),
                "kl_stored": gram_kl_matrix(act, stored, temperature),
            }
        )
    return out


def latin_square_order(n_first: int, side: int = 3) -> list[int]:
    """A class order for the multi-step SynthSpecies run: the first ``n_first`` classes, then the ``side × side``
    classes of task B (stripes × aspect, :func:`xmr_lib.train.incremental.synth_species_disjoint`) re-ordered so that each
    group of ``side`` classes holds every stripe count and every aspect once (a Latin square).

    With the natural order a group would share its stripe count and differ only in aspect, the hardest attribute:
    the spec's prototype learned those groups poorly (R@1 ≈ 0.4-0.7). Here every class of a group is told apart
    by its stripes already, so each step is learnable in a short budget.

    >>> latin_square_order(2)
    [0, 1, 2, 6, 10, 3, 7, 8, 4, 5, 9]
    """
    n_first, side = int(n_first), int(side)
    if n_first < 1 or side < 1:
        raise ValueError(f"n_first, side: expected positive ints, got {n_first!r}, {side!r}")
    groups = [[n_first + r * side + (r + g) % side for r in range(side)] for g in range(side)]
    return list(range(n_first)) + [c for grp in groups for c in grp]


class KeepModels(Plugin):
    """Keeps a frozen copy of the model after every task (``models[t]`` = f_t; the base model too when the run
    starts with :meth:`~xmr_lib.train.incremental.IncrementalTrainer.start_from`). Adds no loss. For diagnostics only:
    the chapter's point is that a real run would *not* keep them (:func:`estimation_report` compares them with
    their estimates). After a run, the result hands it back: ``result.plugin(KeepModels).models`` (also for the
    results of :func:`~xmr_lib.train.incremental.compare_methods`)."""

    name = "keep_models"

    def __init__(self):
        self.models: list[nn.Module] = []

    def after_task(self, trainer, task: int) -> None:
        del self.models[task:]
        self.models.append(inc.snapshot(trainer.model))
