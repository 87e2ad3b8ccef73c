"""Figures the notebooks share: image and spectrogram grids (matplotlib), audio players, and plotly
figures that work in the static book without a network connection.

Call :func:`setup_plotly` once at the top of a notebook. Under papermill, plotly 7 would otherwise
emit only its JSON mime type, which jupyter-book 1 drops; the renderer set here writes HTML, inlines
plotly.js once per notebook (with the first figure) and loads nothing from a CDN (plotly's own
``"notebook"`` renderer adds a MathJax ``<script>`` from a CDN to every figure, which fails offline).
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmga_helpers.core.io import write_with

BOOK_RENDERER = "notebook_offline"
_PLOTLY_CONFIG = {"displaylogo": False, "responsive": True}


def setup_plotly(renderer: str = BOOK_RENDERER, template: str = "plotly_white") -> None:
    """Make plotly figures render as self-contained HTML (``"notebook_offline"``) or as ``"notebook"``
    / ``"notebook_connected"`` (plotly.js from a CDN when the page is viewed)."""
    import plotly.io as pio
    from plotly.io._base_renderers import NotebookRenderer

    class OfflineNotebookRenderer(NotebookRenderer):
        """plotly's notebook renderer (plotly.js inlined once) without the CDN MathJax script."""

        def to_mimebundle(self, fig_dict: Any) -> dict[str, str]:
            html = pio.to_html(
                fig_dict, config=self.config, include_plotlyjs=False, include_mathjax=False,
                full_html=False, default_width="100%", default_height=450, validate=False,
            )
            return {"text/html": html}

    if BOOK_RENDERER not in pio.renderers:
        pio.renderers[BOOK_RENDERER] = OfflineNotebookRenderer(config=_PLOTLY_CONFIG)
    pio.renderers.default = renderer
    pio.templates.default = template


# -- matplotlib ---------------------------------------------------------------------------------------------
def image_grid(images: np.ndarray, labels: Sequence[Any] | None = None, *, ncols: int = 10,
               cmap: str = "gray_r", size: float = 0.9, title: str | None = None) -> Any:
    """``[N, H, W]`` (or ``[N, H, W, 1]``) images in rows of ``ncols``; ``labels`` become captions."""
    import matplotlib.pyplot as plt

    images = np.asarray(images)
    if images.ndim == 4 and images.shape[-1] == 1:
        images = images[..., 0]
    if images.ndim != 3 or len(images) == 0:
        raise ValueError(f"image_grid expects [N, H, W] images, got shape {images.shape}")
    n = len(images)
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    height = nrows * size * (1.25 if labels is not None else 1.0)
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * size, height), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.set_axis_off()
        if i < n:
            ax.imshow(images[i], cmap=cmap, interpolation="nearest")
            if labels is not None:
                ax.set_title(str(labels[i]), fontsize=8, pad=2)
    if title:
        fig.suptitle(title)
    fig.tight_layout(pad=0.3)
    return fig


def spectrogram_grid(logmels: np.ndarray, titles: Sequence[str] | None = None, *, ncols: int = 5,
                     sample_rate: int = 8000, hop_length: int = 64, vmin: float = -80.0,
                     vmax: float | None = None) -> Any:
    """Log-mel spectrograms ``[N, n_mels, frames]`` in dB, time in seconds on the x axis."""
    import matplotlib.pyplot as plt

    logmels = np.asarray(logmels)
    if logmels.ndim == 4 and logmels.shape[-1] == 1:
        logmels = logmels[..., 0]
    if logmels.ndim != 3 or len(logmels) == 0:
        raise ValueError(f"spectrogram_grid expects [N, n_mels, frames], got shape {logmels.shape}")
    n, n_mels, frames = logmels.shape
    ncols = max(1, min(ncols, n))
    nrows = -(-n // ncols)
    vmax = float(logmels.max()) if vmax is None else vmax
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.9 + 0.8, nrows * 1.7), squeeze=False,
                             sharex=True, sharey=True)
    extent = (0.0, frames * hop_length / sample_rate, 0.0, float(n_mels))
    image = None
    for i, ax in enumerate(axes.flat):
        if i >= n:
            ax.set_axis_off()
            continue
        image = ax.imshow(logmels[i], origin="lower", aspect="auto", extent=extent, cmap="magma",
                          vmin=vmin, vmax=vmax)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=11)
    for ax in axes[-1]:
        ax.set_xlabel("time (s)")
    for ax in axes[:, 0]:
        ax.set_ylabel("mel band")
    fig.tight_layout()
    if image is not None:
        fig.colorbar(image, ax=axes.ravel().tolist(), label="dB", shrink=0.8)
    return fig


