"""Datasets: ``data.load(name, split)`` for the embedded and converted real sets (:mod:`.registry`), the generated
benchmarks (:mod:`.photo_instances`, :mod:`.easy_vqa`, :mod:`.shape_captions`)."""
from xmr_lib.data.registry import (
    CONVERTED_DATASETS,
    REVISITED_DATASETS,
    ImageSet,
    LazyImages,
    MissingImagesError,
    RetrievalBenchmark,
    converted_available,
    dataset_assets,
    list_datasets,
    load,
    load_converted,
    photo_instances,
    revisited,
    source_photos,
    stratified_subset,
    with_captions,
)

__all__ = ["ImageSet", "LazyImages", "RetrievalBenchmark", "MissingImagesError", "load", "load_converted",
           "list_datasets", "converted_available", "photo_instances", "revisited", "source_photos",
           "stratified_subset", "with_captions", "dataset_assets", "CONVERTED_DATASETS", "REVISITED_DATASETS"]
