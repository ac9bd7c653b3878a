"""Notebook 10 — enhanced isomorphic semantic representation (Liu et al., ICME 2017, seed 004) and a comparison
of common-space objectives (thesis ch. 8 §8.3.3: CCA, semantic matching, ranking, adversarial).

Offline (smoke, default) the data is a Wikipedia-style set: Fashion-MNIST images (raw pixels) paired one-to-one
with synthetic documents of their class (class words diluted by coarse-group and background words), featurised as
LDA topics, the paper's text feature. Each seed draws a new split and new documents. Full: Wikipedia under
``data_root`` (``python -m data_scripts fetch wikipedia --root DIR``): with the converted layout the features are
built by ``common_space.converted_feature_pairs`` — 1280-d EfficientNet-Lite0 image features (frozen, ImageNet
weights; not the paper's AlexNet fc7, which does not ship offline) and 100-d LDA texts; a hand-written
``<data_root>/wikipedia/isomorphic_features.npz`` (e.g. the paper's fc7 features) is used instead when present.
Without the data the full profile falls back to the offline set at its own training settings (a banner says so)
and the Wikipedia targets read "not run" (the notebook records their ``real/…`` metrics on Wikipedia only).

Claims: sanity checks (every profile), the orderings that hold on every default seed, and Tables 1–3's Wikipedia
numbers as full-profile targets. The paper's central claim (O/LE/J beats O, +1.0 mAP on Wikipedia) is also
checked in the default profile, where it does NOT hold (O is 0.1–1.4 points ahead on every seed of our offline
set); the notebook discusses why.
"""
from xmr_lib.claims import at_least, close_to, custom, greater

PROFILES = {
    "smoke": {
        "dataset": "fashion_wiki",   # "fashion_wiki" (offline) | "wikipedia" | "pascal_sentence" | "voc2007"
        "n_seeds": 1,                # seeds seed, seed+1, ...: each draws a new split (offline) and initialisation
        "n_train": 600,              # training pairs (offline set; paper Wikipedia: 2,173)
        "n_test": 300,               # test pairs (paper Wikipedia: 693)
        "text_features": "lda",      # "lda" (paper) | "minilm" | "tfidf" (offline set)
        "n_topics": 10,              # LDA topics (paper: 100)
        "text_signal": 0.25,         # mean share of class words in a document (offline set)
        "hidden": 64,                # h: width of fc6/fc7 and T_Net's first layer (paper: 4096)
        "latent": 32,                # l: the latent layer (paper: 128 Pascal Sentence, 512 Wikipedia / VOC)
        "latent_dims": [16, 64],     # Table 1 sweep (paper: 64 … 1024)
        "iterations": 300,           # mini-batches per run (paper: 400 on Wikipedia)
        "batch_size": 64,            # pairs per mini-batch (paper: 256)
        "triplet_batch_size": 32,    # pairs per mini-batch of the ranking objective (all-negatives mining is O(B³))
        "optimizer": "adam",         # "adam" | "sgd" (paper: SGD, lr 0.01 new layers)
        "lr": 3e-3,                  # learning rate, ÷10 at half of the run (as the paper)
        "margin": 0.2,               # triplet margin (ranking objective)
        "w_adv": 0.1,                # weight of the modality adversary (adversarial objective)
        "cca_components": 10,        # CCA common-space dimension
    },
    "default": {
        "dataset": "fashion_wiki",
        "n_seeds": 3,
        "n_train": 2000,
        "n_test": 1000,
        "text_features": "lda",
        "n_topics": 20,
        "text_signal": 0.25,
        "hidden": 128,
        "latent": 64,
        "latent_dims": [8, 16, 64, 256],
        "iterations": 500,
        "batch_size": 128,
        "triplet_batch_size": 64,
        "optimizer": "adam",
        "lr": 2e-3,
        "margin": 0.2,
        "w_adv": 0.1,
        "cca_components": 10,
    },
    "full": {
        "dataset": "wikipedia",
        "n_seeds": 5,
        "n_train": 2173,
        "n_test": 693,
        "text_features": "lda",
        "n_topics": 100,
        "text_signal": 0.25,
        "hidden": 4096,
        "latent": 512,
        "latent_dims": [64, 128, 256, 512, 1024],
        "iterations": 400,
        "batch_size": 256,
        "triplet_batch_size": 256,
        "optimizer": "sgd",
        "lr": 0.01,
        "margin": 0.2,
        "w_adv": 0.1,
        "cca_components": 10,
    },
}

