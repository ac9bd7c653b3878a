"""The registry of real benchmarks: official URLs, expected files, checksums, sizes, licences and citations.

Every URL, exact size and checksum says where it was checked (``source`` / ``checksum_source``): the dataset's page
or paper, or a widely used loader that pins it (``torchvision.datasets.Flowers102``, TensorFlow Datasets'
``url_checksums/*.txt``, ...). Where a URL could not be checked offline the entry says so ("unverified: ...").

Checksums: a ``sha256`` / ``md5`` is stored only where one was published; everywhere else it is ``None`` — never
guessed, and never filled in from whatever arrived. Such a file is *unpinned*: ``fetch`` accepts it only when its
length matches the server's ``Content-Length`` (and, for an archive, when it reads to its last byte), and ``verify``
calls it "unpinned". ``size`` (exact bytes) is stored only where published; ``size_mb`` is display only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["RemoteFile", "DatasetSpec", "DATASETS", "get", "WeightsFile", "WEIGHTS", "get_weights"]


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset.

    Attributes:
        name: the file name on disk (``downloads/<name>``).
        urls: official URL first, then mirrors; empty for files that need a registration / form (``manual``).
        sha256, md5: the expected checksum, or None when none was published (never guessed).
        checksum_source: where the checksum comes from.
        size: the published size in bytes (None: unknown); a server announcing another length is refused.
        size_mb: approximate size (display only).
        source: where the URL (and size) were checked — or "unverified: ..." when they could not be.
        extract: a tar / zip archive to unpack into ``raw/``.
        optional: fetched only with ``--optional`` (e.g. precomputed features).
        manual: cannot be downloaded by a script (registration, a request form); ``--from-dir`` takes it.
    """

    name: str
    urls: tuple[str, ...] = ()
    sha256: str | None = None
    md5: str | None = None
    checksum_source: str = ""
    size: int | None = None
    size_mb: float | None = None
    extract: bool = False
    optional: bool = False
    manual: bool = False
    note: str = ""
    source: str = ""


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    title: str
    files: tuple[RemoteFile, ...]
    licence: str
    citation: str
    homepage: str
    layout: str  # what the converter writes under <root>/<name>/
    manual_steps: str = ""  # how to get the files that cannot be scripted
    used_by: str = ""
    extra: dict = field(default_factory=dict)


_RGEM = "http://cmp.felk.cvut.cz/revisitop/data/features/{}_resnet_rsfm120k_gem.mat"
_REVISITED_CITE = (
    "F. Radenović, A. Iscen, G. Tolias, Y. Avrithis, O. Chum. Revisiting Oxford and Paris: "
    "Large-Scale Image Retrieval Benchmarking. CVPR 2018."
)
_REVISITED_LAYOUT = (
    "gnd_{n}.pkl (kept as published: imlist, qimlist, gnd[easy/hard/junk/bbx]) and jpg/<image>.jpg "
    "(every image of the archives, flattened); optional {n}_resnet_rsfm120k_gem.mat. Loader: "
    "xmr_lib.data.revisited('{n}', root)"
)
_LABELLED_LAYOUT = (
    "images/<relative path>, index.csv (path,label,split{extra}), classes.txt, meta.json. Loader: "
    "xmr_lib.data.load('{n}', split, root=root)"
)

_TFDS = "TensorFlow Datasets, tensorflow_datasets/url_checksums/{}.txt (URL, size in bytes, sha256)"
_REVISITOP_DL = "revisitop's python/download.py (github.com/filipradenovic/revisitop): {}"
_VGG_V1 = (
    "unverified: written from the Oxford VGG buildings page's known layout (the face-blurred '-v1' archives "
    "of 2022, also named so by public loader scripts); revisitop's download.py still names the pre-2022 "
    "archive without '-v1'. No checksum published"
)

DATASETS: dict[str, DatasetSpec] = {}


def _add(spec: DatasetSpec) -> None:
    DATASETS[spec.name] = spec


