"""The lineage audit on a small materialized pipeline: every step of a pair's chain, its Dagster
run ids, prefix lookup and errors, the HTML card (unsafe image blurred unless asked) and the
per-category gallery."""

from __future__ import annotations

import base64
import io
import json
import re
import shutil

import dagster as dg
import numpy as np
import pytest
from PIL import Image

from spairs_assets.lineage import (
    AmbiguousPairId,
    LineageError,
    LineageIndex,
    PairNotFound,
    pair_lineage,
    render_text,
    to_json,
)
from spairs_assets.defs.lineage import enrich_with_dagster
from spairs_assets.storage import ImageStore, Storage, TableStore
from spairs_assets_tests.pipeline_fixtures import (
    catalog,
    materialize_categories,
    tables,
    write_project,
)

pytestmark = pytest.mark.slow
CATEGORY = "O2_violence"


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    config_path = write_project(tmp_path_factory.mktemp("lineage"),
                                benchmark={"splits": ["train", "validation", "test"]})
    with dg.instance_for_test() as instance:
        results = materialize_categories(config_path, [CATEGORY], instance, summaries=True)
        assert all(r.success for r in results)
        yield config_path, instance, results


@pytest.fixture(scope="module")
def pairs(project):
    config_path, _, _ = project
    rows = tables(config_path).read_rows("curated_pairs", CATEGORY)
    assert any(r["decision"] == "accepted" for r in rows)
    return rows


@pytest.fixture(scope="module")
def index(project):
    config_path, _, _ = project
    with LineageIndex(Storage(config_path.parent / "data")) as idx:
        yield idx


def _accepted(pairs):
    return next(p for p in sorted(pairs, key=lambda p: p["pair_id"]) if p["decision"] == "accepted")


def test_every_step_is_present_and_the_ids_chain(project, pairs, index):
    config_path, _, _ = project
    t = tables(config_path)
    sources = {r["image_id"]: r for r in t.read_rows("source_images", CATEGORY)}
    edits = t.read_rows("edited_images", CATEGORY)
    bench = catalog(config_path).query(
        f"SELECT pair_id, model, member, run_id FROM benchmark_results WHERE category = '{CATEGORY}'"
    ).to_pylist()
    probes = t.read_rows("guard_models", CATEGORY) + t.read_rows("guard_models", "multi")
    assert probes, "the fixture trains guard probes"
    for pair in pairs:
        L = pair_lineage(index, pair["pair_id"])
        assert L["pair_id"] == pair["pair_id"] and L["partition"] == CATEGORY
        assert L["lookup"]["edits_by"] == "derived" and L["lookup"]["notes"] == []
        src, ins, edit, ver = L["source"], L["instruction"], L["edit"], L["verification"]
        assert src == {**sources[pair["source_image_id"]], "provenance": json.loads(
            sources[pair["source_image_id"]]["provenance"])}
        assert src["source_path"] and src["source_sha256"] and isinstance(src["provenance"], dict)
        assert ins["instruction_id"] == pair["instruction_id"] and ins["source_image_id"] == src["image_id"]
        assert ins["generator_id"] and ins["generator_version"]
        assert edit["edit_id"] == pair["edit_id"] and edit["instruction_id"] == ins["instruction_id"]
        assert edit["source_image_id"] == src["image_id"] and edit["edited_image_id"] == pair["edited_image_id"]
        assert edit["model_revision"] and isinstance(edit["params"], dict) and edit["seed"] is not None
        assert ver["edit_id"] == edit["edit_id"] and ver["edited_image_id"] == edit["edited_image_id"]
        assert set(ver["source_verdicts"]) == set(ver["edited_verdicts"]) and ver["source_verdicts"]
        assert all("rating" in v for v in ver["source_verdicts"].values())
        assert isinstance(ver["reasons"], list) and isinstance(ver["source_decision"], dict)
        # every candidate of the instruction, exactly one chosen
        mine = sorted(e["edit_id"] for e in edits if e["instruction_id"] == pair["instruction_id"])
        assert sorted(c["edit_id"] for c in L["candidates"]) == mine
        assert [c["edit_id"] for c in L["candidates"] if c["chosen"]] == [pair["edit_id"]]
        assert len(L["candidates"]) == pair["candidates"]
        # the null edit of the source
        null = L["null_edit"]["edit"]
        assert null["kind"] == "null_edit" and null["source_image_id"] == src["image_id"]
        assert null["edited_image_id"] == pair["null_edit_image_id"]
        assert L["null_edit"]["verification"]["edit_id"] == null["edit_id"]
        # curation, dataset, benchmark
        cur = L["curation"]
        assert cur["decision"] == pair["decision"] and cur["reason"] == pair["reason"]
        assert L["dataset"]["dataset_version"] == pair["dataset_version"]
        assert L["dataset"]["split"] == pair["split"]
        expected = sorted((b["model"], b["member"], b["run_id"]) for b in bench if b["pair_id"] == pair["pair_id"])
        assert sorted((b["model"], b["member"], b["run_id"]) for b in L["benchmark"]) == expected
        if pair["decision"] == "accepted":
            assert expected, "every accepted pair is benchmarked (all splits configured)"
            assert L["dataset"]["export"]["exists"], "the export of this dataset version was written"
        trained = sorted(g["probe_id"] for g in probes if pair["pair_id"] in g["train_pair_ids"])
        assert sorted(g["probe_id"] for g in L["guard_models"]) == trained
        assert L["lookup"]["guard_models_by"] == "guard_training_pairs"
        if pair["decision"] == "accepted" and pair["split"] == "train":
            assert trained, "the deploy probe trains on every accepted train pair"
        assert [s["step"] for s in L["steps"]][:7] == [
            "source", "instruction", "edit", "verification", "null_edit", "null_edit_verification",
            "curation"]


