"""Datasets: ``data.load(name, split)`` for the embedded and converted real sets and the readers of the other prepared
real sets (Karpathy captions, tagged collections, MediaEval 2017) (:mod:`.registry`), the generated
benchmarks (:mod:`.photo_instances`, :mod:`.easy_vqa`, :mod:`.shape_captions`)."""
from xmr_lib.data.registry import (
    CONVERTED_DATASETS,
    DIV2017_FETCH_HINT,
    REVISITED_DATASETS,
    DiverseTopics,
    ImageSet,
    LazyImages,
    MissingImagesError,
    RetrievalBenchmark,
    TaggedImages,
    converted_available,
    dataset_assets,
    karpathy_caption_benchmark,
    list_datasets,
    load,
    load_converted,
    photo_instances,
    read_div2017,
    read_tagged_images,
    revisited,
    source_photos,
    stratified_subset,
    with_captions,
)

__all__ = ["ImageSet", "LazyImages", "RetrievalBenchmark", "MissingImagesError", "load", "load_converted",
           "list_datasets", "converted_available", "photo_instances", "revisited", "source_photos",
           "stratified_subset", "with_captions", "dataset_assets", "CONVERTED_DATASETS", "REVISITED_DATASETS",
           "karpathy_caption_benchmark", "TaggedImages", "read_tagged_images", "DiverseTopics", "read_div2017",
           "DIV2017_FETCH_HINT"]