_add(
    DatasetSpec(
        name="roxford5k",
        title="Revisited Oxford5k (70 queries, 4,993 images)",
        files=(
            RemoteFile(
                "gnd_roxford5k.pkl",
                ("http://cmp.felk.cvut.cz/revisitop/data/datasets/roxford5k/gnd_roxford5k.pkl",),
                size_mb=0.4,
                source=_REVISITOP_DL.format(
                    "http://cmp.felk.cvut.cz/revisitop/data/datasets/<name>/gnd_<name>.*; no checksum published"
                ),
            ),
            RemoteFile(
                "oxbuild_images-v1.tgz",
                (
                    "https://www.robots.ox.ac.uk/~vgg/data/oxbuildings/oxbuild_images-v1.tgz",
                    "https://thor.robots.ox.ac.uk/oxbuildings/oxbuild_images-v1.tgz",
                ),
                size_mb=1850,
                extract=True,
                note="face-blurred v1 images (2022)",
                source=_VGG_V1,
            ),
            RemoteFile(
                "roxford5k_resnet_rsfm120k_gem.mat",
                (_RGEM.format("roxford5k"),),
                size_mb=40,
                optional=True,
                note="revisitop's R-GeM descriptors (notebook 02's evaluation-path check)",
                source=_REVISITOP_DL.format(
                    "download_features(), data/features/<name>_resnet_rsfm120k_gem.mat; no checksum published"
                ),
            ),
        ),
        licence="images: Flickr photos, research use (Oxford VGG); ground truth: revisitop (no licence stated, cite)",
        citation=_REVISITED_CITE + " J. Philbin et al. Object retrieval with large vocabularies and fast spatial "
        "matching. CVPR 2007.",
        homepage="http://cmp.felk.cvut.cz/revisitop/",
        layout=_REVISITED_LAYOUT.format(n="roxford5k"),
        used_by="notebook 02 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="rparis6k",
        title="Revisited Paris6k (70 queries, 6,322 images)",
        files=(
            RemoteFile(
                "gnd_rparis6k.pkl",
                ("http://cmp.felk.cvut.cz/revisitop/data/datasets/rparis6k/gnd_rparis6k.pkl",),
                size_mb=0.5,
                source=_REVISITOP_DL.format(
                    "http://cmp.felk.cvut.cz/revisitop/data/datasets/<name>/gnd_<name>.*; no checksum published"
                ),
            ),
            RemoteFile(
                "paris_1-v1.tgz",
                ("https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_1-v1.tgz",),
                size_mb=1200,
                extract=True,
                source=_VGG_V1,
            ),
            RemoteFile(
                "paris_2-v1.tgz",
                ("https://www.robots.ox.ac.uk/~vgg/data/parisbuildings/paris_2-v1.tgz",),
                size_mb=1300,
                extract=True,
                source=_VGG_V1,
            ),
            RemoteFile(
                "rparis6k_resnet_rsfm120k_gem.mat",
                (_RGEM.format("rparis6k"),),
                size_mb=50,
                optional=True,
                note="revisitop's R-GeM descriptors (notebook 02's evaluation-path check)",
                source=_REVISITOP_DL.format(
                    "download_features(), data/features/<name>_resnet_rsfm120k_gem.mat; no checksum published"
                ),
            ),
        ),
        licence="images: Flickr photos, research use (Oxford VGG); ground truth: revisitop (no licence stated, cite)",
        citation=_REVISITED_CITE + " J. Philbin et al. Lost in quantization. CVPR 2008.",
        homepage="http://cmp.felk.cvut.cz/revisitop/",
        layout=_REVISITED_LAYOUT.format(n="rparis6k"),
        used_by="notebook 02 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="mirflickr25k",
        title="MIRFlickr-25K (25,000 Flickr images, tags, 24 labels; 20,015 kept by the DCMH protocol)",
        files=(
            RemoteFile(
                "mirflickr25k.zip",
                ("http://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k.zip",),
                md5="a23d0a8564ee84cda5622a6c2f947785",
                checksum_source=(
                    "MIRFlickr download page https://press.liacs.nl/mirflickr/mirdownload.html (MD5; "
                    "the same value is pinned by several public MIRFlickr loaders)"
                ),
                size_mb=3069,
                extract=True,
                source="MIRFlickr download page https://press.liacs.nl/mirflickr/mirdownload.html (v3b folder)",
            ),
            RemoteFile(
                "mirflickr25k_annotations_v080.zip",
                ("http://press.liacs.nl/mirflickr/mirflickr25k.v3b/mirflickr25k_annotations_v080.zip",),
                size_mb=0.2,
                extract=True,
                source=(
                    "MIRFlickr download page https://press.liacs.nl/mirflickr/mirdownload.html (v3b folder); "
                    "no checksum published there for the annotations"
                ),
            ),
        ),
        licence="images: Creative Commons (per-image Flickr licences, listed in the archive); research use",
        citation="M. J. Huiskes, M. S. Lew. The MIR Flickr Retrieval Evaluation. MIR 2008.",
        homepage="https://press.liacs.nl/mirflickr/",
        layout=(
            "labels.npy (N,24) 0/1, tags_bow.npy (N,T) 0/1 (tags in >= 20 images), images.npy (N,S,S,3) uint8, "
            "meta.json (label_names, vocab); images/, index.csv (path,label,split,labels,tags). Alternatively the "
            "DCMH-style .mat files (LAll, YAll, IAll / images) placed in raw/. Loaders: "
            "xmr_lib.chapters.ch03.crossmodal.load_crossmodal_pairs('mirflickr25k', root) and xmr_lib.data.load"
        ),
        manual_steps=(
            "Alternatively put the processed DCMH files (FLICKR-25K.mat, or mirflickr25k-lall.mat / -yall.mat "
            "/ -iall.mat) in <root>/mirflickr25k/raw/ and run `python -m data_scripts convert mirflickr25k "
            "--root DIR` (MATLAB v7.3 files need `pip install h5py`)."
        ),
        used_by="notebook 03 (full profile)",
    )
)

_NUS_PAGE = (
    "NUS-WIDE homepage (lms.comp.nus.edu.sg ... NUS-WIDE.html): by hand, through links that change; "
    "no checksum published"
)

_add(
    DatasetSpec(
        name="nuswide",
        title="NUS-WIDE (269,648 Flickr images, 81 concepts, 1,000 tags; 21 most frequent concepts kept)",
        files=(
            RemoteFile("Groundtruth.zip", manual=True, extract=True, source=_NUS_PAGE, size_mb=5),
            RemoteFile("NUS_WID_Tags.zip", manual=True, extract=True, source=_NUS_PAGE, size_mb=60),
            RemoteFile("ConceptsList.zip", manual=True, extract=True, source=_NUS_PAGE, size_mb=0.1),
            RemoteFile("ImageList.zip", manual=True, extract=True, source=_NUS_PAGE, size_mb=5),
            RemoteFile(
                "Flickr.zip",
                manual=True,
                extract=True,
                optional=True,
                size_mb=15000,
                source=_NUS_PAGE,
                note="the images (request them from the NUS-WIDE team, or download from the Flickr URL list)",
            ),
        ),
        licence="research use only (NUS LMS); images are Flickr photos",
        citation="T.-S. Chua, J. Tang, R. Hong, H. Li, Z. Luo, Y. Zheng. NUS-WIDE: A Real-World Web Image Database "
        "from National University of Singapore. CIVR 2009.",
        homepage="https://lms.comp.nus.edu.sg/wp-content/uploads/2019/research/nuswide/NUS-WIDE.html",
        layout=(
            "labels.npy (N,21), tags_bow.npy (N,1000), meta.json; images.npy when the images are present; index.csv "
            "(path,label,split,labels)"
        ),
        manual_steps=(
            "The NUS-WIDE page hands the files out through links that change (Google Drive / OneDrive): "
            "download Groundtruth, NUS_WID_Tags, ConceptsList and ImageList (and the images if you have "
            "them) from the homepage, put the zips in one folder and run `python -m data_scripts fetch "
            "nuswide --root DIR --from-dir THAT_FOLDER`."
        ),
        used_by="notebook 03 (full profile, -p dataset=nuswide)",
    )
)

