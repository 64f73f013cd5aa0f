"""`source_images` materialized through Dagster, on a temporary instance."""

import dagster as dg

from spairs_assets.defs.resources import SpairsResource
from spairs_assets.defs.sources import asset_checks, source_images
from spairs_assets.storage import Catalog, Storage
from spairs_assets_tests.seedfiles import photo, png_bytes, write


def test_materialize_one_partition_writes_rows_with_ledger_and_metadata(tmp_path, write_config):
    root = tmp_path / "seeds"
    for i in range(3):
        write(root / f"O8_animal_cruelty/unsafe/{i}.png", png_bytes(photo(seed=i)))
    write(root / "O8_animal_cruelty/safe/ok.png", png_bytes(photo(seed=9)))
    write(root / "O8_animal_cruelty/unsafe/broken.png", b"")
    write(root / "O1_hate/unsafe/other.png", png_bytes(photo(seed=20)))  # another partition
    config_path = write_config(sources={"items": [{"kind": "folder", "name": "lab", "root": str(root)}]})

    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [source_images, *asset_checks],
            partition_key="O8_animal_cruelty",
            resources={"spairs": SpairsResource(config_path=str(config_path))},
            instance=instance,
        )
        assert result.success
        mat = result.asset_materializations_for_node("source_images")[0]
        assert mat.partition == "O8_animal_cruelty"
        assert mat.metadata["seeds"].value == 4
        assert mat.metadata["unsafe"].value == 3
        assert mat.metadata["quarantined"].value == 1
        assert "zero_bytes" in mat.metadata["quarantine_by_reason"].value
        assert "data:image/png;base64," in mat.metadata["preview"].value
        checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
        assert checks == {
            "source_images_not_empty": True,
            "source_images_quarantine": False,  # a warning: one file was quarantined
            "source_images_expectations": True,
            "quarantine_expectations": True,
            "demo_ground_truth_expectations": True,  # no demo source: nothing to check
        }
        run_id = result.run_id
        # The materialization is recorded in the instance with its data version.
        record = instance.get_latest_materialization_event(dg.AssetKey("source_images"))
        assert record.run_id == run_id

    rows = Catalog(Storage(tmp_path / "data")).query(
        "SELECT category, rating, run_id, code_version FROM source_images").to_pylist()
    assert len(rows) == 4
    assert {r["category"] for r in rows} == {"O8_animal_cruelty"}
    assert {r["run_id"] for r in rows} == {run_id}
    assert all(r["code_version"].startswith("0.1.0+") for r in rows)
