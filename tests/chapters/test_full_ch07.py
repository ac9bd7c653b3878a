"""Notebook 07's ``full`` profile end to end on the CPU (``tiny=True``): the CUB-200 → Stanford Dogs sequence in
the datasets' published formats (converted by ``data_scripts``), the paper's trunk (ResNet-50, randomly initialised,
for the student and the on-the-fly teacher), the generation from the teacher's BatchNorm statistics and every method
— at 32 px and a handful of steps; and the paper's settings of the full profile."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from xmr_lib.chapters.ch07 import config as ch07
from xmr_lib.chapters.ch07 import lecture
from xmr_lib.chapters.ch07 import lifelong as ll
from xmr_lib.core import claims
from xmr_lib.course import runs
from xmr_lib.train import incremental as inc

pytest.importorskip("torchvision")
pytest.importorskip("scipy.io")


pytestmark = pytest.mark.usefixtures("full_isolated")


def test_full_profile_takes_the_papers_generation_lr_and_kl_form():
    full, default = ch07.PROFILES["full"], ch07.PROFILES["default"]
    assert full["gen_lr"] == pytest.approx(0.5 / 255, rel=0.05)  # §7.5.2: Adam lr 0.5 on 0–255 pixels
    assert (full["temperature"], full["kd_scale"], full["lambda_kd1"], full["lambda_kd2"]) == (1.0, 1.0, 80.0, 20.0)
    assert full["base_iterations"] == 1500 * (150 // full["classes_per_batch"])  # 1500 author-epochs
    assert (default["gen_lr"], default["kd_scale"], default["temperature"]) == (0.05, 0.1, 4.0)  # unchanged
    settings = {r["setting"] for r in ch07.PAPER_SETTINGS}
    assert {"backbone", "generation", "schedule", "Gram KL form"} <= settings


def test_full_ch07_tiny_runs_the_gpu_path_on_cub_then_dogs(tmp_path, real_data):
    real_data(
        cub=dict(n_classes=4, per_class=5, n_train=3),
        dogs=dict(n_classes=4, n_train=3, n_test=2),
        cars=dict(n_classes=4, n_train=3, n_test=2),
    )
    P = runs.params("07", profile="full", tiny=True, data_root=str(tmp_path), device="cpu")
    assert not P.fell_back and P.backbone == "googlenet" and P.image_size == 32 and P.gen_lr == 0.002
    bench = lecture.benchmark(P, P.seed)
    assert bench.datasets == ["cub200", "stanford_dogs"] and tuple(bench.train.images.shape[1:]) == (3, 32, 32)
    make_model = lecture.model_factory(P)
    transform = lecture.batch_transform(P)
    assert sum(p.numel() for p in make_model(2).trunk.parameters()) == 5_599_904  # GoogLeNet's trunk
    base = lecture.train_first(P, bench, make_model, transform)
    cache0 = {}
    _, g0 = lecture.generate(P, base.model, bench, transform, cache0)
    assert g0.images.shape[0] == P.gen_images and np.isfinite(np.asarray(g0.images, dtype=float)).all()
    results = lecture.run_all(P, [P.seed], bench, base, cache0, make_model, transform)
    assert set(P.methods + P.ablation_methods) <= set(results[P.seed])
    metrics = lecture.score_metrics(P, results, bench, g0)
    flat = [x for v in metrics.values() for x in (v if isinstance(v, list) else [v]) if isinstance(x, float)]
    assert flat and all(math.isfinite(x) for x in flat)
    # Tables 7.2 / 7.3: the extra sequence (tiny: CUB → Dogs → Cars) from its own first network, scored per dataset
    seqs = lecture.run_sequences(P, make_model, transform, base, bench)  # from a copy of the main first network
    b3, r3 = seqs["cub_dogs_cars"]
    assert _same_state(r3["initial"].model, base.model) and r3["initial"].model is not base.model
    assert b3.datasets == ["cub200", "stanford_dogs", "stanford_cars"] and set(r3) == {"initial", *P.sequence_methods}
    assert all(len(r3[m].steps) == 3 for m in ("ft", "dkd"))
    pm = lecture.paper_metrics(P, results, bench, seqs)
    assert {"cub_dogs/dkd/dogs_H", "cub_dogs_cars/dkd/cars_H", "cub_dogs_cars/ft/cub_u"} <= set(pm)
    assert len(pm["cub_dogs_cars/dkd/first_s_curve"]) == 3 and all(0 <= v[0] <= 100 for v in pm.values() if v)
    # Table 7.5 (a random Inception-v3 at 75 px in tiny mode) and Fig. 7.8 (a, b) on the LwF network
    q = lecture.image_quality(P, g0, bench)
    assert q.attrs["scorer"] == "inception_v3" and "Inception-v3" in lecture.quality_caption(q, P)
    assert list(q.index) == ["noise", "generated", "real"]
    # the real images against themselves: 0 up to rounding (a random Inception-v3's features reach ~1e7)
    assert q.loc["real", "FID"] <= 1e-9 * max(1.0, q.loc["noise", "FID"])
    assert (q["IS"] >= 1 - 1e-9).all() and np.isfinite(q.to_numpy(float)).all()
    lwf = lecture.train_lwf(P, bench, make_model, transform)
    assert len(lwf.steps) == 2 and lwf.model.n_classes == sum(P.n_seen)
    ns = lecture.noise_sensitivity(lwf.model, bench, transform, P.noise_ratios, own_head=True)
    assert ns["ratio"] == P.noise_ratios and ns["R@1_drop"][0] == 0.0 and len(ns["accuracy"]) == 2
    pts, which, dist = lecture.dataset_distribution(r3["initial"].model, b3, transform)
    assert pts.shape == (len(which), 2) and set(which) == {0, 1, 2} and set(dist) == {(0, 1), (0, 2), (1, 2)}
    f78 = lecture.fig78_metrics(ns, dist, b3)
    assert {"fig78/distance_cub_dogs", "fig78/distance_cub_cars", "fig78/R@1_drop_last"} <= set(f78)
    for fig in (lecture.plot_orders(seqs), lecture.plot_noise(ns), lecture.plot_distribution(pts, which, b3)):
        assert fig.axes
    runs.record_many({**metrics, **pm, **lecture.quality_metrics(q), **f78})
    assert lecture.quality_metrics(q)["gen_quality/inception_v3"] == 1.0
    rec = json.loads(runs.metrics_path().read_text())
    assert rec["metrics"]["data/real"] == 1 and rec["params"]["tiny"] is True
    assert ll.harmonic_mean(0.5, 0.5) == pytest.approx(0.5)
    rows = {r["id"]: r["status"] for r in (claims.evaluate_claim(c, rec) for c in ch07.CLAIMS)}
    decided = (claims.HOLDS, claims.FAILS)
    assert rows["07.cub_dogs_cars_dkd_cars_H"] in decided and rows["07.generated_is_above_noise"] in decided
    assert rows["07.dogs_closer_to_birds_than_cars"] in decided
    assert rows["07.cub_cars_dkd_cars_H"] == claims.NOT_RUN  # CUB → Cars is not a tiny sequence


def _same_state(a, b) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k].cpu(), sb[k].cpu()) for k in sa)


def _small(tmp_path, real_data, **kw):
    """The full path at tiny scale with the small BN CNN (seconds): CUB, Dogs and Cars in their published formats."""
    real_data(
        cub=dict(n_classes=4, per_class=5, n_train=3),
        dogs=dict(n_classes=4, n_train=3, n_test=2),
        cars=dict(n_classes=4, n_train=3, n_test=2),
    )
    P = runs.params("07", profile="full", tiny=True, data_root=str(tmp_path), device="cpu", backbone="tiny")
    for k, v in kw.items():
        setattr(P, k, v)
    return P, lecture.model_factory(P), lecture.batch_transform(P)


def test_sequences_train_the_first_network_once_and_keep_their_numbers(tmp_path, real_data, monkeypatch):
    P, make_model, transform = _small(
        tmp_path,
        real_data,
        sequences=[["cub200", "stanford_dogs", "stanford_cars"], ["cub200", "stanford_cars"]],
        sequence_methods=["ft", "dkd"],
    )
    trained = []  # the name of every IncrementalTrainer run that trains
    run = inc.IncrementalTrainer._run
    monkeypatch.setattr(inc.IncrementalTrainer, "_run", lambda self: trained.append(self.name) or run(self))
    bench = lecture.benchmark(P, P.seed)
    base = lecture.train_first(P, bench, make_model, transform)
    seqs = lecture.run_sequences(P, make_model, transform, base, bench)
    assert trained == ["initial", "ft", "dkd", "ft", "dkd"]  # the first task trained once, for every sequence
    assert set(seqs) == {"cub_dogs_cars", "cub_cars"}
    for key, (b, r) in seqs.items():
        assert _same_state(r["initial"].model, base.model)
        assert all(np.array_equal(g, h) for g, h in zip(r["initial"].groups, b.eval_groups, strict=True))
        # before: each sequence trained its own first network (compare_lifelong without base) — the same numbers
        q = lecture.sequence_params(P, b.datasets)
        own = ll.compare_lifelong(
            make_model,
            b,
            P.sequence_methods,
            lecture.train_config(q, P.seed, len(b.datasets)),
            transform,
            plugin_kwargs=lecture.plugin_kwargs(q, P.seed, {}),
        )
        assert _same_state(own["initial"].model, base.model)
        assert lecture.table_metrics(key, b, r) == lecture.table_metrics(key, b, own)
        for m in ("initial", *P.sequence_methods):
            assert [st["groups"] for st in r[m].steps] == [st["groups"] for st in own[m].steps]
            assert _same_state(r[m].model, own[m].model)
    # a first task that differs (other seen classes) trains its own first network
    P.train_per_class = 2
    assert ll.first_task_key(lecture.benchmark(P, P.seed), lecture.train_config(P, P.seed, 2)) != ll.first_task_key(
        bench, lecture.train_config(P, P.seed, 2)
    )


def test_lwf_network_of_fig_7_8_distils_its_old_head_at_t2(tmp_path, real_data):
    P, make_model, transform = _small(tmp_path, real_data, base_iterations=30, inc_iterations=20)
    bench = lecture.benchmark(P, P.seed)
    names = [p.name for p in ll.lwf_plugins()]
    assert names == ["L_s", "ce", "kd"] and ll.lwf_plugins()[2].params == {"temperature": 2.0}
    lwf = lecture.train_lwf(P, bench, make_model, transform)
    assert len(lwf.steps) == 2 and lwf.model.n_classes == sum(P.n_seen)  # one classifier column per seen class
    first, second = ([x for x in lwf.losses if x["task"] == t] for t in (0, 1))
    assert "kd" not in first[0] and "kd" in second[0] and second[0]["kd"] > 0  # old head distilled from task 2 on
    assert first[-1]["ce"] < first[0]["ce"]  # the first dataset's head learns
    ns = lecture.noise_sensitivity(lwf.model, bench, transform, [0.0, 4.0], own_head=True)
    # accuracy = the model's own first-dataset columns on the clean test images, by hand
    seen = bench.seen[0]
    te = bench.test.mask(seen)
    logits = lwf.model.eval()(transform(bench.test.images[te].float() / 255.0)).logits[:, : len(seen)]
    y = torch.searchsorted(torch.as_tensor(np.asarray(seen)), bench.test.labels[te])
    assert ns["accuracy"][0] == pytest.approx(float((logits.argmax(1) == y).float().mean()))
    assert ns["R@1_drop"][0] == 0.0 and all(0 <= v <= 1 for v in ns["R@1"] + ns["accuracy"])
    with pytest.raises(ValueError, match="own_head"):
        lecture.noise_sensitivity(torch.nn.Sequential(torch.nn.Linear(2, 2)), bench, transform, [0.0], own_head=True)


def test_tables_7_1_to_7_3_targets_are_the_printed_rows_and_sequences_are_full_only():
    t73 = ch07.table_values("cub_dogs_cars")
    assert t73["dkd"] == {
        "cub_s": 62.4, "cub_u": 58.6, "cub_H": 60.5, "dogs_s": 67.4, "dogs_u": 84.3, "dogs_H": 74.9,
        "cars_s": 73.2, "cars_u": 83.7, "cars_H": 78.1,
    }  # fmt: skip
    assert (
        ch07.table_values("cub_cars")["joint"]["cars_H"] == 79.8
        and ch07.table_values("cub_dogs")["ft"]["cub_H"] == 51.4
    )
    for key in ("cub_dogs", "cub_cars", "cub_dogs_cars"):
        for m, row in ch07.table_values(key).items():  # every printed H is the harmonic mean of its s and u
            for d in {k.split("_")[0] for k in row}:
                assert row[f"{d}_H"] == pytest.approx(ll.harmonic_mean(row[f"{d}_s"], row[f"{d}_u"]), abs=0.06), (
                    key,
                    m,
                    d,
                )
    c = {x.id: x for x in ch07.CLAIMS}["07.cub_dogs_kd_dogs_H"]  # 78.9 ×3 in its column, nearest other 79.2
    assert c.profiles == ("full",)
    assert [ch07.PROFILES[p]["sequences"] for p in ("smoke", "default")] == [[], []]
    assert len(ch07.PROFILES["full"]["sequences"]) == 3 and ch07.PROFILES["full"]["image_quality"] is True


def test_feature_kd_forms_of_tables_7_1_to_7_3():
    import torch

    s, t = torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([[0.0, 0.0], [0.0, 2.0]])
    assert float(ll.feature_kd_loss(s, t, "l1")) == pytest.approx((1 + 1) / 2)  # |1| + |−1| over 2 images
    assert float(ll.feature_kd_loss(s, t, "l2")) == pytest.approx((1 + 1) / 2)
    assert float(ll.feature_kd_loss(s, s.clone(), "mmd")) == pytest.approx(0.0, abs=1e-3)
    assert float(ll.feature_kd_loss(s, t, "kl", 1.0)) == pytest.approx(float(ll.gram_kl(s, t, 1.0)))
    with pytest.raises(ValueError, match="form"):
        ll.feature_kd_loss(s, t, "cos")
    mk = lambda n: None  # noqa: E731 (never called while building the plugins)
    for v in ("kd_l1", "kd_replay_l2", "dkd_mmd"):
        base = v.rsplit("_", 1)[0]
        names = [p.name for p in ll.lifelong_plugins(v, make_model=mk)]
        assert names == [p.name for p in ll.lifelong_plugins(base, make_model=mk)]
        kd1 = [p for p in ll.lifelong_plugins(v, make_model=mk) if p.name == "L_kd1"][0]
        assert kd1.params == {"form": v.rsplit("_", 1)[1]}
    assert set(ch07._METHODS) == set(ll.LIFELONG_METHODS)