_KARPATHY = RemoteFile(
    "caption_datasets.zip",
    ("https://cs.stanford.edu/people/karpathy/deepimagesent/caption_datasets.zip",),
    sha256="4cfd70132527b80933105e5829dc9034eaab9573482e2e680abbab6130244817",
    checksum_source=_TFDS.format("coco_captions"),
    size=36_745_453,
    size_mb=36.7,
    extract=True,
    note="Karpathy splits: dataset_{coco,flickr8k,flickr30k}.json",
    source=_TFDS.format("coco_captions") + "; Karpathy's deepimagesent page links the same URL",
)

_add(
    DatasetSpec(
        name="flickr30k",
        title="Flickr30K (31,783 images, 5 captions each; Karpathy split 29k / 1k / 1k)",
        files=(
            _KARPATHY,
            RemoteFile(
                "flickr30k-images.tar.gz",
                manual=True,
                extract=True,
                size_mb=4200,
                note="the images, after the request form",
                source="Flickr30K homepage (request form; by hand); no checksum published",
            ),
        ),
        licence="captions: CC BY (Young et al.); images: Flickr terms of use, research only",
        citation="P. Young, A. Lai, M. Hodosh, J. Hockenmaier. From image descriptions to visual denotations. TACL "
        "2014. A. Karpathy, L. Fei-Fei. Deep visual-semantic alignments for generating image descriptions. "
        "CVPR 2015 (split).",
        homepage="https://shannon.cs.illinois.edu/DenotationGraph/",
        layout=(
            "dataset_flickr30k.json (Karpathy format), images/<file>.jpg, index.csv (path,label,split), "
            "captions.csv (image,caption)"
        ),
        manual_steps=(
            "The images are given out after a request form on the homepage: put flickr30k-images.tar.gz (or "
            "the unpacked flickr30k-images/ folder) in a folder and pass it with --from-dir."
        ),
        used_by="notebook 04 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="coco",
        title="MS-COCO captions (123,287 images, 5 captions each; Karpathy split 113k / 5k / 5k)",
        files=(
            _KARPATHY,
            RemoteFile(
                "train2014.zip",
                ("http://images.cocodataset.org/zips/train2014.zip",),
                sha256="ede4087e640bddba550e090eae701092534b554b42b05ac33f0300b984b31775",
                checksum_source=_TFDS.format("coco2014"),
                size=13_510_573_713,
                size_mb=13511,
                extract=True,
                source=_TFDS.format("coco2014") + " and cocodataset.org/#download",
            ),
            RemoteFile(
                "val2014.zip",
                ("http://images.cocodataset.org/zips/val2014.zip",),
                sha256="fe9be816052049c34717e077d9e34aa60814a55679f804cd043e3cbee3b9fde0",
                checksum_source=_TFDS.format("coco2014"),
                size=6_645_013_297,
                size_mb=6645,
                extract=True,
                source=_TFDS.format("coco2014") + " and cocodataset.org/#download",
            ),
            RemoteFile(
                "annotations_trainval2014.zip",
                ("http://images.cocodataset.org/annotations/annotations_trainval2014.zip",),
                sha256="031296bbc80c45a1d1f76bf9a90ead27e94e99ec629208449507a4917a3bf009",
                checksum_source=_TFDS.format("coco2014"),
                size=252_872_794,
                size_mb=253,
                extract=True,
                optional=True,
                note="official captions_*.json (the Karpathy file already has them)",
                source=_TFDS.format("coco2014") + " and cocodataset.org/#download",
            ),
        ),
        licence="annotations CC BY 4.0; images: Flickr terms of use",
        citation="T.-Y. Lin et al. Microsoft COCO: Common Objects in Context. ECCV 2014. X. Chen et al. Microsoft COCO "
        "Captions. arXiv:1504.00325. Karpathy & Fei-Fei, CVPR 2015 (split).",
        homepage="https://cocodataset.org/",
        layout=(
            "dataset_coco.json (Karpathy format; built from captions_<split>.json when the Karpathy file is absent: "
            "train→train, val→test), images/<train2014|val2014|...>/<file>.jpg, index.csv, captions.csv"
        ),
        used_by="notebook 04 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="cub200",
        title="Caltech-UCSD Birds-200-2011 (11,788 images, 200 species)",
        files=(
            RemoteFile(
                "CUB_200_2011.tgz",
                (
                    "https://data.caltech.edu/records/65de6-vp158/files/CUB_200_2011.tgz",
                    "http://www.vision.caltech.edu/visipedia-data/CUB-200-2011/CUB_200_2011.tgz",
                ),
                md5="97eceeb196236b17998738112f37df78",
                checksum_source=(
                    "MD5 pinned by the widely used loaders: avalanche.benchmarks.datasets.CUB200"
                    ".tgz_md5 and TDeVries/cub2011_dataset Cub2011.tgz_md5 (torchvision has no "
                    "CUB class)"
                ),
                size_mb=1150,
                extract=True,
                source=(
                    "CaltechDATA record 65de6-vp158 (the link on the dataset page; also used with this MD5 "
                    "by public loaders); the vision.caltech.edu URL is the one the loaders above used"
                ),
            ),
        ),
        licence="research and non-commercial use (Caltech); images from Flickr",
        citation="C. Wah, S. Branson, P. Welinder, P. Perona, S. Belongie. The Caltech-UCSD Birds-200-2011 Dataset. "
        "CNS-TR-2011-001, Caltech, 2011.",
        homepage="https://www.vision.caltech.edu/datasets/cub_200_2011/",
        layout=_LABELLED_LAYOUT.format(n="cub200", extra=",bbox") + " (official train/test split)",
        used_by="notebook 05 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="stanford_dogs",
        title="Stanford Dogs (20,580 images, 120 breeds)",
        files=(
            RemoteFile(
                "images.tar",
                ("http://vision.stanford.edu/aditya86/ImageNetDogs/images.tar",),
                sha256="a443fc2f9a851aa1a7b8e4fa4af94b8459fce2c9f5a2f4dd4669cf9673a4ec58",
                checksum_source=_TFDS.format("stanford_dogs"),
                size=793_579_520,
                size_mb=794,
                extract=True,
                source=_TFDS.format("stanford_dogs"),
            ),
            RemoteFile(
                "lists.tar",
                ("http://vision.stanford.edu/aditya86/ImageNetDogs/lists.tar",),
                sha256="34b47cacd9a98b5d150e084f24d29391c084c55272295ec65c85651bc35f4d6c",
                checksum_source=_TFDS.format("stanford_dogs"),
                size=481_280,
                size_mb=0.5,
                extract=True,
                source=_TFDS.format("stanford_dogs"),
            ),
        ),
        licence="ImageNet terms: non-commercial research and education",
        citation="A. Khosla, N. Jayadevaprakash, B. Yao, L. Fei-Fei. Novel dataset for Fine-Grained Image "
        "Categorization. FGVC workshop, CVPR 2011.",
        homepage="http://vision.stanford.edu/aditya86/ImageNetDogs/",
        layout=_LABELLED_LAYOUT.format(n="stanford_dogs", extra="") + " (official train_list.mat / test_list.mat)",
        used_by="notebook 05 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="fgvc_aircraft",
        title="FGVC-Aircraft 2013b (10,000 images, 100 variants)",
        files=(
            RemoteFile(
                "fgvc-aircraft-2013b.tar.gz",
                ("https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/archives/fgvc-aircraft-2013b.tar.gz",),
                sha256="d5f68b1b81d6d7831eb9d5c5517074176b5dfbce6bcb43dc14ed1c66a87b8d75",
                checksum_source=_TFDS.format("fgvc") + " (torchvision.datasets.FGVCAircraft pins none)",
                size=2_770_575_360,
                size_mb=2771,
                extract=True,
                source=(
                    "torchvision.datasets.FGVCAircraft._URL (fgvc_aircraft.py) and "
                    + _TFDS.format("fgvc")
                    + " (same path over http)"
                ),
            ),
        ),
        licence="non-commercial research only (images by their photographers, see the archive)",
        citation="S. Maji, E. Rahtu, J. Kannala, M. Blaschko, A. Vedaldi. Fine-Grained Visual Classification of "
        "Aircraft. arXiv:1306.5151, 2013.",
        homepage="https://www.robots.ox.ac.uk/~vgg/data/fgvc-aircraft/",
        layout=_LABELLED_LAYOUT.format(n="fgvc_aircraft", extra=",coarse")
        + " (variant labels, manufacturer as coarse label; the images keep their 20-px copyright banner at the bottom)",
    )
)

