"""xmr_lib.data (the package): its public names are registry.__all__, derived there, not repeated."""

import importlib

from xmr_lib.data import registry

# the names the package exposed when __init__ listed them by hand (kept here so that a change is deliberate)
PUBLIC = {
    "ImageSet",
    "LazyImages",
    "RetrievalBenchmark",
    "MissingImagesError",
    "load",
    "load_converted",
    "list_datasets",
    "converted_available",
    "photo_instances",
    "revisited",
    "source_photos",
    "stratified_subset",
    "with_captions",
    "dataset_assets",
    "CONVERTED_DATASETS",
    "REVISITED_DATASETS",
    "karpathy_caption_benchmark",
    "TaggedImages",
    "read_tagged_images",
    "DiverseTopics",
    "read_div2017",
    "DIV2017_FETCH_HINT",
}


def test_star_import_exposes_registry_all_and_the_same_objects():
    ns: dict = {}
    exec("from xmr_lib.data import *", ns)
    names = set(ns) - {"__builtins__"}
    assert names == set(registry.__all__) == PUBLIC
    pkg = importlib.import_module("xmr_lib.data")
    assert list(pkg.__all__) == list(registry.__all__)
    for n in names:
        assert ns[n] is getattr(registry, n), n