def test_run_ids_and_code_versions_match_the_rows_and_the_instance(project, pairs, index):
    config_path, instance, results = project
    t = tables(config_path)
    by_table = {name: t.read_rows(name, CATEGORY) for name in
                ("source_images", "edit_instructions", "edited_images", "verification_scores",
                 "curated_pairs")}
    keys = {"source_images": "image_id", "edit_instructions": "instruction_id",
            "edited_images": "edit_id", "verification_scores": "edit_id", "curated_pairs": "pair_id"}
    run_ids = {r.run_id for r in results}
    L = pair_lineage(index, _accepted(pairs)["pair_id"])
    for step in L["steps"]:
        assert step["run_id"] in run_ids
        if step["table"] in keys:
            row = next(r for r in by_table[step["table"]] if r[keys[step["table"]]] == step["key"])
            assert (step["run_id"], step["code_version"]) == (row["run_id"], row["code_version"])
    enrich_with_dagster(L, instance)
    assert set(L["run_records"]) == set(L["runs"])
    assert all(r["status"] == "SUCCESS" for r in L["run_records"].values())
    curation = next(s for s in L["steps"] if s["step"] == "curation")
    assert curation["materialization"]["run_id"] == curation["run_id"]
    assert curation["materialization"]["data_version"]
    assert "provenance chain" in render_text(L) and curation["run_id"] in render_text(L)


def test_prefix_lookup_and_errors(pairs, index):
    pid = _accepted(pairs)["pair_id"]
    for query in (pid[:8], pid[:13], pid.upper(), f"  {pid}  "):
        assert pair_lineage(index, query)["pair_id"] == pid
    with pytest.raises(PairNotFound, match="no pair"):
        pair_lineage(index, "0" * 64 if not pid.startswith("0" * 8) else "f" * 64)
    with pytest.raises(PairNotFound):
        pair_lineage(index, "deadbeef00" if not pid.startswith("deadbeef00") else "deadbeef01")
    with pytest.raises(LineageError, match="at least 8"):
        pair_lineage(index, pid[:7])
    with pytest.raises(LineageError, match="hexadecimal"):
        pair_lineage(index, "not-a-pair-id")


def test_an_ambiguous_prefix_names_the_matches(project, pairs, tmp_path):
    config_path, _, _ = project
    shutil.copytree(config_path.parent / "data" / "tables", tmp_path / "data" / "tables")
    store = TableStore(Storage(tmp_path / "data"))
    rows = [{k: v for k, v in r.items() if k not in ("run_id", "code_version")} for r in pairs]
    pid = _accepted(pairs)["pair_id"]
    twin = pid[:10] + ("0" if pid[10] != "0" else "1") + "0" * 53
    store.write("curated_pairs", CATEGORY, rows + [{**rows[0], "pair_id": twin}], run_id="t", code_version="t")
    with pytest.raises(AmbiguousPairId) as err:
        pair_lineage(store, pid[:10])
    assert sorted(err.value.matches) == sorted([pid, twin]) and pid[:16] in str(err.value)
    assert pair_lineage(store, pid[:11])["pair_id"] == pid


def test_guard_models_come_from_guard_training_pairs(project, pairs, tmp_path):
    config_path, _, _ = project
    shutil.copytree(config_path.parent / "data" / "tables", tmp_path / "data" / "tables")
    shutil.rmtree(tmp_path / "data" / "tables" / "guard_training_pairs", ignore_errors=True)
    storage = Storage(tmp_path / "data")
    pid = _accepted(pairs)["pair_id"]
    before = pair_lineage(storage, pid)
    if not (tmp_path / "data" / "tables" / "guard_models").exists():
        assert before["guard_models"] == [] and before["lookup"]["guard_models_by"] == "none"

    other = next(p["pair_id"] for p in pairs if p["pair_id"] != pid)
    row = {"category": CATEGORY, "arm": "pairs", "budget": "8", "seed": 0, "encoder": "open-nsfw",
           "dataset_version": "ds-x", "role": "train"}
    TableStore(storage).write("guard_training_pairs", CATEGORY, [
        {**row, "probe_id": "p1", "pair_id": pid}, {**row, "probe_id": "p2", "pair_id": pid, "arm": "deploy"},
        {**row, "probe_id": "p1", "pair_id": other}], run_id="guard-run", code_version="g1")
    L = pair_lineage(storage, pid)
    assert L["lookup"]["guard_models_by"] == "guard_training_pairs"
    assert [(g["probe_id"], g["arm"]) for g in L["guard_models"]] == [("p2", "deploy"), ("p1", "pairs")]
    guard_step = next(s for s in L["steps"] if s["step"] == "guard_training")
    assert guard_step["run_id"] == "guard-run" and guard_step["code_version"] == "g1"


