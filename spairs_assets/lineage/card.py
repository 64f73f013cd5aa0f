"""The lineage card of one pair: a self-contained HTML page (`spairs lineage PAIR_ID --html FILE`).

Both images side by side at full resolution, a difference heat map, the scores, every judge's
verdict on both images, the curation decision and reason, the other candidates, the benchmark
and guard-model uses, and the provenance chain with the Dagster run id and code version of every
step. Images are embedded as PNG data URIs. Unless `show_unsafe`, the unsafe member is blurred
with PIL before encoding, so its unblurred pixels are never in the file, and the heat map (which
can outline the unsafe feature) is drawn in coarse blocks; with `show_unsafe` the embedded pixels
equal the stored image.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from PIL import Image

from spairs_assets.reports.gallery import (
    BASE_CSS,
    _esc,
    _num,
    _safe_load,
    blur,
    difference_heatmap,
    png_data_uri,
)

CARD_CSS = BASE_CSS + """
.images{display:flex;gap:16px;flex-wrap:wrap;align-items:flex-start}
.images figure{max-width:420px}
.images img{display:block;max-width:420px;height:auto;border-radius:4px;border:1px solid #ccc}
pre{background:#f4f4f4;padding:8px;border-radius:4px;font-size:12px;white-space:pre-wrap;
word-break:break-all;max-width:1100px}
details summary{cursor:pointer;font-size:13px;color:#444}
.chosen{background:#eef7ee}
"""


def _kv_table(rows: list[tuple[str, str]]) -> str:
    return "<table>" + "".join(f"<tr><th>{_esc(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _pre(value: Any) -> str:
    return f"<pre>{_esc(json.dumps(value, indent=2, sort_keys=True, default=str))}</pre>"


def _image_figure(image: Image.Image | None, caption: str, blurred: bool, image_id: str | None) -> str:
    if image is None:
        return f'<figure><div class="note">{_esc(caption)}: image {_esc(image_id)} not in the store</div></figure>'
    label = caption + (" (blurred: previews are off)" if blurred else "")
    cls = ' class="blurred"' if blurred else ""
    return (f'<figure data-image-id="{_esc(image_id)}" data-blurred="{str(blurred).lower()}">'
            f'<img{cls} alt="{_esc(label)}" src="{png_data_uri(image)}">'
            f'<figcaption>{_esc(label)}<br><span class="mono">{_esc((image_id or "")[:16])}</span>'
            "</figcaption></figure>")


def _verdicts_table(verification: dict[str, Any]) -> str:
    src = verification.get("source_verdicts") or {}
    edt = verification.get("edited_verdicts") or {}
    if not isinstance(src, dict) or not isinstance(edt, dict):
        return _pre({"source": src, "edited": edt})
    head = ("<tr><th>judge</th><th>source: rating</th><th>category</th><th>rationale</th>"
            "<th>edited: rating</th><th>category</th><th>rationale</th></tr>")
    body = []
    for judge in sorted(set(src) | set(edt)):
        cells = []
        for v in (src.get(judge) or {}, edt.get(judge) or {}):
            v = v if isinstance(v, dict) else {"rating": str(v)}
            rating = v.get("rating") or f"({v.get('parse_status', 'n/a')})"
            cells += [_esc(rating), _esc(v.get("category")), _esc(v.get("rationale"))]
        body.append(f"<tr><td>{_esc(judge)}</td>" + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")
    decisions = _kv_table([("ensemble on source", f"<code>{_esc(json.dumps(verification.get('source_decision'), sort_keys=True))}</code>"),
                           ("ensemble on edit", f"<code>{_esc(json.dumps(verification.get('edited_decision'), sort_keys=True))}</code>")])
    return f"<table>{head}{''.join(body)}</table>{decisions}"


def render_html_card(lineage: dict[str, Any], load_image: Callable[[str], Image.Image], *,
                     show_unsafe: bool) -> str:
    """A self-contained HTML card of `pair_lineage(...)`'s result. `load_image(image_id)` returns
    a PIL image (e.g. `ImageStore(storage).load`)."""
    L = lineage
    c = L.get("curation") or {}
    v = L.get("verification") or {}
    im = L["images"]
    title = f"SafetyPair {L['pair_id'][:16]} ({L['category']})"

    unsafe = _safe_load(load_image, im.get("unsafe"))
    safe = _safe_load(load_image, im.get("safe"))
    source_is_unsafe = im.get("unsafe") == im.get("source")
    unsafe_caption = "unsafe (" + ("source" if source_is_unsafe else "edit") + ")"
    safe_caption = "safe (" + ("edit" if source_is_unsafe else "source") + ")"
    figures = [
        _image_figure(unsafe if (show_unsafe or unsafe is None) else blur(unsafe), unsafe_caption,
                      not show_unsafe and unsafe is not None, im.get("unsafe")),
        _image_figure(safe, safe_caption, False, im.get("safe")),
    ]
    if unsafe is not None and safe is not None:
        boxes = [(v.get("changed_box"), (0, 229, 255)), (v.get("region_box"), (57, 255, 20))]
        heat, peak, frac = difference_heatmap(unsafe, safe, boxes=boxes, coarse=not show_unsafe)
        caption = (f"difference |unsafe − safe|, max over channels{'' if show_unsafe else ', coarse blocks'}"
                   f" (max {peak}, {frac:.2%} of pixels changed; cyan: changed box, green: edited region)")
        figures.append(_image_figure(heat, caption, False, None).replace(
            'data-image-id=""', 'data-heatmap="true"'))

    decision = c.get("decision", "")
    dataset = L.get("dataset") or {}
    export = dataset.get("export")
    summary = _kv_table([
        ("decision", f'<span class="{_esc(decision)}">{_esc(decision)}</span>: {_esc(c.get("reason"))}'),
        ("direction", _esc(c.get("direction"))),
        ("instruction", _esc(c.get("instruction"))),
        ("split / dataset version", f"{_esc(c.get('split'))} / <code>{_esc(c.get('dataset_version'))}</code>"),
        ("export", "–" if not export else f"<code>{_esc(export['dataset_version'])}</code> "
                   f"{'at ' + _esc(export['path']) if export['exists'] else '(not written yet)'}"),
        ("candidates", f"{_esc(c.get('candidates_passing'))} of {_esc(c.get('candidates'))} passed"),
        ("pair id", f"<code>{_esc(L['pair_id'])}</code>"),
    ])

    score_rows = [(name, _num(v.get(key), digits)) for name, key, digits in (
        ("SSIM", "ssim", 4), ("PSNR (dB)", "psnr", 2), ("L1", "l1", 5), ("L2", "l2", 5),
        ("changed fraction", "changed_fraction", 4), ("changed area (px)", "changed_area", 0),
        ("change outside region", "outside_changed_fraction", 4),
        ("max |Δ| outside region", "outside_max_abs_diff", 0), ("encoder cosine", "encoder_cosine", 4),
        ("pHash / dHash / aHash distance", "phash_distance", 0))]
    score_rows[-1] = (score_rows[-1][0], (f"{_num(v.get('phash_distance'))} / {_num(v.get('dhash_distance'))}"
                                         f" / {_num(v.get('ahash_distance'))}"))
    score_rows += [("encoder", _esc(v.get("encoder_id"))),
                   ("flip verified", _esc(v.get("flip_verified"))),
                   ("adherence", f"{_esc(v.get('adherence'))} ({_esc(v.get('adherence_detail'))})"),
                   ("judge parse failures", _esc(v.get("judge_parse_failures"))),
                   ("passed / reasons", f"{_esc(v.get('passed'))} / {_esc(v.get('reasons'))}")]

    cand_rows = "".join(
        f'<tr class="{"chosen" if k["chosen"] else ""}"><td>{_esc(k["candidate"])}</td>'
        f'<td class="mono">{_esc(k["edit_id"][:16])}</td><td>{_esc(k["seed"])}</td>'
        f"<td>{_num(k['ssim'])}</td><td>{_num(k['changed_fraction'])}</td><td>{_esc(k['passed'])}</td>"
        f"<td>{_esc(k['reasons'])}</td><td>{'chosen' if k['chosen'] else ''}</td></tr>"
        for k in L.get("candidates", []))
    candidates = ("<table><tr><th>#</th><th>edit</th><th>seed</th><th>SSIM</th><th>changed</th>"
                  f"<th>passed</th><th>reasons</th><th></th></tr>{cand_rows}</table>") if cand_rows else \
        '<p class="note">no candidate rows found</p>'

    s = L.get("source") or {}
    i = L.get("instruction") or {}
    e = L.get("edit") or {}
    n = L.get("null_edit") or {}
    ne, nv = n.get("edit") or {}, n.get("verification") or {}
    chain = _kv_table([
        ("source file", (f"{_esc(s.get('source_kind'))}:{_esc(s.get('source_name'))} "
                        f"<code>{_esc(s.get('source_path'))}</code>")),
        ("source sha256 / licence", f"<code>{_esc(s.get('source_sha256'))}</code> / {_esc(s.get('licence'))}"),
        ("source image", (f"<code>{_esc(s.get('image_id'))}</code> {_esc(s.get('width'))}×{_esc(s.get('height'))}, "
                         f"rated {_esc(s.get('rating'))}")),
        ("instruction by", f"{_esc(i.get('generator_id'))} <code>{_esc(i.get('generator_version'))}</code>"),
        ("feature", (f"{_esc(i.get('edit_kind'))} {_esc(i.get('feature_kind'))}: "
                    f"{_esc(i.get('feature'))} → {_esc(i.get('replacement'))}")),
        ("editor / revision", f"{_esc(e.get('editor_id'))} / <code>{_esc(e.get('model_revision'))}</code>"),
        ("seed / candidate", f"{_esc(e.get('seed'))} / {_esc(e.get('candidate'))}"),
        ("params", f"<code>{_esc(json.dumps(e.get('params'), sort_keys=True))}</code>"),
        ("packages", f"<code>{_esc(json.dumps(e.get('package_versions'), sort_keys=True))}</code>"),
        ("null edit", "–" if not ne else f"<code>{_esc(ne.get('edit_id', '')[:16])}</code> → image "
                      f"<code>{_esc((ne.get('edited_image_id') or '')[:16])}</code>, SSIM {_num(nv.get('ssim'))}, "
                      f"changed {_num(nv.get('changed_fraction'))}"),
    ])
    steps = "".join(
        f"<tr><td>{_esc(st['step'])}</td><td>{_esc(st['table'])}/{_esc(st.get('partition'))}</td>"
        f"<td class=\"mono\">{_esc(st.get('key'))}</td><td class=\"mono\">{_esc(st.get('run_id'))}</td>"
        f"<td class=\"mono\">{_esc(st.get('code_version'))}</td></tr>" for st in L.get("steps", []))
    runs = L.get("run_records") or {}
    run_table = "".join(f"<tr><td class=\"mono\">{_esc(r)}</td><td>{_esc(x.get('status'))}</td>"
                        f"<td>{_esc(x.get('job'))}</td><td>{_esc(x.get('start_time'))}</td></tr>"
                        for r, x in runs.items())

    bench = "".join(
        f"<tr><td>{_esc(b['model'])}</td><td>{_esc(b['member'])}</td><td>{_esc(b.get('rating'))}</td>"
        f"<td>{'correct' if b.get('correct') else 'wrong'}</td><td>{_esc(b.get('predicted_category'))}</td>"
        f"<td class=\"mono\">{_esc(b.get('run_id'))}</td></tr>" for b in L.get("benchmark", []))
    guards = "".join(
        f"<tr><td class=\"mono\">{_esc(str(g.get('probe_id'))[:16])}</td><td>{_esc(g.get('category'))}</td>"
        f"<td>{_esc(g.get('arm'))}</td><td>{_esc(g.get('budget'))}</td><td>{_esc(g.get('seed'))}</td>"
        f"<td>{_esc(g.get('encoder'))}</td><td class=\"mono\">{_esc(g.get('run_id'))}</td></tr>"
        for g in L.get("guard_models", []))

    warn = ('<div class="warn">The unsafe image is blurred and the difference map coarse (previews '
            "are off). Pass <code>--show-unsafe</code> or set <code>previews.show_unsafe: true</code> "
            "to see them.</div>"
            if not show_unsafe else '<div class="warn">This card shows the unsafe image unblurred.</div>')
    notes = "".join(f"<li>{_esc(x)}</li>" for x in L.get("lookup", {}).get("notes", []))
    return "\n".join([
        (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_esc(title)}</title>'
        f"<style>{CARD_CSS}</style></head><body>"),
        f"<h1>{_esc(title)}</h1>", warn,
        f'<div class="images">{"".join(figures)}</div>',
        "<h2>Decision</h2>", summary,
        "<h2>Scores</h2>", _kv_table(score_rows),
        "<h2>Verdicts per judge</h2>", _verdicts_table(v) if v else '<p class="note">no verification row</p>',
        "<h2>Candidates of this instruction</h2>", candidates,
        "<h2>Provenance</h2>", chain,
        "<details><summary>source provenance</summary>" + _pre(s.get("provenance")) + "</details>",
        "<details><summary>instruction details</summary>" + _pre(i.get("details")) + "</details>",
        ("<h3>Dagster runs per step</h3><table><tr><th>step</th><th>table/partition</th><th>key</th>"
        f"<th>run id</th><th>code version</th></tr>{steps}</table>"),
        (f"<table><tr><th>run</th><th>status</th><th>job</th><th>started</th></tr>{run_table}</table>"
         if run_table else ""),
        "<h2>Benchmark runs that include it</h2>",
        (f"<table><tr><th>model</th><th>member</th><th>rated</th><th></th><th>category</th><th>run id</th></tr>"
         f"{bench}</table>" if bench else '<p class="note">not benchmarked</p>'),
        "<h2>Guard models trained on it</h2>",
        (f"<table><tr><th>probe</th><th>category</th><th>arm</th><th>budget</th><th>seed</th><th>encoder</th>"
         f"<th>run id</th></tr>{guards}</table>" if guards else '<p class="note">none</p>'),
        (f"<h3>Notes</h3><ul>{notes}</ul>" if notes else ""),
        (f'<p class="note">spairs lineage {_esc(L["pair_id"])} · looked up in '
        f'{_esc(L.get("lookup", {}).get("ms"))} ms</p>'),
        "</body></html>",
    ])
