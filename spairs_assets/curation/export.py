"""Export the curated pairs as a Hugging Face dataset with a dataset card and Croissant RAI.

Layout of an export folder:
  hf/                 `DatasetDict.save_to_disk` (load with `datasets.load_from_disk`)
  parquet/<split>.parquet   the same rows, images embedded as PNG bytes
  README.md           the dataset card (YAML front matter + sections)
  croissant.json      Croissant metadata with Responsible-AI (RAI) fields
"""

from __future__ import annotations

import json
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spairs_assets import __version__
from spairs_assets.ids import hash_parts
from spairs_assets.policy import SafetyPolicy

HARMFUL_CONTENT_NOTICE = (
    "This dataset contains images that are unsafe under the safety policy it was built with "
    "(the `unsafe_image` of every pair). It exists to evaluate and train safety classifiers. "
    "Do not use it to generate, spread or train models to produce harmful content; view unsafe "
    "images only when your work requires it."
)

COLUMNS = ("pair_id", "category", "category_id", "split", "direction", "instruction", "edit_kind",
           "feature_kind", "feature", "replacement", "ssim", "psnr", "changed_fraction",
           "outside_changed_fraction", "encoder_cosine", "instruction_id", "edit_id",
           "source_image_id", "unsafe_image_id", "safe_image_id", "dataset_version")


@dataclass
class ExportResult:
    folder: Path
    dataset_version: str
    counts: dict[str, dict[str, int]]  # category -> split -> pairs
    card: str


def combined_version(category_versions: dict[str, str]) -> str:
    """The dataset version of all categories together."""
    return "ds-" + hash_parts("dataset-all", sorted(category_versions.items()))[:12]


def export_dataset(
    pairs: Sequence[dict[str, Any]],
    sources: dict[str, dict[str, Any]],
    load_png: Callable[[str], bytes],
    out: Path,
    *,
    policy: SafetyPolicy,
    provenance: dict[str, Any],
) -> ExportResult:
    """Write accepted `pairs` (curated_pairs rows) to `out` (replaced if it exists)."""
    from datasets import Dataset, DatasetDict, Features, Image, Value
    from datasets.utils.logging import disable_progress_bar

    disable_progress_bar()

    accepted = sorted((p for p in pairs if p["decision"] == "accepted"),
                      key=lambda p: (p["category"], p["pair_id"]))
    versions = {p["category"]: p["dataset_version"] for p in pairs}
    version = combined_version(versions)
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    (out / "parquet").mkdir(parents=True)

    features = Features({
        **{c: Value("float64") if c in ("ssim", "psnr", "changed_fraction", "outside_changed_fraction",
                                          "encoder_cosine") else Value("string") for c in COLUMNS},
        "unsafe_image": Image(), "safe_image": Image(),
        "source_licence": Value("string"), "source_name": Value("string"),
    })
    by_split: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for p in accepted:
        source = sources.get(p["source_image_id"], {})
        row = {c: p.get(c) for c in COLUMNS}
        row["dataset_version"] = version
        row["unsafe_image"] = {"bytes": load_png(p["unsafe_image_id"]), "path": f"{p['unsafe_image_id']}.png"}
        row["safe_image"] = {"bytes": load_png(p["safe_image_id"]), "path": f"{p['safe_image_id']}.png"}
        row["source_licence"] = source.get("licence")
        row["source_name"] = source.get("source_name")
        by_split[p["split"]].append(row)
    splits = DatasetDict({name: Dataset.from_list(rows, features=features)
                          for name, rows in sorted(by_split.items())})
    splits.save_to_disk(str(out / "hf"))
    for name, ds in splits.items():
        ds.to_parquet(str(out / "parquet" / f"{name}.parquet"))

    counts: dict[str, dict[str, int]] = defaultdict(dict)
    for (category, split), n in sorted(Counter((p["category"], p["split"]) for p in accepted).items()):
        counts[category][split] = n
    licences = Counter(sources.get(p["source_image_id"], {}).get("licence") or "unknown"
                       for p in accepted)
    card = render_card(accepted, counts, licences, version, policy, provenance)
    (out / "README.md").write_text(card)
    (out / "croissant.json").write_text(json.dumps(
        croissant(version, counts, licences, policy, provenance, sorted(by_split)), indent=2))
    return ExportResult(out, version, dict(counts), card)


def _mean(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None]
    return f"{sum(vals) / len(vals):.4f}" if vals else "n/a"


