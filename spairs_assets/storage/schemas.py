"""The pyarrow schema of every table, declared once.

Writes are checked against these (see `tables.TableStore.write`); the DuckDB catalogue makes one
view per table named after it. Every table ends with the ledger columns: the Dagster run that
wrote the row and the code version of the stage that computed it.
"""

from __future__ import annotations

import pyarrow as pa

LEDGER_FIELDS = (
    pa.field("run_id", pa.string(), nullable=False),
    pa.field("code_version", pa.string(), nullable=False),
)
LEDGER_COLUMNS = tuple(f.name for f in LEDGER_FIELDS)


def _schema(*fields: pa.Field, doc: str) -> pa.Schema:
    return pa.schema([*fields, *LEDGER_FIELDS], metadata={"doc": doc})


def _req(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=False)


def _opt(name: str, type_: pa.DataType) -> pa.Field:
    return pa.field(name, type_, nullable=True)


BOX = pa.list_(pa.int32(), 4)  # x0, y0, x1, y1 (exclusive)

SOURCE_IMAGES = _schema(
    _req("image_id", pa.string()),  # sha256 of the canonical RGB pixels
    _req("image_path", pa.string()),  # path in the image store, relative to data root
    _req("category", pa.string()),  # partition key
    _req("category_id", pa.string()),  # policy id, e.g. O1
    _req("rating", pa.string()),  # "Unsafe" | "Safe"
    _req("width", pa.int32()),
    _req("height", pa.int32()),
    _req("source_kind", pa.string()),  # demo | folder | manifest
    _req("source_name", pa.string()),
    _req("source_path", pa.string()),  # the file as the source named it
    _req("source_sha256", pa.string()),  # hash of the original file bytes
    _opt("licence", pa.string()),
    _req("provenance", pa.string()),  # JSON: original format/mode/size, EXIF, resizing, source row
    doc="One row per seed image that passed ingestion.",
)

QUARANTINE = _schema(
    _req("category", pa.string()),  # partition key, or "_unknown" when the category is unknown
    _req("source_kind", pa.string()),
    _req("source_name", pa.string()),
    _req("source_path", pa.string()),
    _req("reason", pa.string()),  # one of sources.ingest.QUARANTINE_REASONS
    _req("detail", pa.string()),
    _opt("source_sha256", pa.string()),
    doc="Seed inputs that were rejected, with the reason; never silently dropped.",
)

