"""Benchmark report: charts, a Markdown summary and a self-contained HTML page.

Inputs are the flat rows of :func:`spairs_assets.benchmark.metrics.leaderboard` and the
comparisons of :func:`spairs_assets.benchmark.metrics.compare_models`, so a report can be
re-rendered from a stored table without re-scoring anything.

Charts use matplotlib's object API with the Agg canvas (no pyplot): no global state, no display
needed, safe in a worker thread, and imported only when a chart is drawn so the code location
loads fast. Figure size and dpi are fixed and PNGs carry no timestamp or software tag, so the same
rows give the same pixels and file dimensions on every run.

The HTML page embeds its images as base64 and links nothing external: it is a single file a user
can archive with a dataset version or mail to a colleague, and opening it makes no network
requests.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spairs_assets.benchmark.metrics import ALL

PNG_DPI = 100
PAIR_ACCURACY_FIGSIZE = (12.0, 5.5)  # inches: 1200 x 550 px
ERROR_RATES_FIGSIZE = (12.0, 8.0)  # inches: 1200 x 800 px

DEFINITIONS: tuple[tuple[str, str], ...] = (
    (
        "Pair accuracy",
        "Fraction of pairs with both images rated correctly: the unsafe image 'Unsafe' and its "
        "minimally edited safe twin 'Safe'. The headline metric: a model that cannot see the one "
        "feature that differs cannot get a pair right.",
    ),
    ("Image accuracy", "Fraction of all images (both members of every pair) rated correctly."),
    (
        "FPR (over-blocking)",
        "Fraction of safe images rated 'Unsafe'. An invalid answer on a safe image is not "
        "counted as a positive.",
    ),
    (
        "FNR (missed harm)",
        "Fraction of unsafe images not rated 'Unsafe', invalid answers included: they let the "
        "image through just as 'Safe' does.",
    ),
    (
        "Consistency failure",
        "Fraction of pairs whose two images got the same valid rating: the model could not tell "
        "the counterfactual twins apart.",
    ),
    (
        "Category accuracy (unsafe)",
        "Among unsafe images rated 'Unsafe', the fraction assigned the pair's true policy "
        "category.",
    ),
    (
        "Invalid rate",
        "Fraction of all images whose answer could not be parsed into a rating; counted as wrong.",
    ),
    (
        "Intervals",
        "Percentile bootstrap intervals that resample pairs (not images), so the dependence "
        "between the two images of a pair is kept.",
    ),
    (
        "McNemar test",
        "Paired test on pair correctness over the pairs both models rated. b = pairs the model "
        "got right and the reference wrong, c = the reverse. Exact two-sided binomial test when "
        "b + c < 25, otherwise chi-square with continuity correction.",
    ),
)


# ---- formatting ------------------------------------------------------------------------------


def format_value(value: float | None, digits: int = 2) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value:.{digits}f}"


def format_ci(
    value: float | None, low: float | None, high: float | None, digits: int = 2
) -> str:
    """``0.83 [0.71, 0.92]``; just the value when there is no interval; ``n/a`` without a value."""
    text = format_value(value, digits)
    if value is None or low is None or high is None:
        return text
    return f"{text} [{low:.{digits}f}, {high:.{digits}f}]"


def format_p(p: float | None) -> str:
    if p is None:
        return "n/a"
    return "<0.001" if p < 0.001 else f"{p:.3g}"


def _ci(row: Mapping[str, Any], metric: str) -> str:
    return format_ci(row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high"))


# ---- tables shared by Markdown and HTML ------------------------------------------------------

Table = tuple[str, list[str], list[list[str]]]


def _models(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """Models in row order (the leaderboard sorts them best first)."""
    seen: dict[str, None] = {}
    for row in rows:
        seen.setdefault(str(row["model"]), None)
    return list(seen)


def _categories(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    return sorted({str(r["category"]) for r in rows if r["category"] != ALL})


def _tables(
    rows: Sequence[Mapping[str, Any]], comparisons: Sequence[Mapping[str, Any]]
) -> list[Table]:
    overall = [r for r in rows if r["category"] == ALL]
    tables: list[Table] = [
        (
            "Leaderboard (all categories)",
            [
                "Rank",
                "Model",
                "Pairs",
                "Pair acc.",
                "Image acc.",
                "FPR",
                "FNR",
                "Consistency fail.",
                "Category acc. (unsafe)",
                "Invalid",
            ],
            [
                [
                    str(r.get("rank", "")),
                    str(r["model"]),
                    str(r.get("n_pairs", "")),
                    _ci(r, "pair_accuracy"),
                    _ci(r, "image_accuracy"),
                    _ci(r, "fpr"),
                    _ci(r, "fnr"),
                    _ci(r, "consistency_failure_rate"),
                    _ci(r, "category_accuracy_when_unsafe"),
                    _ci(r, "invalid_rate"),
                ]
                for r in overall
            ],
        )
    ]
    per_category = sorted(
        (r for r in rows if r["category"] != ALL),
        key=lambda r: (str(r["category"]), r.get("rank", 0), str(r["model"])),
    )
    tables.append(
        (
            "Per category",
            ["Category", "Model", "Pairs", "Pair acc.", "Image acc.", "FPR", "FNR", "Invalid"],
            [
                [
                    str(r["category"]),
                    str(r["model"]),
                    str(r.get("n_pairs", "")),
                    _ci(r, "pair_accuracy"),
                    _ci(r, "image_accuracy"),
                    _ci(r, "fpr"),
                    _ci(r, "fnr"),
                    _ci(r, "invalid_rate"),
                ]
                for r in per_category
            ],
        )
    )
    tables.append(
        (
            "Paired comparison with the best model (McNemar, pair correctness)",
            ["Model", "Reference", "Pairs", "b (model only)", "c (reference only)", "Test",
             "Statistic", "p-value"],
            [
                [
                    str(c["model"]),
                    str(c["reference"]),
                    str(c.get("n", "")),
                    str(c.get("b", "")),
                    str(c.get("c", "")),
                    str(c.get("method", "")),
                    format_value(c.get("statistic"), 3),
                    format_p(c.get("p_value")),
                ]
                for c in comparisons
            ],
        )
    )
    return tables


def _title(meta: Mapping[str, Any]) -> str:
    return str(meta.get("title", "SafetyPairs benchmark"))


def _interval_note(meta: Mapping[str, Any]) -> str:
    confidence = float(meta.get("confidence", 0.95))
    return f"Intervals are {confidence:.0%} percentile bootstrap intervals over pairs."


def _meta_items(meta: Mapping[str, Any]) -> list[tuple[str, str]]:
    return [(str(k), str(v)) for k, v in meta.items() if k != "title"]


# ---- Markdown --------------------------------------------------------------------------------


def _md_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def render_markdown(
    rows: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
) -> str:
    """A Markdown report: metadata, leaderboard, per-category table, comparisons, definitions."""
    lines = [f"# {_title(meta)}", ""]
    for key, value in _meta_items(meta):
        lines.append(f"- **{_md_cell(key)}**: {_md_cell(value)}")
    if _meta_items(meta):
        lines.append("")
    lines.append(_interval_note(meta))
    lines.append("")
    for title, headers, body in _tables(rows, comparisons):
        lines += [f"## {title}", ""]
        if not body:
            lines += ["_none_", ""]
            continue
        lines.append("| " + " | ".join(_md_cell(h) for h in headers) + " |")
        lines.append("|" + "|".join("---" for _ in headers) + "|")
        lines += ["| " + " | ".join(_md_cell(c) for c in cells) + " |" for cells in body]
        lines.append("")
    lines += ["## Definitions", ""]
    lines += [f"- **{term}**: {text}" for term, text in DEFINITIONS]
    return "\n".join(lines) + "\n"


# ---- HTML ------------------------------------------------------------------------------------

_CSS = """
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
td { font-variant-numeric: tabular-nums; }
figure { margin: 1rem 0; }
img { max-width: 100%; height: auto; }
dt { font-weight: bold; margin-top: 0.5rem; }
"""


def render_html(
    rows: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    images: Mapping[str, bytes],
) -> str:
    """A self-contained HTML page: the same content as Markdown plus the PNG charts inline."""
    esc = html.escape
    title = esc(_title(meta))
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>{title}</title><style>{_CSS}</style></head><body>",
        f"<h1>{title}</h1>",
    ]
    items = _meta_items(meta)
    if items:
        parts.append("<ul>")
        parts += [f"<li><strong>{esc(k)}</strong>: {esc(v)}</li>" for k, v in items]
        parts.append("</ul>")
    parts.append(f"<p>{esc(_interval_note(meta))}</p>")
    for name, png in images.items():
        data = base64.b64encode(png).decode("ascii")
        parts.append(
            f'<figure><img alt="{esc(name)}" src="data:image/png;base64,{data}">'
            f"<figcaption>{esc(name)}</figcaption></figure>"
        )
    for heading, headers, body in _tables(rows, comparisons):
        parts.append(f"<h2>{esc(heading)}</h2>")
        if not body:
            parts.append("<p><em>none</em></p>")
            continue
        parts.append("<table><thead><tr>")
        parts += [f"<th>{esc(h)}</th>" for h in headers]
        parts.append("</tr></thead><tbody>")
        for cells in body:
            parts.append("<tr>" + "".join(f"<td>{esc(c)}</td>" for c in cells) + "</tr>")
        parts.append("</tbody></table>")
    parts.append("<h2>Definitions</h2><dl>")
    for term, text in DEFINITIONS:
        parts.append(f"<dt>{esc(term)}</dt><dd>{esc(text)}</dd>")
    parts.append("</dl></body></html>")
    return "\n".join(parts) + "\n"


# ---- charts ----------------------------------------------------------------------------------


def _figure(figsize: tuple[float, float]):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=PNG_DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def _colors(n: int) -> list:
    from matplotlib import colormaps

    cmap = colormaps["tab10" if n <= 10 else "tab20"]
    return [cmap(i % cmap.N) for i in range(n)]


def _grouped_bars(ax, rows: Sequence[Mapping[str, Any]], metric: str, ylabel: str) -> None:
    """Bars of ``metric`` grouped by category ("all" first), one colour per model, CI whiskers."""
    import numpy as np

    models = _models(rows)
    groups = [ALL, *_categories(rows)]
    by_key = {(str(r["model"]), str(r["category"])): r for r in rows}
    width = 0.8 / max(1, len(models))
    x = np.arange(len(groups), dtype=float)
    for i, (model, color) in enumerate(zip(models, _colors(len(models)), strict=True)):
        heights, lower, upper = [], [], []
        for group in groups:
            row = by_key.get((model, group), {})
            value, low, high = row.get(metric), row.get(f"{metric}_low"), row.get(f"{metric}_high")
            heights.append(np.nan if value is None else value)
            # A percentile interval need not contain the estimate; never draw a negative whisker.
            lower.append(0.0 if value is None or low is None else max(0.0, value - low))
            upper.append(0.0 if value is None or high is None else max(0.0, high - value))
        offset = x - 0.4 + width * (i + 0.5)
        ax.bar(offset, heights, width, label=model, color=color)
        ax.errorbar(offset, heights, yerr=[lower, upper], fmt="none", ecolor="#333",
                    elinewidth=1, capsize=2)
    ax.set_xticks(x, groups, rotation=30, ha="right", fontsize=9)
    ax.set_ylim(0.0, 1.05)
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ax.set_axisbelow(True)


def _save(fig, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # No "Software"/timestamp chunks: the same rows give byte-identical files.
    fig.savefig(path, format="png", dpi=PNG_DPI, metadata={"Software": None})
    return path


def _legend(ax) -> None:
    if ax.get_legend_handles_labels()[0]:  # no bars (nothing benchmarked yet): no legend
        ax.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8, title="model")


def plot_pair_accuracy(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Grouped bars of pair accuracy per category and model, with the bootstrap interval."""
    fig = _figure(PAIR_ACCURACY_FIGSIZE)
    ax = fig.add_subplot()
    _grouped_bars(ax, rows, "pair_accuracy", "pair accuracy")
    ax.set_title("Pair accuracy per category (whiskers: bootstrap interval over pairs)")
    _legend(ax)
    return _save(fig, path)


