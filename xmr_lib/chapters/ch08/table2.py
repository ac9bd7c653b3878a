"""Table II of the paper (Pascal, Bost & Huet, CBMI 2019), the one home of its numbers: plain data, so that the
claims of :mod:`.config` (read by the scorecard) need neither torch nor pandas to know them.

Macro F-score "First" (after initialisation, iteration 0) and "Best" (the best registered while training) of each
initialisation — Random, Visual (``"inference"``, §III.C), WordNet and Word2Vec (§III.D) — for each number of
training images per class. :data:`PAPER_TABLE_II` is keyed by shots; :mod:`.transfer` derives its flat view
``(shots, init, "first" | "best") → F`` from it.
"""

from __future__ import annotations

#: the initialisations of Table II, in its column order
INITS = ("random", "inference", "wordnet", "wordvec")
#: images per class, Table II's rows (descending)
SHOTS = (100, 50, 25, 10, 5, 2, 1)

#: Table II: images per class → {(init, "first" | "best"): macro F-score}
PAPER_TABLE_II: dict[int, dict[tuple[str, str], float]] = {
    shots: dict(zip([(m, w) for m in INITS for w in ("first", "best")], row, strict=True))
    for shots, row in {
        100: (0.00, 0.72, 0.59, 0.73, 0.39, 0.72, 0.35, 0.72),
        50: (0.00, 0.68, 0.58, 0.69, 0.39, 0.68, 0.35, 0.68),
        25: (0.00, 0.62, 0.58, 0.64, 0.39, 0.63, 0.35, 0.63),
        10: (0.00, 0.53, 0.54, 0.54, 0.39, 0.54, 0.35, 0.53),
        5: (0.00, 0.41, 0.50, 0.50, 0.39, 0.43, 0.35, 0.45),
        2: (0.00, 0.26, 0.44, 0.44, 0.39, 0.39, 0.35, 0.35),
        1: (0.00, 0.16, 0.40, 0.40, 0.39, 0.39, 0.35, 0.35),
    }.items()
}