def test_edits_are_found_by_a_scan_when_their_ids_cannot_be_recomputed(pairs, index):
    pid = _accepted(pairs)["pair_id"]
    derived, scanned = pair_lineage(index, pid), pair_lineage(index, pid, base_seeds=(12345,))
    assert scanned["lookup"]["edits_by"] == "scan"
    for key in ("candidates", "null_edit", "verification", "edit"):
        assert scanned[key] == derived[key], key


def test_json_output_round_trips(pairs, index):
    L = pair_lineage(index, _accepted(pairs)["pair_id"])
    assert json.loads(to_json(L))["pair_id"] == L["pair_id"]
    assert json.loads(to_json(L)) == json.loads(json.dumps(L, default=str))


def test_recipes_match_the_pipeline():
    from spairs_assets.curation.export import combined_version as export_version
    from spairs_assets.editing.stage import candidate_seed as stage_seed
    from spairs_assets.lineage.audit import candidate_seed, combined_version

    for base, iid, k in ((0, "ab" * 32, 0), (7, "cd" * 32, 3)):
        assert candidate_seed(base, iid, k) == stage_seed(base, iid, k)
    versions = {"O1_hate": "ds-1", "O2_violence": "ds-2"}
    assert combined_version(versions) == export_version(versions)


def _embedded(html: str) -> dict[str, np.ndarray]:
    """image id -> the pixels of its embedded PNG."""
    out = {}
    for image_id, data in re.findall(
            r'<figure data-image-id="([0-9a-f]+)"[^>]*><img[^>]*src="data:image/png;base64,([^"]+)"', html):
        out[image_id] = np.asarray(Image.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))
    return out


def test_html_card_blurs_the_unsafe_image_unless_asked(project, pairs, index):
    from spairs_assets.lineage.card import render_html_card

    config_path, _, _ = project
    images = ImageStore(Storage(config_path.parent / "data"))
    pair = _accepted(pairs)
    L = pair_lineage(index, pair["pair_id"])
    unsafe, safe = images.load_array(pair["unsafe_image_id"]), images.load_array(pair["safe_image_id"])

    hidden = render_html_card(L, images.load, show_unsafe=False)
    shown = _embedded(hidden)
    assert set(shown) == {pair["unsafe_image_id"], pair["safe_image_id"]}
    assert shown[pair["unsafe_image_id"]].shape == unsafe.shape
    assert np.abs(shown[pair["unsafe_image_id"]].astype(int) - unsafe).mean() > 2  # blurred
    assert np.array_equal(shown[pair["safe_image_id"]], safe)
    assert 'data-heatmap="true"' in hidden and "blurred" in hidden
    for text in (pair["pair_id"], pair["reason"], L["curation"]["run_id"], L["source"]["source_path"]):
        assert text in hidden
    assert all(judge in hidden for judge in L["verification"]["source_verdicts"])

    visible = _embedded(render_html_card(L, images.load, show_unsafe=True))
    assert np.array_equal(visible[pair["unsafe_image_id"]], unsafe)
    assert np.array_equal(visible[pair["safe_image_id"]], safe)


def test_gallery_has_one_entry_per_accepted_pair(project, pairs):
    from spairs_assets.reports.gallery import render_gallery, write_gallery

    config_path, _, _ = project
    storage = Storage(config_path.parent / "data")
    images = ImageStore(storage)
    scores = tables(config_path).read_rows("verification_scores", CATEGORY)
    accepted = sorted(p["pair_id"] for p in pairs if p["decision"] == "accepted")

    page = render_gallery(pairs, scores, images.load, show_unsafe=False, title="violence")
    entries = re.findall(r'data-pair-id="([0-9a-f]+)" data-decision="(\w+)"', page)
    assert sorted(pid for pid, _ in entries) == accepted and {d for _, d in entries} == {"accepted"}
    assert page.count('<img class="blurred"') == len(accepted) and "<title>violence</title>" in page

    everything = render_gallery(pairs, scores, images.load, show_unsafe=True, title="all",
                                include_rejected=True)
    assert len(re.findall(r'data-pair-id="', everything)) == len(pairs) and "(blurred)" not in everything

    [rel] = write_gallery(storage, pairs, scores, images.load, show_unsafe=False)
    assert rel == f"reports/gallery/{CATEGORY}/{pairs[0]['dataset_version']}.html"
    assert storage.read_bytes(rel).decode().count('data-decision="accepted"') == len(accepted)
