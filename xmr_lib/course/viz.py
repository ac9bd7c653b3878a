"""One plot style for every notebook: ranked-result grids, metric curves, embedding scatter plots.

Colours of the ranked grid follow the revisited protocol: green = relevant, red = irrelevant, grey = junk.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np

RELEVANT, IRRELEVANT, JUNK = "relevant", "irrelevant", "junk"
FRAME_COLOURS = {RELEVANT: "#1e8e3e", IRRELEVANT: "#d93025", JUNK: "#9aa0a6", None: "#202124"}
PALETTE = "colorblind"


def use_style() -> None:
    """Apply the xmr plot style (seaborn whitegrid, colour-blind palette, readable sizes)."""
    import matplotlib as mpl
    import seaborn as sns

    sns.set_theme(style="whitegrid", palette=PALETTE, context="notebook")
    mpl.rcParams.update(
        {
            "figure.dpi": 90,
            "savefig.dpi": 120,
            "axes.titlesize": 11,
            "figure.autolayout": False,
            "image.cmap": "viridis",
        }
    )


def _to_image(img: Any) -> np.ndarray:
    """(H,W) / (H,W,3) / (3,H,W) / (1,H,W), uint8 or float in [0,1] (numpy or torch) → (H,W[,3]) for imshow."""
    if hasattr(img, "detach"):
        img = img.detach().cpu().numpy()
    a = np.asarray(img)
    if a.ndim == 3 and a.shape[0] in (1, 3) and a.shape[-1] not in (1, 3):
        a = np.transpose(a, (1, 2, 0))
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    if a.ndim not in (2, 3):
        raise ValueError(f"img: expected an image of shape (H,W), (H,W,3) or (3,H,W); got shape {a.shape}")
    if a.dtype != np.uint8:
        a = np.clip(a.astype(np.float32), 0.0, 1.0)
    return a


def ranked_grid(
    query: Any,
    results: Sequence[Any],
    status: Sequence[str | None] | None = None,
    titles: Sequence[str] | None = None,
    query_title: str = "query",
    ax_size: float = 1.6,
    suptitle: str | None = None,
    cmap: str = "gray",
):
    """Show one query and its top-k results in a row, each result framed by its relevance.

    Args:
        query: the query image.
        results: k result images, best first.
        status: per result ``"relevant"`` / ``"irrelevant"`` / ``"junk"`` / ``None`` (green / red / grey / black).
        titles: per-result captions (e.g. the score).
    Returns:
        the matplotlib Figure.
    """
    import matplotlib.pyplot as plt

    k = len(results)
    if status is not None and len(status) != k:
        raise ValueError(f"status: expected {k} entries (one per result), got {len(status)}")
    if titles is not None and len(titles) != k:
        raise ValueError(f"titles: expected {k} entries (one per result), got {len(titles)}")
    fig, axes = plt.subplots(1, k + 1, figsize=(ax_size * (k + 1), ax_size * 1.25), squeeze=False)
    axes = axes[0]
    items = [(query, query_title, None)] + [
        (r, titles[i] if titles else f"#{i + 1}", status[i] if status else None) for i, r in enumerate(results)
    ]
    for ax, (img, title, st) in zip(axes, items):
        a = _to_image(img)
        ax.imshow(a, cmap=cmap if a.ndim == 2 else None)
        ax.set_xticks([]), ax.set_yticks([])
        ax.set_title(title, fontsize=9)
        colour = FRAME_COLOURS.get(st, FRAME_COLOURS[None])
        for sp in ax.spines.values():
            sp.set_edgecolor(colour)
            sp.set_linewidth(4 if st is not None else 1.5)
            sp.set_visible(True)
    axes[0].set_title(query_title, fontsize=9, fontweight="bold")
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def ranked_grids(
    queries: Sequence[Any],
    results: Sequence[Sequence[Any]],
    status: Sequence[Sequence[str | None]] | None = None,
    row_titles: Sequence[str] | None = None,
    ax_size: float = 1.4,
    cmap: str = "gray",
):
    """Several queries, one row each (query then its top-k), frames coloured by relevance. Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(queries)
    if len(results) != n:
        raise ValueError(f"results: expected {n} rows (one per query), got {len(results)}")
    k = max(len(r) for r in results) if n else 0
    fig, axes = plt.subplots(n, k + 1, figsize=(ax_size * (k + 1), ax_size * n * 1.05), squeeze=False)
    for i in range(n):
        row = [(queries[i], None)] + [(r, status[i][j] if status else None) for j, r in enumerate(results[i])]
        for j in range(k + 1):
            ax = axes[i, j]
            ax.set_xticks([]), ax.set_yticks([])
            if j >= len(row):
                ax.axis("off")
                continue
            img, st = row[j]
            a = _to_image(img)
            ax.imshow(a, cmap=cmap if a.ndim == 2 else None)
            colour = FRAME_COLOURS.get(st, FRAME_COLOURS[None])
            for sp in ax.spines.values():
                sp.set_edgecolor(colour)
                sp.set_linewidth(4 if st is not None else 1.5)
        if row_titles:
            axes[i, 0].set_ylabel(row_titles[i], fontsize=9)
    axes[0, 0].set_title("query", fontsize=9, fontweight="bold")
    for j in range(1, k + 1):
        axes[0, j].set_title(f"#{j}", fontsize=9)
    fig.tight_layout()
    return fig


