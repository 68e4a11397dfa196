"""The HTML page of a :class:`~onnxq.compare.report.ComparisonReport`: one self-contained file.

No script, no stylesheet or font from the network: the plots are inline SVG. The page holds

* a table of the layers ranked by the error they introduce (worst first), one row per layer;
* bars of introduced vs accumulated SQNR per layer, in graph order;
* each layer's histogram of fp32 values over its quantization range (values outside it are
  clipped by the quantization: their counts are printed under the plot).
"""

from __future__ import annotations

import math
from html import escape

from onnxq.compare.report import ComparisonReport, ErrorMetrics, LayerError

_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; } td, th { padding: 2px 8px; border-bottom: 1px solid #ddd; }
td.n { text-align: right; font-variant-numeric: tabular-nums; } .bad { color: #b00; font-weight: bold; }
.hists { display: flex; flex-wrap: wrap; gap: 12px; } .hist { font-size: 12px; }
"""
_INTRODUCED, _ACCUMULATED = "#d62728", "#1f77b4"
_BAD_DB = 20.0  # below this an SQNR is printed in red


def _db(value: float) -> str:
    return "exact" if math.isinf(value) and value > 0 else f"{value:.2f}"


def _cells(m: ErrorMetrics) -> str:
    cls = "n bad" if m.sqnr_db < _BAD_DB else "n"
    return (
        f'<td class="{cls}">{_db(m.sqnr_db)}</td><td class="n">{m.cosine:.5f}</td>'
        f'<td class="n">{m.max_abs_error:.4g}</td>'
    )


def _range(r: tuple[float, float]) -> str:
    return f"[{r[0]:.4g}, {r[1]:.4g}]"


def _row(rank: int, layer: LayerError) -> str:
    weights = "; ".join(f"{_range(w.values)} in {_range(w.range)}" for w in layer.weights) or "&mdash;"
    return (
        f'<tr><td class="n">{rank}</td><td>{escape(layer.tensor)}</td><td>{escape(layer.op_type)}</td>'
        f"{_cells(layer.introduced)}{_cells(layer.accumulated)}"
        f"<td>{_range(layer.activation_range)}</td><td>{weights}</td></tr>"
    )


def _sqnr_bars(layers: tuple[LayerError, ...]) -> str:
    finite = [
        v
        for layer in layers
        for v in (layer.introduced.sqnr_db, layer.accumulated.sqnr_db)
        if math.isfinite(v)
    ]
    top = max([*finite, 1.0]) * 1.1
    row, label_w, plot_w = 22, 260, 480
    height = row * len(layers) + 30
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{label_w + plot_w + 80}" height="{height}">']
    for i, layer in enumerate(layers):
        y = 20 + i * row
        parts.append(
            f'<text x="{label_w - 6}" y="{y + 13}" text-anchor="end" font-size="11">'
            f"{escape(layer.tensor[-40:])}</text>"
        )
        for j, (value, color) in enumerate(
            ((layer.introduced.sqnr_db, _INTRODUCED), (layer.accumulated.sqnr_db, _ACCUMULATED))
        ):
            v = top if not math.isfinite(value) else max(value, 0.0)
            w = plot_w * v / top
            parts.append(f'<rect x="{label_w}" y="{y + j * 9}" width="{w:.1f}" height="8" fill="{color}"/>')
            parts.append(
                f'<text x="{label_w + w + 4:.1f}" y="{y + j * 9 + 8}" font-size="9">{_db(value)}</text>'
            )
    parts.append(
        f'<text x="{label_w}" y="12" font-size="11" fill="{_INTRODUCED}">introduced SQNR (dB)</text>'
    )
    parts.append(
        f'<text x="{label_w + 160}" y="12" font-size="11" fill="{_ACCUMULATED}">accumulated SQNR (dB)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


def _histogram(layer: LayerError) -> str:
    h = layer.histogram
    width, height = 240, 80
    peak = max([*h.counts, 1])
    bar = width / max(len(h.counts), 1)
    rects = "".join(
        f'<rect x="{i * bar:.1f}" y="{height - height * c / peak:.1f}" width="{bar - 1:.1f}" '
        f'height="{height * c / peak:.1f}" fill="#555"/>'
        for i, c in enumerate(h.counts)
    )
    return (
        f'<div class="hist"><div>{escape(layer.tensor)}</div>'
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}">{rects}</svg>'
        f"<div>{h.lo:.4g} &hellip; {h.hi:.4g}; clipped: {h.below} below, {h.above} above</div></div>"
    )


def render_html(report: ComparisonReport, title: str = "onnxq compare") -> str:
    """The report as one self-contained HTML page (module docstring)."""
    head = (
        "<th>rank</th><th>tensor</th><th>op</th><th>introduced SQNR dB</th><th>cosine</th><th>max err</th>"
        "<th>accumulated SQNR dB</th><th>cosine</th><th>max err</th><th>activation range</th>"
        "<th>weights (values in range)</th>"
    )
    rows = "\n".join(_row(i + 1, layer) for i, layer in enumerate(report.ranked()))
    unmatched = (
        f"<p>{len(report.unmatched)} quantized tensor(s) without an fp32 counterpart: "
        f"{escape(', '.join(report.unmatched))}</p>"
        if report.unmatched
        else ""
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{escape(title)}</title><style>{_STYLE}</style></head>
<body>
<h1>{escape(title)}</h1>
<p>{len(report.layers)} quantized tensors, {report.num_samples} samples.
<em>Introduced</em>: the layer computed from exact fp32 inputs;
<em>accumulated</em>: with the whole model quantized. SQNR below {_BAD_DB:g} dB in red.</p>
<h2>Where the error comes from</h2>
<table id="ranking"><thead><tr>{head}</tr></thead><tbody>
{rows}
</tbody></table>
{unmatched}
<h2>SQNR per layer, in graph order</h2>
{_sqnr_bars(report.layers)}
<h2>fp32 values over each quantization range</h2>
<div class="hists">{"".join(_histogram(layer) for layer in report.layers)}</div>
</body></html>
"""


__all__ = ["render_html"]