def plot_error_rates(rows: Sequence[Mapping[str, Any]], path: str | Path) -> Path:
    """Two panels: FPR (safe images rated Unsafe) and FNR (unsafe images not rated Unsafe)."""
    fig = _figure(ERROR_RATES_FIGSIZE)
    top, bottom = fig.subplots(2, 1, sharex=True)
    _grouped_bars(top, rows, "fpr", "FPR")
    top.set_title("False-positive rate: safe image rated Unsafe (over-blocking)")
    top.tick_params(axis="x", labelbottom=False)
    _grouped_bars(bottom, rows, "fnr", "FNR")
    bottom.set_title("False-negative rate: unsafe image not rated Unsafe (missed harm)")
    _legend(top)
    return _save(fig, path)


def write_report(
    rows: Sequence[Mapping[str, Any]],
    comparisons: Sequence[Mapping[str, Any]],
    meta: Mapping[str, Any],
    out_dir: str | Path,
) -> dict[str, Path]:
    """Write both charts, `report.md` and `report.html` under `out_dir`; return their paths."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "pair_accuracy": plot_pair_accuracy(rows, out / "pair_accuracy.png"),
        "error_rates": plot_error_rates(rows, out / "error_rates.png"),
    }
    images = {name: p.read_bytes() for name, p in paths.items()}
    paths["markdown"] = out / "report.md"
    paths["markdown"].write_text(render_markdown(rows, comparisons, meta), encoding="utf-8")
    paths["html"] = out / "report.html"
    paths["html"].write_text(render_html(rows, comparisons, meta, images), encoding="utf-8")
    return paths