def metric_curves(
    curves: Mapping[str, Sequence[float]] | Mapping[str, tuple[Sequence[float], Sequence[float]]],
    xlabel: str = "step",
    ylabel: str = "value",
    title: str | None = None,
    ax=None,
    logy: bool = False,
    marker: str | None = None,
):
    """Plot named curves. Each value is either ``y`` (x = 0..n-1) or ``(x, y)``. Returns the Axes."""
    import matplotlib.pyplot as plt

    if ax is None:
        _, ax = plt.subplots(figsize=(5.5, 3.5))
    for name, c in curves.items():
        if isinstance(c, tuple) and len(c) == 2:
            x, y = np.asarray(c[0], dtype=float), np.asarray(c[1], dtype=float)
        else:
            y = np.asarray(c, dtype=float)
            x = np.arange(len(y))
        if x.shape != y.shape:
            raise ValueError(f"curves[{name!r}]: x has shape {x.shape} but y has shape {y.shape}")
        ax.plot(x, y, label=name, marker=marker)
    if all(
        float(v).is_integer()
        for c in curves.values()
        for v in (c[0] if isinstance(c, tuple) and len(c) == 2 else range(len(c)))
    ):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs, steps, K: no 2.5-th epoch
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    if logy:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    if len(curves) > 1:
        ax.legend(fontsize=9)
    return ax


