"""Guard sample-efficiency report: a learning-curve PNG and a Markdown summary.

Input is `guard_curves` rows (`experiment.curve_rows`), so the report can be re-rendered from the
stored table. Every statement in the summary is computed from those rows: whether pairs help at
small budgets is read off the paired comparison's interval (two-level bootstrap over seeds and
held-out pairs), never written in advance.

Charts follow `benchmark.report`: matplotlib's object API on the Agg canvas (no pyplot, no
display), fixed size and dpi, no timestamp in the PNG, so the same rows give the same bytes.
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from spairs_assets.guards.experiment import ARMS, MULTI

SMALL_BUDGETS = (8, 16)
PNG_DPI = 80
PANEL_SIZE = (3.3, 2.7)  # inches per small multiple
COLUMNS = 5
ARM_STYLE = {
    "baseline": {"color": "#4c72b0", "linestyle": "-", "marker": "o", "label": "baseline (unpaired seeds)"},
    "pairs": {"color": "#dd8452", "linestyle": "-", "marker": "s", "label": "pairs (counterfactual twins)"},
    "null_edit": {"color": "#55a868", "linestyle": "--", "marker": "^", "label": "null-edit control"},
}


def _fmt(v: float | None, digits: int = 2) -> str:
    return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.{digits}f}"


def _ci(row: Mapping[str, Any] | None, metric: str = "pair_accuracy") -> str:
    if not row:
        return "n/a"
    mean, low, high = row.get(f"{metric}_mean"), row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if mean is None:
        return "n/a"
    if low is None or high is None or (low == high == mean and row.get("n_seeds", 0) < 2):
        return _fmt(mean)
    return f"{mean:.2f} [{low:.2f}, {high:.2f}]"


def _diff(row: Mapping[str, Any] | None) -> str:
    if not row or row.get("vs_baseline_mean") is None:
        return "n/a"
    m, lo, hi = row["vs_baseline_mean"], row.get("vs_baseline_low"), row.get("vs_baseline_high")
    if lo is None or hi is None:
        return f"{m:+.2f}"
    return f"{m:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def _categories(curves: Sequence[Mapping[str, Any]]) -> list[str]:
    cats = sorted({str(r["category"]) for r in curves if r["category"] != MULTI})
    return cats + ([MULTI] if any(r["category"] == MULTI for r in curves) else [])


def _index(curves: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str, int], Mapping[str, Any]]:
    return {(str(r["category"]), str(r["arm"]), int(r["n_train"])): r for r in curves}


# ---- chart -----------------------------------------------------------------------------------


def plot_learning_curves(curves: Sequence[Mapping[str, Any]], path: str | Path | None = None,
                         metric: str = "pair_accuracy") -> bytes:
    """Small multiples (one panel per category, then the multi-category guard): `metric` vs
    training images per arm, with the 95% t-interval over seeds as a band. Returns PNG bytes
    (and writes them to `path` when given)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FixedLocator, NullLocator

    cats = _categories(curves) or ["(no data)"]
    ncols = min(COLUMNS, len(cats))
    nrows = math.ceil(len(cats) / ncols)
    fig = Figure(figsize=(PANEL_SIZE[0] * ncols, PANEL_SIZE[1] * nrows + 0.6), dpi=PNG_DPI,
                 layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, ncols, squeeze=False, sharey=True)
    for k, ax in enumerate(axes.ravel()):
        if k >= len(cats):
            ax.set_visible(False)
            continue
        cat = cats[k]
        rows = [r for r in curves if r["category"] == cat]
        xs_all: set[int] = set()
        for arm in ARMS:
            pts = sorted((r for r in rows if r["arm"] == arm), key=lambda r: r["n_train"])
            pts = [r for r in pts if r.get(f"{metric}_mean") is not None]
            if not pts:
                continue
            x = [int(r["n_train"]) for r in pts]
            xs_all |= set(x)
            mean = [r[f"{metric}_mean"] for r in pts]
            low = [r[f"{metric}_low"] if r.get(f"{metric}_low") is not None else r[f"{metric}_mean"] for r in pts]
            high = [r[f"{metric}_high"] if r.get(f"{metric}_high") is not None else r[f"{metric}_mean"] for r in pts]
            style = ARM_STYLE[arm]
            ax.plot(x, mean, color=style["color"], linestyle=style["linestyle"],
                    marker=style["marker"], markersize=4, linewidth=1.5, label=style["label"])
            ax.fill_between(x, low, high, color=style["color"], alpha=0.18, linewidth=0)
        n_eval = max((int(r.get("n_eval_pairs") or 0) for r in rows), default=0)
        title = "multi-category guard" if cat == MULTI else cat
        ax.set_title(f"{title} ({n_eval} held-out pairs)", fontsize=9)
        if xs_all:
            ax.set_xscale("log", base=2)
            ticks = sorted(xs_all)
            ax.xaxis.set_major_locator(FixedLocator(ticks))
            ax.xaxis.set_minor_locator(NullLocator())
            ax.set_xticklabels([str(t) for t in ticks], fontsize=7)
        ax.set_ylim(-0.03, 1.03)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        if k % ncols == 0:
            ax.set_ylabel(metric.replace("_", " "), fontsize=8)
        if k // ncols == nrows - 1:
            ax.set_xlabel("training images", fontsize=8)
    handles, labels = [], []
    for ax in axes.ravel():
        h, lab = ax.get_legend_handles_labels()
        if h:
            handles, labels = h, lab
            break
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=len(handles), fontsize=8,
                   frameon=False)
    fig.suptitle(f"Guard sample efficiency: held-out {metric.replace('_', ' ')} "
                 "(mean over seeds, band: 95% t-interval)", fontsize=10)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=PNG_DPI, metadata={"Software": None})
    png = buf.getvalue()
    if path is not None:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(png)
    return png