def render_card(accepted, counts, licences, version, policy: SafetyPolicy, provenance) -> str:
    splits = sorted({s for c in counts.values() for s in c})
    total = len(accepted)
    front = ["---", "pretty_name: SafetyPairs (spairs export)",
             "license: other", "task_categories:", "- image-classification",
             "tags:", "- safety", "- counterfactual", "- content-moderation", "- not-for-all-audiences",
             f"size_categories:\n- {'n<1K' if total < 1000 else '1K<n<10K'}",
             "configs:", "- config_name: default", "  data_files:"]
    front += [f"  - split: {s}\n    path: parquet/{s}.parquet" for s in splits]
    front += ["---", ""]
    lines = [
        f"# SafetyPairs dataset `{version}`", "",
        "Counterfactual image pairs: each pair differs in one safety-critical feature, so that "
        f"one image is unsafe and the other safe under the **{policy.name} {policy.version}** "
        "policy. Built with [spairs](https://arxiv.org/abs/2510.21120) "
        f"{__version__}.", "",
        "## Harmful-content notice", "", HARMFUL_CONTENT_NOTICE, "",
        "## Pairs per category and split", "",
        "| category | " + " | ".join(splits) + " | total |",
        "|---|" + "---|" * (len(splits) + 1),
    ]
    for c in policy.categories:
        row = counts.get(c.key, {})
        lines.append(f"| {c.label} | " + " | ".join(str(row.get(s, 0)) for s in splits)
                     + f" | {sum(row.values())} |")
    lines += [f"| **all** | " + " | ".join(str(sum(c.get(s, 0) for c in counts.values())) for s in splits)
              + f" | {total} |", "",
              "## Edit minimality (means over pairs)", "",
              f"- SSIM: {_mean([p['ssim'] for p in accepted])}",
              f"- changed fraction of pixels: {_mean([p['changed_fraction'] for p in accepted])}",
              f"- change outside the edited region: {_mean([p['outside_changed_fraction'] for p in accepted])}",
              f"- encoder cosine (source vs edit): {_mean([p['encoder_cosine'] for p in accepted])}", "",
              "## How it was made", "",
              "1. Seeds were ingested, verified and normalised (`source_images`).",
              "2. An instruction generator proposed a minimal label-flipping edit per seed (`edit_instructions`).",
              "3. An editor produced candidates (`edited_images`).",
              "4. Judges rated both images; minimality metrics were computed (`verification_scores`).",
              "5. The most minimal candidate that passed every criterion was kept per instruction; "
              "splits were assigned by source image, so no source crosses splits (`curated_pairs`).", "",
              "```json", json.dumps(provenance, indent=2, sort_keys=True, default=str), "```", "",
              "## Licences", "",
              "Each row carries its seed's licence (`source_licence`). Seed licences in this export:", ""]
    lines += [f"- {lic}: {n} pairs" for lic, n in sorted(licences.items())]
    lines += ["", "Edited images are derived works of their seeds and carry the same terms.", "",
              "## Responsible AI", "",
              "- **Intended use:** evaluating and training image safety classifiers and guard models.",
              "- **Out of scope:** generating or amplifying harmful content.",
              "- **Limitations:** judges and editors have errors; a pair's labels follow the policy above "
              "and the automated verification recorded with it, not a human review.",
              "- **Personal information:** seeds may show people; the export adds none.", ""]
    return "\n".join(front + lines)


def croissant(version, counts, licences, policy: SafetyPolicy, provenance, splits) -> dict[str, Any]:
    """Croissant 1.0 metadata with the RAI vocabulary's fields."""
    return {
        "@context": {"@vocab": "https://schema.org/", "cr": "http://mlcommons.org/croissant/",
                     "rai": "http://mlcommons.org/croissant/RAI/", "sc": "https://schema.org/"},
        "@type": "sc:Dataset",
        "name": f"safetypairs-{version}",
        "conformsTo": "http://mlcommons.org/croissant/1.0",
        "version": version,
        "description": f"Counterfactual safe/unsafe image pairs under the {policy.name} "
                       f"{policy.version} policy.",
        "license": sorted(licences),
        "distribution": [{"@type": "cr:FileObject", "name": f"{s}.parquet",
                          "contentUrl": f"parquet/{s}.parquet", "encodingFormat": "application/x-parquet"}
                         for s in splits],
        "rai:dataCollection": "Seed images from the configured sources; counterfactual edits made by "
                              f"the configured editor ({provenance.get('editor')}); labels from the "
                              "policy and the judge ensemble's verification.",
        "rai:dataCollectionType": ["Synthetic", "Derived"],
        "rai:dataAnnotationProtocol": "Automated: each pair's flip verified by a k-of-m judge "
                                      f"ensemble ({provenance.get('judges')}).",
        "rai:dataUseCases": ["Benchmarking vision-language and guard models (pair accuracy)",
                             "Training lightweight safety classifiers with counterfactual augmentation"],
        "rai:dataLimitations": "Automated labels; features the CPU pipeline can edit are limited to "
                               "text and pictograms; per-category counts are small.",
        "rai:dataBiases": "Categories and seeds reflect the sources and policy chosen; the judge "
                          "ensemble's errors propagate to the labels.",
        "rai:personalSensitiveInformation": "Seeds may contain people; no personal data is added.",
        "rai:dataSocialImpact": HARMFUL_CONTENT_NOTICE,
        "rai:hasSyntheticData": True,
        "cr:recordSet": [{"@type": "cr:RecordSet", "name": "pairs",
                          "description": f"{sum(sum(c.values()) for c in counts.values())} pairs"}],
    }


def export_from_tables(tables, images, policy: SafetyPolicy, out: Path,
                       provenance: dict[str, Any]) -> ExportResult:
    """Export every category's curated pairs found in `tables` (a TableStore)."""
    pairs = [r for p in tables.partitions("curated_pairs") for r in tables.read_rows("curated_pairs", p)]
    sources = {r["image_id"]: r for p in tables.partitions("source_images")
               for r in tables.read_rows("source_images", p)}
    if not pairs:
        raise ValueError("no curated pairs yet: materialize curated_pairs first (spairs demo)")
    return export_dataset(pairs, sources, lambda iid: images.storage.read_bytes(images.rel_path(iid)),
                          out, policy=policy, provenance=provenance)


def pipeline_provenance(config) -> dict[str, Any]:
    """What made the pairs, for the card: backends, judges, thresholds."""
    return {
        "instruction_generator": config.instructions.generator,
        "editor": config.editing.editor,
        "editor_model": config.editing.diffusers.model if config.editing.diffusers else None,
        "judges": [j.name for j in config.verification.judges],
        "ensemble_k": config.verification.ensemble_k,
        "encoder": config.verification.encoder,
        "curation": config.curation.model_dump(mode="json"),
        "policy": f"{config.safety_policy.name} {config.safety_policy.version}",
    }