_ALL = ("smoke", "default", "full")
_SRC = "seed 004 Table 2 (L136–160)"


def _o_le_matches_o(v):
    d = [abs(a - b) for a, b in zip(v["ablation/O-LE/average"], v["ablation/O/average"])]
    return max(d) <= 0.02, f"|O/LE − O| per seed = {', '.join(f'{x:.3f}' for x in d)} (tolerance 0.02)"


CLAIMS = [
    at_least("10.semantic_far_above_chance",
             "The isomorphic semantic representation (O/LE/J) retrieves far above chance: average mAP ≥ 3× chance",
             metric="ablation/O-LE-J/average_over_chance", threshold=3.0, paper="claim 004.5-1 (Table 2 ≫ 1/c)",
             source=_SRC, profiles=_ALL),
    greater("10.semantic_beats_cca",
            "Supervised semantic matching beats unsupervised CCA on the same features (average mAP, every seed)",
            a="compare/semantic/average", b="compare/cca/average", margin=0.05,
            paper="Table 3: CCA 23.6 vs ours 44.6 (Wikipedia)", source="seed 004 Table 3 (L162–176)",
            profiles=_ALL),
    custom("10.latent_layer_alone_no_change",
           "The latent layer alone does not change mAP: |O/LE − O| ≤ 0.02 average mAP on every seed",
           metrics=["ablation/O-LE/average", "ablation/O/average"], decide=_o_le_matches_o,
           paper="Table 2: O ≈ O/LE (43.1/43.1 Wikipedia, 48.8/48.9 PS)", source=_SRC, profiles=("default",)),
    greater("10.supervised_objectives_beat_cca",
            "All three supervised objectives (semantic, ranking, adversarial) beat CCA on every seed (worst of three)",
            a="compare/worst_supervised/average", b="compare/cca/average", paper="thesis §8.3.3 (no numbers)",
            source="seed 003 L2761–2773", profiles=("default",)),
    # ---- full-profile targets (Wikipedia) ----
    greater("10.joint_beats_original",
            "Joint parameters help: O/LE/J > O in average mAP (paper: +1.0 on Wikipedia)",
            a="ablation/O-LE-J/average", b="ablation/O/average", paper="Table 2: 44.1 vs 43.1", source=_SRC,
            profiles=("default", "full")),
    close_to("10.table2_wikipedia_joint", "Table 2 / abstract: O/LE/J average mAP on Wikipedia",
             metric="real/ablation/O-LE-J/average", target=0.441, tol=0.02, paper="44.1", source=_SRC,
             profiles=("full",)),
    close_to("10.table3_wikipedia_cca", "Table 3: CCA average mAP on Wikipedia",
             metric="real/compare/cca/average", target=0.236, tol=0.03, paper="23.6",
             source="seed 004 Table 3 (L162–176)", profiles=("full",)),
    greater("10.table1_small_latent_worse",
            "Table 1: the smallest latent dimension of the sweep is worse than the best (by > 0.01 mAP, every seed)",
            a="sweep/best/average", b="sweep/smallest/average", margin=0.01, paper="Wikipedia 42.5 vs 44.6",
            source="seed 004 Table 1 (L110–128)", profiles=("default", "full")),
    greater("10.text_query_higher", "Text queries score higher than image queries on Wikipedia (O/LE/J)",
            a="real/ablation/O-LE-J/t2i", b="real/ablation/O-LE-J/i2t", paper="Table 2: 45.1 vs 43.0", source=_SRC,
            profiles=("full",)),
]
