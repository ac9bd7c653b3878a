"""Data pickles are read without running code: containers, numbers, strings and numpy arrays only."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest

from xmr_lib.core import safe_pickle


class _RunsCode:
    def __reduce__(self):
        return (os.system, ("echo this must never run",))


@pytest.mark.parametrize("protocol", range(pickle.HIGHEST_PROTOCOL + 1))
def test_a_revisitop_shaped_ground_truth_round_trips(tmp_path, protocol):
    gnd = {
        "imlist": ["all_souls_000001", "ashmolean_000000"],
        "qimlist": ["all_souls_000013"],
        "gnd": [{"easy": np.array([0]), "hard": [1], "junk": [], "bbx": [136.5, 34.1, 648.5, 955.7]}],
        "extra": ({1, 2}, np.float32(2.5), b"raw", 3 + 1j),
    }
    p = tmp_path / "gnd_roxford5k.pkl"
    p.write_bytes(pickle.dumps(gnd, protocol=protocol))
    back = safe_pickle.load(p)
    assert back["imlist"] == gnd["imlist"] and back["qimlist"] == gnd["qimlist"]
    np.testing.assert_array_equal(back["gnd"][0]["easy"], [0])
    assert back["gnd"][0]["bbx"] == gnd["gnd"][0]["bbx"] and back["extra"] == gnd["extra"]


def test_a_pickle_that_would_run_code_is_refused_naming_the_file(tmp_path, capfd):
    p = tmp_path / "gnd_evil.pkl"
    p.write_bytes(pickle.dumps({"gnd": _RunsCode()}))
    with pytest.raises(pickle.UnpicklingError, match=r"gnd_evil\.pkl: the pickle asks for .*system.*refused"):
        safe_pickle.load(p)
    assert "must never run" not in capfd.readouterr().out


def test_python2_cifar_style_batches_read_with_latin1():
    batch = {"data": np.arange(12, dtype=np.uint8).reshape(2, 6), "fine_labels": [3, 7], "filenames": ["a.png", "b"]}
    back = safe_pickle.loads(pickle.dumps(batch, protocol=2), "train", encoding="latin1")
    np.testing.assert_array_equal(back["data"], batch["data"])
    assert back["fine_labels"] == [3, 7]