_FLOWERS_SUMS = "MD5: torchvision.datasets.Flowers102._file_dict (flowers102.py); sha256 and size: " + _TFDS.format(
    "oxford_flowers102"
)
_FLOWERS_SRC = "torchvision.datasets.Flowers102._download_url_prefix (flowers102.py) and " + _TFDS.format(
    "oxford_flowers102"
)

_add(
    DatasetSpec(
        name="flowers102",
        title="Oxford Flowers-102 (8,189 images, 102 species)",
        files=(
            RemoteFile(
                "102flowers.tgz",
                ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/102flowers.tgz",),
                md5="52808999861908f626f3c1f4e79d11fa",
                sha256="2d01ecc807db462958cfe3d92f57a8c252b4abd240eb955770201e45f783b246",
                checksum_source=_FLOWERS_SUMS,
                size=344_862_509,
                size_mb=345,
                extract=True,
                source=_FLOWERS_SRC,
            ),
            RemoteFile(
                "imagelabels.mat",
                ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/imagelabels.mat",),
                md5="e0620be6f572b9609742df49c70aed4d",
                sha256="4903e94206bac23bf772aadf06451916df56b58fc483a62db32a97b82656651d",
                checksum_source=_FLOWERS_SUMS,
                size=502,
                size_mb=0.01,
                source=_FLOWERS_SRC,
            ),
            RemoteFile(
                "setid.mat",
                ("https://www.robots.ox.ac.uk/~vgg/data/flowers/102/setid.mat",),
                md5="a5357ecc9cb78c4bef273ce3793fc85c",
                sha256="46b8678f91fd95d3c8f4feab80d271a6c834a1dd896fe29fd3e6ad9ce5c8dccd",
                checksum_source=_FLOWERS_SUMS,
                size=14_989,
                size_mb=0.01,
                source=_FLOWERS_SRC,
            ),
        ),
        licence="research use (Oxford VGG); no explicit licence",
        citation="M.-E. Nilsback, A. Zisserman. Automated flower classification over a large number of classes. "
        "ICVGIP 2008.",
        homepage="https://www.robots.ox.ac.uk/~vgg/data/flowers/102/",
        layout=_LABELLED_LAYOUT.format(n="flowers102", extra="")
        + " (official trnid / valid / tstid split; class names are class_001… — the release has none)",
    )
)