DEMO_GROUND_TRUTH = _schema(
    _req("image_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),
    _req("rating", pa.string()),
    _req("file_name", pa.string()),
    _req("feature_kind", pa.string()),  # text | symbol | none
    _opt("phrase", pa.string()),
    _opt("benign_phrase", pa.string()),
    _opt("offending_word", pa.string()),
    _opt("benign_word", pa.string()),
    _opt("symbol", pa.string()),
    _opt("benign_symbol", pa.string()),
    _opt("feature_box", BOX),
    _opt("text_box", BOX),
    _req("details", pa.string()),  # JSON: font, colours, rotation, background, seed
    doc="Evaluation-only ground truth of the demo seeds; never handed to editors or judges.",
)

EDIT_INSTRUCTIONS = _schema(
    _req("instruction_id", pa.string()),  # hash(source id, text, generator id); also for non-ok rows
    _req("source_image_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),
    _req("direction", pa.string()),  # unsafe_to_safe | safe_to_unsafe
    _req("source_rating", pa.string()),
    _req("target_rating", pa.string()),
    _req("status", pa.string()),  # ok | no_feature | failed
    _opt("instruction", pa.string()),
    _opt("edit_kind", pa.string()),  # replace | remove | add
    _opt("feature_kind", pa.string()),  # text | symbol | object | other
    _opt("feature", pa.string()),
    _opt("replacement", pa.string()),
    _opt("region", BOX),  # where the generator located the feature, when it did
    _req("generator_id", pa.string()),
    _req("generator_version", pa.string()),  # prompt version / lexicon hash
    _opt("error", pa.string()),
    _req("details", pa.string()),  # JSON: OCR text, scores, raw model answer
    doc="One row per proposed label-flipping edit (or per seed where none was found or it failed).",
)

EDITED_IMAGES = _schema(
    _req("edit_id", pa.string()),  # hash(instruction id, editor id, params, seed)
    _req("kind", pa.string()),  # edit | null_edit (the editor's round trip without a change)
    _opt("instruction_id", pa.string()),  # null for null edits
    _req("source_image_id", pa.string()),
    _req("category", pa.string()),
    _req("candidate", pa.int32()),
    _req("seed", pa.int64()),
    _req("status", pa.string()),  # ok | failed
    _opt("edited_image_id", pa.string()),
    _opt("edited_image_path", pa.string()),
    _req("editor_id", pa.string()),
    _req("model_revision", pa.string()),
    _req("params", pa.string()),  # JSON, canonical
    _req("package_versions", pa.string()),  # JSON
    _opt("seconds", pa.float64()),
    _opt("error", pa.string()),
    _req("details", pa.string()),  # JSON: edited region, working resolution, warnings
    doc="One row per edit candidate (and per null edit), with all it takes to reproduce it.",
)

VERIFICATION_SCORES = _schema(
    _req("edit_id", pa.string()),
    _req("kind", pa.string()),  # edit | null_edit
    _opt("instruction_id", pa.string()),
    _req("source_image_id", pa.string()),
    _req("edited_image_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),
    _opt("direction", pa.string()),
    # minimality
    _req("ssim", pa.float64()),
    _opt("psnr", pa.float64()),  # null when identical (infinite)
    _req("l1", pa.float64()),
    _req("l2", pa.float64()),
    _req("changed_fraction", pa.float64()),
    _opt("changed_box", BOX),
    _req("changed_area", pa.int64()),
    _opt("region_box", BOX),  # the edited region the locality check used
    _opt("outside_changed_fraction", pa.float64()),
    _opt("outside_max_abs_diff", pa.int32()),
    _req("phash_distance", pa.int32()),
    _req("dhash_distance", pa.int32()),
    _req("ahash_distance", pa.int32()),
    _opt("source_phash", pa.string()),
    _opt("edited_phash", pa.string()),
    _opt("encoder_cosine", pa.float64()),
    _req("encoder_id", pa.string()),
    # judges
    _req("source_verdicts", pa.string()),  # JSON: judge name -> verdict
    _req("edited_verdicts", pa.string()),
    _req("source_decision", pa.string()),  # JSON: the ensemble's decision
    _req("edited_decision", pa.string()),
    _opt("flip_verified", pa.bool_()),
    _req("judge_parse_failures", pa.int32()),
    _opt("adherence", pa.bool_()),
    _opt("adherence_detail", pa.string()),
    # decision
    _req("passed", pa.bool_()),
    _req("reasons", pa.string()),  # JSON list of failed criteria
    doc="One row per edit candidate (and null edit): minimality, judge verdicts, flip, pass/fail.",
)

CURATED_PAIRS = _schema(
    _req("pair_id", pa.string()),  # hash(unsafe image id, safe image id, instruction id)
    _req("instruction_id", pa.string()),
    _req("edit_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),
    _req("direction", pa.string()),
    _req("decision", pa.string()),  # accepted | rejected
    _req("reason", pa.string()),
    _req("candidates", pa.int32()),
    _req("candidates_passing", pa.int32()),
    _req("source_image_id", pa.string()),
    _req("edited_image_id", pa.string()),
    _req("unsafe_image_id", pa.string()),
    _req("safe_image_id", pa.string()),
    _opt("null_edit_image_id", pa.string()),
    _opt("instruction", pa.string()),
    _opt("edit_kind", pa.string()),
    _opt("feature_kind", pa.string()),
    _opt("feature", pa.string()),
    _opt("replacement", pa.string()),
    _req("ssim", pa.float64()),
    _opt("psnr", pa.float64()),
    _req("l1", pa.float64()),
    _req("l2", pa.float64()),
    _req("changed_fraction", pa.float64()),
    _opt("outside_changed_fraction", pa.float64()),
    _opt("encoder_cosine", pa.float64()),
    _req("phash_distance", pa.int32()),
    _opt("flip_verified", pa.bool_()),
    _opt("adherence", pa.bool_()),
    _req("judges", pa.string()),  # JSON: the ensemble decisions on both images
    _opt("source_phash", pa.string()),
    _opt("edited_phash", pa.string()),
    _req("split_group", pa.string()),  # source id of the near-duplicate group that fixes the split
    _req("split", pa.string()),  # train | validation | test (names from config)
    _req("dataset_version", pa.string()),
    doc="One row per instruction: the chosen candidate, both images, all scores, split, decision.",
)

BENCHMARK_RESULTS = _schema(
    _req("model", pa.string()),  # name in the config
    _req("model_id", pa.string()),  # backend, model and revision
    _req("model_version", pa.string()),  # prompt version, policy fingerprint, settings
    _req("prompt", pa.string()),  # policy | plain
    _req("pair_id", pa.string()),
    _req("member", pa.string()),  # unsafe | safe
    _req("image_id", pa.string()),
    _req("category", pa.string()),
    _req("category_id", pa.string()),  # the pair's true category
    _req("split", pa.string()),
    _opt("rating", pa.string()),  # Safe | Unsafe | null when the output was unusable
    _opt("predicted_category", pa.string()),
    _opt("predicted_category_id", pa.string()),
    _opt("probability_unsafe", pa.float64()),
    _req("parse_status", pa.string()),
    _opt("raw_output", pa.string()),
    _opt("rationale", pa.string()),
    _opt("latency_s", pa.float64()),  # when the verdict was computed (cached rows keep it)
    _req("correct", pa.bool_()),
    _opt("error", pa.string()),
    doc="One row per (model under test, image of a curated pair).",
)

# Must equal spairs_assets.benchmark.metrics.METRICS (a test checks).
LEADERBOARD_METRICS = ("pair_accuracy", "image_accuracy", "unsafe_accuracy", "safe_accuracy", "fpr",
                       "fnr", "consistency_failure_rate", "category_accuracy_when_unsafe",
                       "invalid_rate")

BENCHMARK_LEADERBOARD = _schema(
    _req("model", pa.string()),
    _req("category", pa.string()),  # a partition key, or "all"
    _req("rank", pa.int32()),
    _req("n_pairs", pa.int64()),
    _req("n_images", pa.int64()),
    *[f for m in LEADERBOARD_METRICS
      for f in (_opt(m, pa.float64()), _opt(f"{m}_low", pa.float64()), _opt(f"{m}_high", pa.float64()))],
    doc="Benchmark metrics per model, overall and per category, with bootstrap intervals over pairs.",
)

_GUARD_METRICS = ("pair_accuracy", "image_accuracy", "unsafe_accuracy", "safe_accuracy",
            "unpaired_accuracy", "unpaired_balanced_accuracy")

GUARD_MODELS = _schema(
    _req("probe_id", pa.string()),  # hash(category, arm, budget, seed, training set, encoder, fit)
    _req("category", pa.string()),  # partition key, or "multi"
    _req("arm", pa.string()),  # baseline | pairs | null_edit | deploy
    _req("budget", pa.string()),  # "8", "16", ... or "all" (after clamping to the pool)
    _req("budget_requested", pa.string()),  # the requested budgets that map here, comma-joined
    _req("n_train", pa.int32()),  # training images actually used
    _req("n_unsafe", pa.int32()),
    _req("n_safe", pa.int32()),
    _req("seed", pa.int32()),
    _req("encoder", pa.string()),  # encoder id
    _req("encoder_version", pa.string()),
    _req("data_version", pa.string()),  # hash of the pool (pairs, safe seeds, splits)
    _req("dataset_version", pa.string()),  # curated_pairs dataset version(s)
    _req("train_ids_hash", pa.string()),
    _req("train_pair_ids", pa.list_(pa.string())),  # lineage: pairs it trained on
    _req("train_image_ids", pa.list_(pa.string())),
    _req("C", pa.float64()),
    _req("threshold", pa.float64()),
    _req("train_accuracy", pa.float64()),
    *[_opt(m, pa.float64()) for m in _GUARD_METRICS],  # null when there is nothing held out
    _req("n_eval_pairs", pa.int32()),
    _req("n_eval_unpaired", pa.int32()),
    _req("pair_correct", pa.string()),  # "1"/"0" per held-out pair, in pair-id order
    _req("eval_pairs_hash", pa.string()),
    _req("metrics", pa.string()),  # JSON: every metric, training metrics included
    _req("weights_path", pa.string()),  # safetensors, relative to the data root
    _req("card_path", pa.string()),  # JSON model card, relative to the data root
    doc="One row per trained guard probe (linear probe on a frozen encoder).",
)

GUARD_CURVES = _schema(
    _req("category", pa.string()),  # partition key or "multi"
    _req("arm", pa.string()),
    _req("budget", pa.string()),
    _req("n_train", pa.int32()),
    _req("n_seeds", pa.int32()),
    _req("n_eval_pairs", pa.int32()),
    *[f for m in _GUARD_METRICS for f in (_opt(f"{m}_mean", pa.float64()),
                                    _opt(f"{m}_low", pa.float64()),
                                    _opt(f"{m}_high", pa.float64()))],
    _opt("vs_baseline_mean", pa.float64()),  # pair accuracy minus the baseline's, same seeds
    _opt("vs_baseline_low", pa.float64()),  # two-level bootstrap (seeds x held-out pairs)
    _opt("vs_baseline_high", pa.float64()),
    _opt("vs_baseline_t_low", pa.float64()),  # t-interval over seeds
    _opt("vs_baseline_t_high", pa.float64()),
    _opt("vs_baseline_verdict", pa.string()),  # better | worse | no clear difference
    _req("target", pa.float64()),
    _opt("budget_to_reach_target", pa.int32()),  # smallest n_train whose mean reaches target
    _req("encoder", pa.string()),
    doc="Guard learning curves: mean and 95% t-interval over seeds per (category, arm, budget).",
)

GUARD_TRAINING_PAIRS = _schema(
    _req("probe_id", pa.string()),  # guard_models.probe_id
    _req("pair_id", pa.string()),  # curated_pairs.pair_id it trained on
    _req("category", pa.string()),  # the probe's partition: category or "multi"
    _req("arm", pa.string()),  # baseline | pairs | null_edit | deploy
    _req("budget", pa.string()),
    _req("seed", pa.int32()),
    _req("encoder", pa.string()),
    _req("dataset_version", pa.string()),  # curated_pairs version(s) trained on
    _req("role", pa.string()),  # "train"
    doc="One row per (guard probe, curated pair it trained on): guard_models.train_pair_ids "
        "exploded and sorted by pair, so the lineage audit finds a pair's guards by one lookup.",
)

SCHEMAS: dict[str, pa.Schema] = {
    "source_images": SOURCE_IMAGES,
    "quarantine": QUARANTINE,
    "demo_ground_truth": DEMO_GROUND_TRUTH,
    "edit_instructions": EDIT_INSTRUCTIONS,
    "edited_images": EDITED_IMAGES,
    "verification_scores": VERIFICATION_SCORES,
    "curated_pairs": CURATED_PAIRS,
    "benchmark_results": BENCHMARK_RESULTS,
    "benchmark_leaderboard": BENCHMARK_LEADERBOARD,
    "guard_models": GUARD_MODELS,
    "guard_curves": GUARD_CURVES,
    "guard_training_pairs": GUARD_TRAINING_PAIRS,
}

# The columns that identify a row of each table (unique within a partition file). Rows are
# stored sorted by them, so Parquet row-group statistics let a lookup by id (the lineage audit)
# skip every row group but one.
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "source_images": ("image_id",),
    "quarantine": ("source_name", "source_path", "reason"),
    "demo_ground_truth": ("image_id",),
    "edit_instructions": ("instruction_id",),
    "edited_images": ("edit_id",),
    "verification_scores": ("edit_id",),
    "curated_pairs": ("pair_id",),
    "benchmark_results": ("pair_id", "member", "model"),
    "benchmark_leaderboard": ("model", "category"),
    "guard_models": ("probe_id",),
    "guard_curves": ("category", "arm", "budget"),
    "guard_training_pairs": ("pair_id", "probe_id"),
}


def schema_for(table: str) -> pa.Schema:
    try:
        return SCHEMAS[table]
    except KeyError:
        raise KeyError(f"no schema declared for table {table!r}; known: {sorted(SCHEMAS)}") from None