# -- audio --------------------------------------------------------------------------------------------------
def audio_player(wave: np.ndarray, sr: int = 8000, normalize: bool = True) -> Any:
    """An ``IPython.display.Audio`` player (an ``<audio>`` element with an embedded WAV in the book)."""
    from IPython.display import Audio

    wave = np.asarray(wave, dtype=np.float32).ravel()
    if wave.size == 0:
        raise ValueError("audio_player: the waveform is empty")
    return Audio(wave, rate=sr, normalize=normalize)


def audio_table(waves: Sequence[np.ndarray], captions: Sequence[str], sr: int = 8000) -> Any:
    """Several labelled players in one HTML table (one output, compact in the book)."""
    from IPython.display import HTML

    if len(waves) != len(captions):
        raise ValueError(f"audio_table: {len(waves)} waves but {len(captions)} captions")
    rows = "".join(
        f"<tr><td style='padding-right:1em'>{escape(caption)}</td>"
        f"<td>{audio_player(w, sr)._repr_html_()}</td></tr>"
        for w, caption in zip(waves, captions, strict=True)
    )
    return HTML(f"<table class='mmga-audio'>{rows}</table>")


# -- plotly -------------------------------------------------------------------------------------------------
def plotly_scatter(embedding_2d: np.ndarray, color: Sequence[Any] | np.ndarray,
                   hover: Sequence[Any] | np.ndarray | None = None, *, title: str = "",
                   color_title: str = "", marker_size: int = 5) -> Any:
    """An interactive 2-D scatter of an embedding (e.g. a UMAP of latent codes), coloured by
    ``color`` (categorical values get a discrete legend), ``hover`` text per point."""
    import plotly.express as px

    xy = np.asarray(embedding_2d, dtype=float)
    if xy.ndim != 2 or xy.shape[1] != 2:
        raise ValueError(f"plotly_scatter expects an [N, 2] embedding, got shape {xy.shape}")
    color_values = np.asarray(color)
    if len(color_values) != len(xy):
        raise ValueError(f"plotly_scatter: {len(xy)} points but {len(color_values)} colours")
    column = color_title or "group"
    if color_values.dtype.kind in "iubUSO":  # categories: a discrete legend in natural order
        color_values = color_values.astype(str)
    frame = pd.DataFrame({"x": xy[:, 0], "y": xy[:, 1], column: color_values})
    orders = {}
    if color_values.dtype.kind == "U":
        orders[column] = sorted(np.unique(color_values), key=_natural_key)
    hover_name = None
    if hover is not None:
        frame["point"] = np.asarray(hover).astype(str)
        hover_name = "point"
    fig = px.scatter(frame, x="x", y="y", color=column, hover_name=hover_name, title=title,
                     category_orders=orders)
    fig.update_traces(marker={"size": marker_size, "opacity": 0.8})
    fig.update_layout(xaxis_title="", yaxis_title="", legend_title_text=column,
                      margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


def _natural_key(value: Any) -> tuple[int, Any]:
    text = str(value)
    return (0, int(text)) if text.lstrip("-").isdigit() else (1, text)


__all__ = [
    "BOOK_RENDERER", "audio_player", "audio_table", "image_grid", "plotly_scatter", "setup_plotly",
    "spectrogram_grid",
]


# -- clusters and the brain (plotly) --------------------------------------------------------------------
def strength_heatmap(matrix: np.ndarray, row_labels: Sequence[str], col_labels: Sequence[str], *,
                     title: str = "", row_title: str = "", col_title: str = "",
                     zmax: float | None = 1.0, colorbar_title: str = "strength",
                     text_format: str = ".2f") -> Any:
    """An annotated heatmap (rows top to bottom), e.g. the brain's association strengths
    ``P(partner | cluster)``; hovering shows both cluster labels and the value."""
    import plotly.graph_objects as go

    z = np.asarray(matrix, dtype=float)
    zmax = float(np.nanmax(z, initial=1e-12)) if zmax is None else zmax  # None: up to the largest value
    if z.ndim != 2 or z.shape != (len(row_labels), len(col_labels)):
        raise ValueError(f"strength_heatmap: matrix {z.shape}, labels {len(row_labels)} x {len(col_labels)}")
    rows, cols = [str(r) for r in row_labels], [str(c) for c in col_labels]
    show_text = z.size <= 400
    fig = go.Figure(go.Heatmap(
        z=z, x=cols, y=rows, zmin=0.0, zmax=zmax, colorscale="Blues",
        colorbar={"title": {"text": colorbar_title}},
        text=np.vectorize(lambda v: format(v, text_format))(z) if show_text else None,
        texttemplate="%{text}" if show_text else None, textfont={"size": 9},
        hovertemplate=f"{row_title or 'row'} %{{y}}<br>{col_title or 'column'} %{{x}}<br>"
                      f"{colorbar_title} %{{z:{text_format}}}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed", type="category", title=row_title)
    fig.update_xaxes(type="category", title=col_title, tickangle=-45)
    fig.update_layout(title=title, height=max(320, 22 * len(rows) + 160),
                      margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


def cluster_digit_heatmap(counts: np.ndarray, title: str = "", cluster_title: str = "cluster") -> Any:
    """What each cluster holds: the share of every digit among its items (rows sum to 1)."""
    counts = np.asarray(counts, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1.0)
    rows = [f"{c} (n={int(n)})" for c, n in enumerate(counts.sum(axis=1))]
    return strength_heatmap(share, rows, [str(d) for d in range(counts.shape[1])], title=title,
                            row_title=cluster_title, col_title="digit", colorbar_title="share")


def zone_scatter(zones: Any, threshold: float, title: str = "") -> Any:
    """Every cluster of both modalities: strength of its strongest association against the entropy of
    its associations; convergence zones (one clear partner) lie right of the threshold line."""
    import plotly.express as px

    fig = px.scatter(zones, x="strength", y="entropy", color="zone", symbol="modality",
                     hover_data=["modality", "cluster", "best_partner", "count"], title=title,
                     color_discrete_map={"convergence": "#1f77b4", "divergence": "#d62728"},
                     category_orders={"zone": ["convergence", "divergence"], "modality": ["image", "audio"]})
    fig.add_vline(x=threshold, line_dash="dot", annotation_text=f"threshold {threshold:g}")
    fig.update_traces(marker={"size": 10, "opacity": 0.8})
    fig.update_layout(xaxis_title="strongest association P(partner | cluster)",
                      yaxis_title="entropy of the associations (bits)", height=420,
                      margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


def threshold_curve(table: Any, current: float | None = None, title: str = "") -> Any:
    """Share of convergence zones (per modality, and among linked pairs) against the threshold."""
    import plotly.express as px

    fig = px.line(table, x="threshold", y="convergence_share", color="modality", markers=True, title=title)
    if current is not None:
        fig.add_vline(x=current, line_dash="dot", annotation_text=f"configured {current:g}")
    fig.update_layout(xaxis_title="convergence threshold", yaxis_title="share of convergence zones",
                      yaxis_range=[-0.02, 1.02], height=380,
                      margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


def bar_compare(table: Any, x: str, y: str, color: str, *, title: str = "", y_title: str = "",
                error_y: str | None = None) -> Any:
    """Grouped bars (e.g. hold-out accuracy per speaker, MMGA next to the baseline)."""
    import plotly.express as px

    fig = px.bar(table, x=x, y=y, color=color, barmode="group", error_y=error_y, title=title)
    fig.update_layout(yaxis_title=y_title or y, xaxis_title="", height=380,
                      margin={"l": 10, "r": 10, "t": 50 if title else 10, "b": 10})
    return fig


__all__ += ["bar_compare", "cluster_digit_heatmap", "strength_heatmap", "threshold_curve", "zone_scatter"]


def save_figure(fig: Any, plot_dir: Path | str, name: str) -> Path:
    """Write a matplotlib figure to ``<plot_dir>/<name>.png`` atomically (``paths.plot_dir``)."""
    return write_with(Path(plot_dir) / f"{name}.png", lambda p: fig.savefig(p, format="png", dpi=120))