def embedding_scatter(
    x: Any,
    labels: Sequence[Any] | None = None,
    method: str = "tsne",
    seed: int = 0,
    ax=None,
    title: str | None = None,
    style: Sequence[Any] | None = None,
    max_points: int = 3000,
    s: float = 12.0,
):
    """2-D map of embeddings ``x`` (N,D) coloured by ``labels`` (and marker by ``style``, e.g. modality).

    ``method``: ``"tsne"`` (sklearn, perplexity adapted to N), ``"pca"``, or ``"none"`` when ``x`` is already (N,2).
    At most ``max_points`` points (a seeded subsample). Returns the Axes.
    """
    import matplotlib.pyplot as plt
    import seaborn as sns

    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    x = np.asarray(x, dtype=np.float32)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x: expected a non-empty 2-D array (N, D); got shape {x.shape}")
    n = len(x)
    for name, arr in (("labels", labels), ("style", style)):
        if arr is not None and len(arr) != n:
            raise ValueError(f"{name}: expected {n} entries (one per row of x), got {len(arr)}")
    idx = np.arange(n)
    if n > max_points:
        idx = np.sort(np.random.default_rng(seed).choice(n, max_points, replace=False))
    xs = x[idx]
    if method == "tsne":
        from sklearn.manifold import TSNE

        perp = float(max(2, min(30, (len(xs) - 1) // 3)))
        y = TSNE(n_components=2, perplexity=perp, init="pca", random_state=seed).fit_transform(xs)
    elif method == "pca":
        from sklearn.decomposition import PCA

        y = PCA(n_components=2, random_state=seed).fit_transform(xs)
    elif method == "none":
        if xs.shape[1] != 2:
            raise ValueError(f"method='none' needs x of shape (N, 2); got {x.shape}")
        y = xs
    else:
        raise ValueError(f"method: expected 'tsne', 'pca' or 'none'; got {method!r}")
    if ax is None:
        _, ax = plt.subplots(figsize=(5, 4.2))
    hue = None if labels is None else np.asarray(labels, dtype=object)[idx]
    st = None if style is None else np.asarray(style, dtype=object)[idx]
    sns.scatterplot(
        x=y[:, 0],
        y=y[:, 1],
        hue=hue,
        style=st,
        s=s,
        ax=ax,
        linewidth=0,
        palette=PALETTE if hue is None or len(set(hue)) <= 10 else "husl",
        legend="auto",
    )
    ax.set_xticks([]), ax.set_yticks([])
    if title:
        ax.set_title(title)
    if ax.get_legend() is not None:
        ax.legend(fontsize=9, markerscale=0.8, loc="best", ncol=1 if hue is None or len(set(hue)) <= 12 else 2)
    return ax


def image_grid(
    images: Sequence[Any],
    nrow: int | None = None,
    titles: Sequence[str] | None = None,
    ax_size: float = 1.2,
    suptitle: str | None = None,
    cmap: str = "gray",
):
    """A plain grid of images (e.g. generated samples). Returns the Figure."""
    import matplotlib.pyplot as plt

    n = len(images)
    if n == 0:
        raise ValueError("images: nothing to show (empty sequence)")
    ncol = nrow or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / ncol))
    fig, axes = plt.subplots(rows, ncol, figsize=(ax_size * ncol, ax_size * rows), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            a = _to_image(images[i])
            ax.imshow(a, cmap=cmap if a.ndim == 2 else None)
            if titles:
                ax.set_title(titles[i], fontsize=9)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    fig.tight_layout()
    return fig


def fig_to_html(fig) -> str:
    """A static ``<img>`` of a figure (base64 PNG) — the fallback that survives HTML export of widget cells."""
    import base64
    import io

    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")
    return f"<img src='data:image/png;base64,{base64.b64encode(buf.getvalue()).decode()}'/>"


def is_headless() -> bool:
    """True when no person watches the kernel: a run by ``xmr run`` / the tests (``$XMR_HEADLESS``), whose saved
    outputs are read as a static page, where a live widget would show as an empty placeholder."""
    import os

    return os.environ.get("XMR_HEADLESS", "") not in ("", "0")


def _widget(name: str, spec: Any):
    """A control: a widget as is; ``(lo, hi[, step])`` numbers → a slider at ``lo``; a list → a dropdown."""
    import ipywidgets as W

    if isinstance(spec, W.Widget):
        return spec
    if (
        isinstance(spec, tuple)
        and len(spec) in (2, 3)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in spec)
    ):
        lo, hi, *rest = spec
        if all(isinstance(v, int) for v in spec):
            return W.IntSlider(value=lo, min=lo, max=hi, step=rest[0] if rest else 1, description=name)
        return W.FloatSlider(value=lo, min=lo, max=hi, step=rest[0] if rest else (hi - lo) / 20, description=name)
    if isinstance(spec, list) and spec:
        first = spec[0][1] if isinstance(spec[0], tuple) else spec[0]
        return W.Dropdown(options=spec, value=first, description=name)
    raise ValueError(
        f"controls[{name!r}]: expected a widget, (lo, hi[, step]) numbers or a non-empty list of options; got {spec!r}"
    )


def explorer(draw, controls: Mapping[str, Any], *, values: Mapping[str, Any] | None = None):
    """An interactive figure, drawn once when shown.

    Args:
        draw: ``draw(**values) -> matplotlib Figure`` for one setting of the controls.
        controls: ``{name: control}``, a control being an ipywidgets widget, ``(lo, hi[, step])`` (an int or a float
            slider starting at ``lo``) or a list of options (a dropdown starting at the first; ``(label, value)``
            pairs allowed).
        values: the initial values (default: each control's own).

    In a live notebook the controls sit above one output that ``draw`` fills at once and again whenever a control
    moves. In a headless run (``xmr run``, the tests — see :func:`is_headless`) or without ipywidgets, only the
    static figure of the initial values is shown — one view, never both. Returns the widget box, or the figure.
    """
    import matplotlib.pyplot as plt
    from IPython.display import display

    try:
        import ipywidgets as W
    except ImportError:
        W = None
    widgets = {k: _widget(k, v) for k, v in controls.items()} if W is not None else {}
    initial = (
        {k: w.value for k, w in widgets.items()}
        if widgets
        else {
            k: (
                (v[0][1] if isinstance(v[0], tuple) else v[0])
                if isinstance(v, (list, tuple))
                else getattr(v, "value", v)
            )
            for k, v in controls.items()
        }
    )
    for k, v in (values or {}).items():
        if k not in controls:
            raise ValueError(f"values: {k!r} is not one of the controls {sorted(controls)}")
        initial[k] = v
        if k in widgets:
            widgets[k].value = v
    if W is None or is_headless():
        fig = draw(**initial)
        return fig
    out = W.Output()

    def redraw(*_):
        with out:
            out.clear_output(wait=True)
            fig = draw(**{k: w.value for k, w in widgets.items()})
            if fig is not None:
                display(fig)
                plt.close(fig)

    for w in widgets.values():
        w.observe(redraw, names="value")
    box = W.VBox([W.HBox(list(widgets.values())), out])
    display(box)
    redraw()
    return box


def show_source(*objects: Any) -> None:
    """Show the source of library functions / classes / methods in the notebook, as highlighted code — the lecture
    reads the code it runs. Prints plain text outside IPython."""
    import inspect

    text = "\n\n".join(f"```python\n{inspect.getsource(o)}```" for o in objects)
    try:
        from IPython.display import Markdown, display
    except ImportError:  # outside Jupyter
        print(text)
        return
    display(Markdown(text))


def fallback_banner(p: Any) -> None:
    """Say, in a notebook, whether this run read the real dataset or fell back to the embedded one (the rule lives
    in the chapter's ``FALLBACK`` and was applied by :func:`xmr_lib.course.runs.params`)."""
    if p.get("fell_back"):
        print(
            "!! This run FELL BACK to the embedded data (see the message above the parameters): the numbers below "
            "are not the paper's, and claims decided on real data read 'not run'."
        )