_add(
    DatasetSpec(
        name="wikipedia",
        title="Wikipedia cross-media (2,866 image–article pairs, 10 categories; 2,173 / 693)",
        files=(
            RemoteFile(
                "wikipedia_dataset.zip",
                ("http://www.svcl.ucsd.edu/projects/crossmodal/wikipedia_dataset.zip",),
                size_mb=140,
                extract=True,
                source=(
                    "unverified: written from the SVCL cross-modal page's known layout "
                    "(http://www.svcl.ucsd.edu/projects/crossmodal/); no checksum published"
                ),
            ),
        ),
        licence="research use (SVCL, UCSD); texts from Wikipedia (CC BY-SA)",
        citation="N. Rasiwasia, J. Costa Pereira, E. Coviello, G. Doyle, G. Lanckriet, R. Levy, N. Vasconcelos. A New "
        "Approach to Cross-Modal Multimedia Retrieval. ACM MM 2010.",
        homepage="http://www.svcl.ucsd.edu/projects/crossmodal/",
        layout=_LABELLED_LAYOUT.format(n="wikipedia", extra="") + "; captions.csv (image,caption = the article text)",
        manual_steps=(
            "Notebook 10's full profile reads isomorphic_features.npz (AlexNet fc7 + LDA features, see "
            "xmr_lib.chapters.ch10.common_space.load_feature_pairs); the converter writes the images and texts, not those "
            "features."
        ),
        used_by="notebook 10 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="pascal_sentence",
        title="UIUC Pascal Sentence (1,000 images, 20 classes, 5 sentences each)",
        files=(
            RemoteFile(
                "pascal_sentence",
                manual=True,
                size_mb=70,
                note="a folder: dataset/<class>/*.jpg and sentence/<class>/*.txt",
                source="the UIUC Pascal Sentence page (by hand; no archive, no checksum)",
            ),
        ),
        licence="images: PASCAL VOC 2008 (Flickr terms); sentences: research use (UIUC)",
        citation="C. Rashtchian, P. Young, M. Hodosh, J. Hockenmaier. Collecting Image Annotations Using Amazon's "
        "Mechanical Turk. NAACL-HLT workshop 2010.",
        homepage="https://vision.cs.uiuc.edu/pascal-sentences/",
        layout=_LABELLED_LAYOUT.format(n="pascal_sentence", extra="")
        + "; captions.csv (5 per image); split per class: first 40 train, next 5 val, last 5 test (sorted by name)",
        manual_steps=(
            "The homepage is one HTML page that links each image and lists its sentences. Save the images as "
            "dataset/<class>/<file>.jpg and the sentences as sentence/<class>/<file>.txt (one per line; "
            "this is the layout the cross-media papers distribute) in a folder named pascal_sentence, and "
            "pass its parent with --from-dir."
        ),
        used_by="notebook 10 (full profile)",
    )
)

_VOC07 = "https://thor.robots.ox.ac.uk/pascal/VOC/voc2007/"
_add(
    DatasetSpec(
        name="voc2007",
        title="PASCAL VOC 2007 as a cross-media set (9,963 images, 20 classes, multi-label; 5,011 / 4,952)",
        files=(
            RemoteFile(
                "VOCtrainval_06-Nov-2007.tar",
                (_VOC07 + "VOCtrainval_06-Nov-2007.tar",),
                md5="c52e279531787c972589f7e41ab4ae64",
                checksum_source="torchvision.datasets.voc (DATASET_YEAR_DICT['2007'])",
                size_mb=439,
                extract=True,
                source="torchvision.datasets.voc (the Oxford mirror of the VOC 2007 release)",
            ),
            RemoteFile(
                "VOCtest_06-Nov-2007.tar",
                (_VOC07 + "VOCtest_06-Nov-2007.tar",),
                md5="b6e924de25625d8de591ea690078ad9f",
                checksum_source="torchvision.datasets.voc (DATASET_YEAR_DICT['2007-test'])",
                size_mb=431,
                extract=True,
                source="torchvision.datasets.voc (the Oxford mirror of the VOC 2007 release)",
            ),
            RemoteFile(
                "voc2007_tags",
                manual=True,
                optional=True,
                note="a folder tags/<image id>.txt, one tag per line in the order they were named",
                source="S. J. Hwang and K. Grauman's tagged PASCAL VOC 2007 release (by hand; no checksum)",
            ),
        ),
        licence="images: Flickr terms (VOC 2007 release); tags: research use (Hwang & Grauman)",
        citation="M. Everingham, L. Van Gool, C. K. I. Williams, J. Winn, A. Zisserman. The PASCAL Visual Object "
        "Classes (VOC) Challenge. IJCV 2010. Tags: S. J. Hwang, K. Grauman. Accounting for the Relative Importance "
        "of Objects in Image Retrieval. BMVC 2010.",
        homepage="http://host.robots.ox.ac.uk/pascal/VOC/voc2007/",
        layout=_LABELLED_LAYOUT.format(n="voc2007", extra=",labels")
        + " (label -1, labels = the space-separated class ids of the image's objects from Annotations/*.xml, "
        "difficult ones included); split trainval → train, test → test; captions.csv (image,caption = the "
        "image's tags in their order) when the tags folder is there",
        manual_steps=(
            "The text side of the ICME 2017 paper is Hwang & Grauman's tag lists (its 798-d tag-ranking feature). "
            "Save their per-image tag files as voc2007_tags/tags/<image id>.txt and pass the parent of "
            "voc2007_tags with --from-dir; without them the converter writes the images and labels only."
        ),
        used_by="notebook 10 (full profile, -p dataset=voc2007)",
    )
)

_add(
    DatasetSpec(
        name="mediaeval2017_div",
        title="MediaEval 2017 Retrieving Diverse Social Images (devset / testset)",
        files=(
            RemoteFile(
                "devset",
                manual=True,
                note="the organisers' folder",
                source="MediaEval 2017 organisers (registration; by hand)",
            ),
            RemoteFile(
                "testset",
                manual=True,
                optional=True,
                note="the organisers' folder",
                source="MediaEval 2017 organisers (registration; by hand)",
            ),
        ),
        licence="MediaEval data licence (registration); images are Creative Commons Flickr photos",
        citation="M. Zaharieva, B. Ionescu, A. L. Gînscă, R. L. T. Santos, H. Müller. Retrieving Diverse Social Images "
        "at MediaEval 2017. MediaEval 2017.",
        homepage="https://multimediaeval.github.io/",
        layout="devset/ and testset/ as released (topics XML, xml/, img/, gt/): read by xmr_lib.chapters.ch09.diversity",
        manual_steps="Register with the MediaEval organisers, then pass the folder holding devset/ (and testset/) "
        "with --from-dir.",
        used_by="notebook 09 (full profile)",
    )
)