# ---- findings --------------------------------------------------------------------------------


def small_budget_findings(curves: Sequence[Mapping[str, Any]], small: Sequence[int] = SMALL_BUDGETS
                          ) -> dict[str, dict[int, dict[str, Any]]]:
    """category -> n_train -> {baseline, pairs, null_edit rows, diff, low, high, verdict} at the
    small budgets (only budgets that were actually trained)."""
    idx = _index(curves)
    out: dict[str, dict[int, dict[str, Any]]] = {}
    for cat in _categories(curves):
        for n in small:
            pairs = idx.get((cat, "pairs", n))
            base = idx.get((cat, "baseline", n))
            if not pairs or not base:
                continue
            out.setdefault(cat, {})[n] = {
                "baseline": base, "pairs": pairs, "null_edit": idx.get((cat, "null_edit", n)),
                "diff": pairs.get("vs_baseline_mean"), "low": pairs.get("vs_baseline_low"),
                "high": pairs.get("vs_baseline_high"),
                "verdict": pairs.get("vs_baseline_verdict") or "undetermined",
            }
    return out


def _category_sentence(cat: str, by_budget: Mapping[int, Mapping[str, Any]]) -> str:
    parts = []
    for n, f in sorted(by_budget.items()):
        parts.append(f"at {n} images pairs {_ci(f['pairs'])} vs baseline {_ci(f['baseline'])}, "
                     f"difference {_diff(f['pairs'])}: **{f['verdict']}**")
    name = "The multi-category guard" if cat == MULTI else f"`{cat}`"
    return f"- {name}: " + "; ".join(parts) + "."


def headline(findings: Mapping[str, Mapping[int, Mapping[str, Any]]]) -> str:
    """One honest sentence from the per-category verdicts at the small budgets."""
    cats = [c for c in findings if c != MULTI]
    verdicts = {c: {f["verdict"] for f in findings[c].values()} for c in findings}
    better = [c for c in cats if verdicts[c] == {"better"}]
    some = [c for c in cats if "better" in verdicts[c] and verdicts[c] != {"better"}]
    worse = [c for c in cats if "worse" in verdicts[c]]
    budgets = sorted({n for f in findings.values() for n in f})
    budget_txt = " and ".join(str(n) for n in budgets) or "small"
    if not findings:
        return "No small-budget comparison could be made (the pools are too small or empty)."
    text = (f"At {budget_txt} training images, pairs improve held-out pair accuracy with the "
            f"95% interval above zero at every small budget in {len(better)} of {len(cats)} "
            f"categories")
    if some:
        text += f", and at some but not all of them in {len(some)} more"
    text += f"; pairs are worse in {len(worse)}" if worse else "; they are worse in none"
    rest = len(cats) - len(better) - len(some) - len(worse)
    if rest:
        text += f"; {rest} {'shows' if rest == 1 else 'show'} no clear difference"
    text += "."
    partial = [c for c in cats if len(findings[c]) < len(budgets)]
    if partial:
        text += (f" ({', '.join(partial)}: the pool is too small for every small budget, so only "
                 f"{'/'.join(str(n) for n in sorted({n for c in partial for n in findings[c]}))} "
                 "images were compared.)")
    if MULTI in findings:
        m = verdicts[MULTI]
        overall = ("improve" if m == {"better"} else "are worse" if m == {"worse"} else
                   "improve at some small budgets" if "better" in m else
                   "show no clear difference")
        text += f" For the multi-category guard pooled over all categories, pairs {overall}."
    return text


