"""Fixtures of the chapters' ``full``-profile tests: an isolated cache / run folder, and the fine-grained datasets
(CUB-200-2011, Stanford Dogs, Stanford Cars) written in their published layouts and converted by ``data_scripts``."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from fixtures_real_formats import cub_fixture, jpg


@pytest.fixture
def full_isolated(tmp_path, monkeypatch):
    """Cache and run records under ``tmp_path``; one torch thread (the numbers of a sequential run)."""
    monkeypatch.setenv("XMR_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.setenv("XMR_RUN_DIR", str(tmp_path / "run"))
    import torch

    torch.set_num_threads(1)


def dogs_raw(raw: Path, n_classes: int, n_train: int, n_test: int) -> None:
    """Stanford Dogs' published layout (Images/<wnid-name>/*.jpg, train_list.mat / test_list.mat) with
    ``n_classes`` breeds of ``n_train`` + ``n_test`` images."""
    import scipy.io

    folders = [f"n0208{5620 + c}-Breed_{c}" for c in range(n_classes)]
    for s, n in (("train", n_train), ("test", n_test)):
        items = [(c, f"{folders[c].split('-')[0]}_{s}{j}.jpg") for c in range(n_classes) for j in range(n)]
        files = np.empty((len(items), 1), dtype=object)
        for k, (c, fn) in enumerate(items):
            files[k, 0] = np.array([f"{folders[c]}/{fn}"])
            jpg(raw / "Images" / folders[c] / fn, (37 * k + 11 * c) % 256)
        labels = np.array([[c + 1] for c, _ in items], dtype=np.uint8)
        scipy.io.savemat(raw / f"{s}_list.mat", {"file_list": files, "annotation_list": files, "labels": labels})


def cars_raw(raw: Path, n_classes: int, n_train: int, n_test: int) -> None:
    """Stanford Cars' published layout (devkit/cars_meta.mat, devkit/cars_train_annos.mat,
    cars_test_annos_withlabels.mat — MATLAB struct arrays bbox_x1 … fname —, cars_train/ and cars_test/ numbered from
    00001.jpg) with ``n_classes`` models of ``n_train`` + ``n_test`` images."""
    import scipy.io

    names = np.empty((1, n_classes), dtype=object)
    for c in range(n_classes):
        names[0, c] = np.array([f"Maker Model{c} Sedan {2000 + c}"])
    (raw / "devkit").mkdir(parents=True, exist_ok=True)
    scipy.io.savemat(raw / "devkit" / "cars_meta.mat", {"class_names": names})
    fields = ("bbox_x1", "bbox_y1", "bbox_x2", "bbox_y2", "class", "fname")
    for split, n in (("train", n_train), ("test", n_test)):
        rows = [c for c in range(n_classes) for _ in range(n)]
        a = np.zeros((1, len(rows)), dtype=[(f, "O") for f in fields])
        for k, c in enumerate(rows):
            fn = f"{k + 1:05d}.jpg"
            for f, v in zip(fields[:4], (1, 1, 20, 10)):
                a[0, k][f] = np.array([[v]], dtype=np.uint8)
            a[0, k]["class"] = np.array([[c + 1]], dtype=np.uint8)
            a[0, k]["fname"] = np.array([fn])
            jpg(raw / f"cars_{split}" / fn, (30 + 53 * c + 7 * k) % 256, size=(26, 14))
        mat = raw / "devkit" / "cars_train_annos.mat" if split == "train" else raw / "cars_test_annos_withlabels.mat"
        scipy.io.savemat(mat, {"annotations": a})


@pytest.fixture
def real_data(tmp_path):
    """``make(cub=…, dogs=…, cars=…) -> data_root``: each dataset given (a dict of its writer's sizes) written in
    its published layout under ``tmp_path/<name>/raw`` and converted by ``data_scripts`` (every file found)."""
    from data_scripts.convert import convert

    def make(cub: dict | None = None, dogs: dict | None = None, cars: dict | None = None) -> Path:
        for name, sizes, write in (
            ("cub200", cub, lambda raw, kw: cub_fixture(raw, **kw)),
            ("stanford_dogs", dogs, lambda raw, kw: dogs_raw(raw, **kw)),
            ("stanford_cars", cars, lambda raw, kw: cars_raw(raw, **kw)),
        ):
            if sizes is not None:
                write(tmp_path / name / "raw", sizes)
                assert convert(name, tmp_path)["missing"] == []
        return tmp_path

    return make