_add(
    DatasetSpec(
        name="pascal2019_targets",
        title="The 90 ImageNet-21k target synsets of the CBMI'19 transfer paper",
        files=(
            RemoteFile("train", manual=True, note="train/<wnid>/*.JPEG", source="image-net.org (account; by hand)"),
            RemoteFile("test", manual=True, note="test/<wnid>/*.JPEG", source="image-net.org (account; by hand)"),
        ),
        licence="ImageNet terms of access (non-commercial research)",
        citation="ImageNet (Deng et al., CVPR 2009); the synset lists of the CBMI 2019 paper.",
        homepage="https://image-net.org/",
        layout="train/<wnid>/*.JPEG and test/<wnid>/*.JPEG (read by xmr_lib.chapters.ch08.transfer.imagenet_folder_targets)",
        manual_steps="ImageNet-21k needs an account: put the folders train/ and test/ in one folder and pass it with "
        "--from-dir.",
        used_by="notebook 08 (full profile)",
    )
)


_add(
    DatasetSpec(
        name="cirtorch_networks",
        title="The GeM paper's released network (ResNet-101 GeM, trained on SfM-120k)",
        files=(
            RemoteFile(
                "retrievalSfM120k-resnet101-gem-b80fb85.pth",
                (
                    "http://cmp.felk.cvut.cz/cnnimageretrieval/data/networks/retrieval-SfM-120k/"
                    "retrievalSfM120k-resnet101-gem-b80fb85.pth",
                ),
                size_mb=170,
                note="the name's suffix looks like a hash prefix, but no checksum is published",
                source=(
                    "cnnimageretrieval-pytorch cirtorch/examples/test.py PRETRAINED"
                    "['retrievalSfM120k-resnet101-gem']; no checksum published"
                ),
            ),
        ),
        licence="cnnimageretrieval-pytorch: MIT (code); network weights released by the authors for research",
        citation="F. Radenović, G. Tolias, O. Chum. Fine-tuning CNN Image Retrieval with No Human Annotation. TPAMI "
        "2018.",
        homepage="https://github.com/filipradenovic/cnnimageretrieval-pytorch",
        layout="the .pth file as released (notebook 02 finds it anywhere under data_root)",
        used_by="notebook 02 (full profile: the published-network check)",
    )
)

_CIRTORCH_TRAIN = "http://cmp.felk.cvut.cz/cnnimageretrieval/data/train/{}"
_CIRTORCH_DL = "cnnimageretrieval-pytorch cirtorch/utils/download.py download_train(): {}; no checksum published"

_add(
    DatasetSpec(
        name="retrieval_sfm120k",
        title="retrieval-SfM-120k (the GeM networks' training set: 91,642 train / 6,403 val images, 3-D model "
        "clusters, query-positive pairs) — the image archive is OVER 50 GB",
        files=(
            RemoteFile(
                "retrieval-SfM-120k.pkl",
                (_CIRTORCH_TRAIN.format("dbs/retrieval-SfM-120k.pkl"),),
                size_mb=5,
                note="{'train', 'val'}: cids, cluster, qidxs, pidxs",
                source=_CIRTORCH_DL.format("data/train/dbs/<dataset>.pkl"),
            ),
            RemoteFile(
                "ims.tar.gz",
                (_CIRTORCH_TRAIN.format("ims/ims.tar.gz"),),
                size_mb=50000,
                extract=True,
                note="the images, over 50 GB (cnnimageretrieval-pytorch issue #52); unpacking needs about as much "
                "again free next to it; an interrupted download resumes from its .part",
                source=_CIRTORCH_DL.format("data/train/ims/ims.tar.gz, unpacked into ims/"),
            ),
            RemoteFile(
                "retrieval-SfM-120k-whiten.pkl",
                (_CIRTORCH_TRAIN.format("dbs/retrieval-SfM-120k-whiten.pkl"),),
                size_mb=1,
                optional=True,
                note="cids, qidxs, pidxs: the pairs of cirtorch's learned whitening L_w (--whitening)",
                source=_CIRTORCH_DL.format("data/train/dbs/<dataset>-whiten.pkl"),
            ),
        ),
        licence="images: Flickr photos collected for research (CMP Prague); db files: cnnimageretrieval-pytorch "
        "(MIT code; no data licence stated, cite)",
        citation="F. Radenović, G. Tolias, O. Chum. Fine-tuning CNN Image Retrieval with No Human Annotation. TPAMI "
        "2018. F. Radenović, G. Tolias, O. Chum. CNN Image Retrieval Learns from BoW: Unsupervised Fine-Tuning with "
        "Hard Examples. ECCV 2016.",
        homepage="https://github.com/filipradenovic/cnnimageretrieval-pytorch",
        layout="retrieval-SfM-120k.pkl (kept as published), optional retrieval-SfM-120k-whiten.pkl, and "
        "ims/<cid[-2:]>/<cid[-4:-2]>/<cid[-6:-4]>/<cid> (cirtorch's cid2filename). Loader: "
        "xmr_lib.data.sfm120k.read_sfm120k(root, 'train' | 'val')",
        used_by="notebook 02 (full profile: fine-tuning by the cirtorch recipe when present)",
    )
)