def null_edit_reading(curves: Sequence[Mapping[str, Any]]) -> str:
    rows = [r for r in curves if r["arm"] == "null_edit" and r.get("pair_accuracy_mean") is not None]
    if not rows:
        return "The null-edit control was not run."
    top = max(r["pair_accuracy_mean"] for r in rows)
    images = [r["image_accuracy_mean"] for r in rows if r.get("image_accuracy_mean") is not None]
    img = f"{min(images):.2f}-{max(images):.2f}" if images else "n/a"
    pairs_best = max((r["pair_accuracy_mean"] for r in curves if r["arm"] == "pairs"
                      and r.get("pair_accuracy_mean") is not None), default=None)
    if top <= 0.05:
        return (f"Null-edit control: probes trained on (source, null edit) pairs reach at most "
                f"{top:.2f} held-out pair accuracy (image accuracy {img}): they rate both members "
                "of every pair alike. There is no global editor artifact for them to learn (with "
                "the classical CPU editor the null edit is bit-identical to its source, so this "
                "floor is expected by construction). The control does not rule out local "
                "artifacts inside the edited region; the unpaired-image accuracy (unedited safe "
                "seeds vs unsafe sources) is the check for those.")
    comparison = (f", against {pairs_best:.2f} for the pairs arm" if pairs_best is not None else "")
    return (f"Null-edit control: probes trained on (source, null edit) pairs reach up to "
            f"{top:.2f} held-out pair accuracy{comparison}. Above the floor of 0 they must be "
            "separating edited from original images by the editor's own artifacts; the "
            "pairs-arm gain is suspect to the extent the two are close.")


def summary_facts(run: Any, settings: Any) -> dict[str, Any]:
    """The header facts of the summary for a training run (`experiment.train_and_save`)."""
    return {"encoder": run.encoder["id"], "seeds per arm and budget": settings.n_seeds,
            "budgets requested": ", ".join(map(str, settings.budgets)),
            "target pair accuracy": settings.target, "data version (multi)": run.pool.data_version}


def summary_markdown(curves: Sequence[Mapping[str, Any]], meta: Mapping[str, Any] | None = None,
                     small: Sequence[int] = SMALL_BUDGETS) -> str:
    meta = dict(meta or {})
    findings = small_budget_findings(curves, small)
    lines = ["# Guard sample efficiency", ""]
    for k, v in meta.items():
        lines.append(f"- **{k}**: {v}")
    if meta:
        lines.append("")
    lines += [
        ("Linear probes (L2 logistic regression) on frozen embeddings, trained at matched image "
         "budgets: **baseline** = unsafe seeds + unrelated safe seeds, **pairs** = unsafe images "
         "+ their minimally edited safe twins, **null_edit** = sources + their null edits "
         "(control). Evaluated on held-out (validation + test) pairs. Curve intervals: 95% "
         "Student-t over seeds; pairs - baseline: mean paired difference over seeds with a 95% "
         "two-level bootstrap interval (seeds and held-out pairs resampled)."),
        "",
        "## Do pairs help at small budgets?",
        "",
        headline(findings),
        "",
    ]
    for cat in [c for c in _categories(curves) if c in findings]:
        lines.append(_category_sentence(cat, findings[cat]))
    lines += ["", "## Learning curves (held-out pair accuracy, mean [95% t-interval])", ""]
    idx = _index(curves)
    for cat in _categories(curves):
        budgets = sorted({int(r["n_train"]) for r in curves if r["category"] == cat})
        n_eval = max((int(r.get("n_eval_pairs") or 0) for r in curves if r["category"] == cat),
                     default=0)
        title = "multi-category guard" if cat == MULTI else cat
        lines += [f"### {title} ({n_eval} held-out pairs)", ""]
        lines.append("| arm | " + " | ".join(f"{n} img" for n in budgets) + " | reaches target at |")
        lines.append("|---|" + "---|" * (len(budgets) + 1))
        for arm in ARMS:
            cells = [_ci(idx.get((cat, arm, n))) for n in budgets]
            if all(c == "n/a" for c in cells):
                continue
            any_row = next((idx[(cat, arm, n)] for n in budgets if (cat, arm, n) in idx), {})
            reach = any_row.get("budget_to_reach_target")
            target = any_row.get("target")
            reach_txt = (f"{reach} img" if reach is not None else "not reached") + \
                (f" (≥ {target:.2f})" if target is not None else "")
            lines.append(f"| {arm} | " + " | ".join(cells) + f" | {reach_txt} |")
        lines.append("| pairs - baseline | " + " | ".join(
            _diff(idx.get((cat, "pairs", n))) for n in budgets) + " | |")
        lines.append("")
    lines += ["## Unpaired held-out images (accuracy, mean [95% t-interval])", "",
              "Unsafe sources of held-out pairs and held-out safe seeds: no edited image at all.",
              ""]
    for cat in _categories(curves):
        budgets = sorted({int(r["n_train"]) for r in curves if r["category"] == cat})
        cells = []
        for arm in ("baseline", "pairs"):
            vals = ", ".join(f"{n}: {_ci(idx.get((cat, arm, n)), 'unpaired_accuracy')}" for n in budgets)
            cells.append(f"{arm} {vals}")
        lines.append(f"- {cat}: " + "; ".join(cells))
    lines += ["", "## Null-edit control", "", null_edit_reading(curves), ""]
    return "\n".join(lines)