def get(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise ValueError(
            f"name: unknown dataset {name!r}; known: {', '.join(sorted(DATASETS))} (python -m data_scripts list)"
        )
    return DATASETS[name]


_CARS_GONE = (
    "unverified: the file names of the Stanford Cars page (ai.stanford.edu/~jkrause/cars/car_dataset.html); "
    "torchvision.datasets.StanfordCars (stanford_cars.py) says that URL 'isn't available online anymore' and "
    "reads devkit/cars_train_annos.mat, devkit/cars_meta.mat, cars_test_annos_withlabels.mat, cars_train/, "
    "cars_test/; no checksum published"
)

_add(
    DatasetSpec(
        name="stanford_cars",
        title="Stanford Cars (16,185 images, 196 models; 8,144 train / 8,041 test)",
        files=(
            RemoteFile("car_devkit.tgz", manual=True, extract=True, size_mb=0.3, source=_CARS_GONE),
            RemoteFile("cars_train.tgz", manual=True, extract=True, size_mb=979, source=_CARS_GONE),
            RemoteFile("cars_test.tgz", manual=True, extract=True, size_mb=977, source=_CARS_GONE),
            RemoteFile(
                "cars_test_annos_withlabels.mat",
                manual=True,
                size_mb=0.2,
                note="the test labels (released after the 2013 challenge)",
                source=_CARS_GONE,
            ),
        ),
        licence="research use (Stanford; images from the web, ImageNet-style terms)",
        citation="J. Krause, M. Stark, J. Deng, L. Fei-Fei. 3D Object Representations for Fine-Grained "
        "Categorization. 3dRR workshop, ICCV 2013.",
        homepage="https://ai.stanford.edu/~jkrause/cars/car_dataset.html",
        layout=_LABELLED_LAYOUT.format(n="stanford_cars", extra=",bbox")
        + " (images/cars_train/, images/cars_test/; official split; bbox 'x y w h' from the 1-based, inclusive "
        "bbox_x1..y2 of the devkit)",
        manual_steps=(
            "The official download page is gone (torchvision no longer downloads it either). Get car_devkit.tgz, "
            "cars_train.tgz, cars_test.tgz and cars_test_annos_withlabels.mat from a mirror you trust (or the "
            "unpacked devkit/, cars_train/, cars_test/ folders), put them in one folder and run "
            "`python -m data_scripts fetch stanford_cars --root DIR --from-dir FOLDER`."
        ),
        used_by="xmr_lib.data.load('stanford_cars', split, root=DIR)",
    )
)

_add(
    DatasetSpec(
        name="cifar100",
        title="CIFAR-100 (60,000 32×32 images, 100 classes in 20 superclasses; 50,000 train / 10,000 test)",
        files=(
            RemoteFile(
                "cifar-100-python.tar.gz",
                ("https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz",),
                md5="eb9058c3a382ffc7106e4002c42a8d85",
                checksum_source="torchvision.datasets.CIFAR100.tgz_md5 (torchvision/datasets/cifar.py)",
                size_mb=169,
                extract=True,
                source="torchvision.datasets.CIFAR100.url (cifar.py); Krizhevsky's CIFAR page links the same file",
            ),
        ),
        licence="no explicit licence (Krizhevsky, 2009); cite the tech report; images from 80 Million Tiny Images",
        citation="A. Krizhevsky. Learning Multiple Layers of Features from Tiny Images. Tech. report, University of "
        "Toronto, 2009.",
        homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
        layout=_LABELLED_LAYOUT.format(n="cifar100", extra=",coarse")
        + " (images/<train|test>/<NNNNN>_<filename>.png from the python pickle batches train / test / meta; "
        "fine labels, superclass as coarse label, classes in the order of meta's fine_label_names)",
        used_by="xmr_lib.data.load('cifar100', split, root=DIR)",
    )
)


# --------------------------------------------------------------------------------------------------------------
# pretrained weights (``python -m data_scripts fetch NAME``; xmr_lib never downloads them)


@dataclass(frozen=True)
class WeightsFile:
    """One pretrained weight file, fetched into the weights folder that ``xmr_lib.core.paths.find_weights`` searches.

    Attributes:
        name: the name given to ``fetch`` (the backbone's name in ``xmr_lib.encoders.backbones.backbone``).
        file: the file name, as published.
        url: the official URL.
        sha256_prefix: the published leading hex digits of its sha256 (None: none published — unpinned).
        checksum_source: where that prefix comes from.
        size_mb: approximate size (display only; torchvision's ``_file_size`` meta is in MB, not exact bytes).
        source: where the URL was checked.
    """

    name: str
    file: str
    url: str
    sha256_prefix: str | None
    checksum_source: str
    size_mb: float
    source: str
    title: str = ""
    note: str = ""
    licence: str = (
        "torchvision code BSD-3-Clause; weights trained on ImageNet-1k (ImageNet terms: non-commercial research)"
    )


_TV_URL = "https://download.pytorch.org/models/"
_TV_SRC = (
    "torchvision 0.29 torchvision/models/{}.py, {}.url and meta['_file_size'] (MB); the same file names are "
    "listed in the torchvision model documentation"
)
_TV_SUM = (
    "the hex digits after the last '-' in the published file name: torchvision loads {} with "
    "torch.hub.load_state_dict_from_url(check_hash=True), which requires the file's sha256 to start with them "
    "(torch.hub HASH_REGEX); no full sha256 is published"
)

WEIGHTS: dict[str, WeightsFile] = {}


def _tv(name: str, file: str, module: str, enum: str, size_mb: float, title: str) -> None:
    prefix = file.rsplit("-", 1)[-1].split(".")[0]
    WEIGHTS[name] = WeightsFile(
        name=name,
        file=file,
        url=_TV_URL + file,
        sha256_prefix=prefix,
        checksum_source=_TV_SUM.format(enum),
        size_mb=size_mb,
        source=_TV_SRC.format(module, enum),
        title=title,
    )


_tv("alexnet", "alexnet-owt-7be5be79.pth", "alexnet", "AlexNet_Weights.IMAGENET1K_V1", 233.1, "AlexNet (ImageNet-1k)")
_tv("vgg16", "vgg16-397923af.pth", "vgg", "VGG16_Weights.IMAGENET1K_V1", 527.8, "VGG16 (ImageNet-1k)")
_tv("googlenet", "googlenet-1378be20.pth", "googlenet", "GoogLeNet_Weights.IMAGENET1K_V1", 49.7, "GoogLeNet")
_tv("resnet18", "resnet18-f37072fd.pth", "resnet", "ResNet18_Weights.IMAGENET1K_V1", 44.7, "ResNet-18")
_tv("resnet50", "resnet50-0676ba61.pth", "resnet", "ResNet50_Weights.IMAGENET1K_V1", 97.8, "ResNet-50 (V1)")
_tv("resnet101", "resnet101-63fe2227.pth", "resnet", "ResNet101_Weights.IMAGENET1K_V1", 170.5, "ResNet-101 (V1)")
_tv("resnet152", "resnet152-394f9c45.pth", "resnet", "ResNet152_Weights.IMAGENET1K_V1", 230.4, "ResNet-152 (V1)")
_tv(
    "inception_v3",
    "inception_v3_google-0cc3c7bd.pth",
    "inception",
    "Inception_V3_Weights.IMAGENET1K_V1",
    103.9,
    "Inception-v3 (ImageNet-1k; the scorer of Inception score and FID)",
)
_tv(
    "mobilenet_v2",
    "mobilenet_v2-b0353104.pth",
    "mobilenetv2",
    "MobileNet_V2_Weights.IMAGENET1K_V1",
    13.6,
    "MobileNet V2 (V1 weights)",
)

WEIGHTS["cirtorch_resnet101_gem"] = WeightsFile(
    name="cirtorch_resnet101_gem",
    file="retrievalSfM120k-resnet101-gem-b80fb85.pth",
    url="http://cmp.felk.cvut.cz/cnnimageretrieval/data/networks/retrieval-SfM-120k/"
    "retrievalSfM120k-resnet101-gem-b80fb85.pth",
    sha256_prefix=None,
    checksum_source="none published: cirtorch loads it with torch.utils.model_zoo.load_url without check_hash, so "
    "the name's 7-digit suffix was never checked against a sha256 — unpinned (accepted on its length)",
    size_mb=170,
    source="cnnimageretrieval-pytorch cirtorch/examples/test.py PRETRAINED['retrievalSfM120k-resnet101-gem']",
    title="The GeM paper's released ResNet-101 GeM (SfM-120k, with its learned whitening in meta)",
    licence="cnnimageretrieval-pytorch: MIT (code); network weights released by the authors for research",
    note="also the dataset entry cirtorch_networks (fetch it with --root there)",
)


def get_weights(name: str) -> WeightsFile:
    if name not in WEIGHTS:
        raise ValueError(f"name: unknown weights {name!r}; known: {', '.join(sorted(WEIGHTS))}")
    return WEIGHTS[name]


# ---- caption sets given out by request form (notebook 04's full profile, Tables 4.2, 4.3, 4.8): the archive the
# user obtained by hand is taken with --from-dir; neither publisher states a size or checksum for it
_add(
    DatasetSpec(
        name="flickr8k",
        title="Flickr8K (8,091 images, 5 captions each; Karpathy split 6k / 1k / 1k)",
        files=(
            _KARPATHY,
            RemoteFile(
                "Flickr8k_Dataset.zip",
                manual=True,
                extract=True,
                size_mb=1100,
                note="the images (folder Flicker8k_Dataset/, sic), after the request form",
                source="Flickr8K page of the University of Illinois (request form; by hand); no size or checksum "
                "published",
            ),
            RemoteFile(
                "Flickr8k_text.zip",
                manual=True,
                extract=True,
                optional=True,
                size_mb=2.3,
                note="the official captions (Flickr8k.token.txt) and split lists (Flickr_8k.{train,dev,test}"
                "Images.txt): used when Karpathy's dataset_flickr8k.json is absent",
                source="Flickr8K page of the University of Illinois (with the images); no size or checksum published",
            ),
        ),
        licence="captions: CC BY (Hodosh et al.); images: Flickr terms of use, research only",
        citation="M. Hodosh, P. Young, J. Hockenmaier. Framing image description as a ranking task: data, models "
        "and evaluation metrics. JAIR 2013. A. Karpathy, L. Fei-Fei. Deep visual-semantic alignments for "
        "generating image descriptions. CVPR 2015 (split).",
        homepage="https://hockenmaier.cs.illinois.edu/8k-pictures.html",
        layout=(
            "dataset_flickr8k.json (Karpathy format; built from Flickr8k.token.txt and the official split lists "
            "when Karpathy's file is absent), images/<file>.jpg, index.csv (path,label,split), captions.csv "
            "(image,caption)"
        ),
        manual_steps=(
            "The images are given out after a request form on the Flickr8K page: put Flickr8k_Dataset.zip (or the "
            "unpacked Flicker8k_Dataset/ folder) in a folder — with Flickr8k_text.zip if you have it — and run "
            "`python -m data_scripts fetch flickr8k --root DIR --from-dir THAT_FOLDER`. Karpathy's "
            "caption_datasets.zip (the split, pinned) is downloaded or taken from the same folder. No size or "
            "checksum is published for the images: the archive is accepted when it reads to its last byte."
        ),
        used_by="notebook 04 (full profile, -p dataset=flickr8k)",
    )
)

_add(
    DatasetSpec(
        name="cuhk_pedes",
        title="CUHK-PEDES (40,206 pedestrian images of 13,003 identities, 2 captions each; split 11,003 / 1,000 / "
        "1,000 identities)",
        files=(
            RemoteFile(
                "CUHK-PEDES.zip",
                manual=True,
                extract=True,
                size_mb=800,
                note="imgs/ and reid_raw.json (split, id, file_path, captions per image), after the request form",
                source="the dataset's page (request form to the authors; by hand); no size or checksum published",
            ),
        ),
        licence="research only, by agreement with the authors (request form)",
        citation="S. Li, T. Xiao, H. Li, B. Zhou, D. Yue, X. Wang. Person search with natural language "
        "description. CVPR 2017.",
        homepage="https://github.com/ShuangLI59/Person-Search-with-Natural-Language-Description",
        layout=(
            "dataset_cuhk_pedes.json (Karpathy format; every image also carries its person 'id'), "
            "images/<file_path of reid_raw.json>, index.csv (path,label,split; label = the person id), "
            "classes.txt, captions.csv (image,caption)"
        ),
        manual_steps=(
            "The authors give CUHK-PEDES out after a request form (see the homepage): put the archive you receive, "
            "renamed CUHK-PEDES.zip (or the unpacked CUHK-PEDES/ folder with imgs/ and reid_raw.json), in a folder "
            "and run `python -m data_scripts fetch cuhk_pedes --root DIR --from-dir THAT_FOLDER`. No size or "
            "checksum is published: the archive is accepted when it reads to its last byte."
        ),
        used_by="notebook 04 (full profile, -p dataset=cuhk_pedes)",
    )
)
