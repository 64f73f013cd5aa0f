import json

import pytest
from typer.testing import CliRunner

from spairs_assets.cli import app

runner = CliRunner()


@pytest.mark.parametrize("command", [[], ["demo"], ["ui"], ["sql"], ["catalog"], ["export"], ["lineage"]])
def test_every_command_has_help(command):
    result = runner.invoke(app, [*command, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.output


def test_bad_config_is_reported_with_the_setting(write_config):
    write_config(sources={"max_side": -5})
    result = runner.invoke(app, ["sql", "SELECT 1"])
    assert result.exit_code == 2
    assert "sources.max_side" in result.output


@pytest.mark.slow
def test_demo_for_one_category_then_sql(tmp_path, write_config, monkeypatch):
    write_config(sources={"items": [{"kind": "demo", "n_unsafe": 4, "n_safe": 2}]})
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))  # restored after the test
    result = runner.invoke(app, ["demo", "--categories", "O7_self_harm", "--workers", "1"])
    assert result.exit_code == 0, result.output
    row = next(line.split() for line in result.output.splitlines() if line.strip().startswith("O7_self_harm"))
    seeds, unsafe, instructions, edits, pairs = map(int, row[1:])
    assert (seeds, unsafe, instructions, edits) == (6, 4, 4, 8)  # 2 candidates per instruction
    assert pairs >= 3
    assert (tmp_path / "data" / "catalog.duckdb").exists()
    # Dagster recorded the run in the instance under the data root.
    assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").exists()

    result = runner.invoke(app, ["sql", "SELECT rating, count(*) AS n FROM source_images "
                                        "GROUP BY rating ORDER BY rating", "--format", "json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output) == [{"rating": "Safe", "n": 2}, {"rating": "Unsafe", "n": 4}]
    truth = runner.invoke(app, ["sql", "SELECT count(*) AS n FROM demo_ground_truth", "--format", "csv"])
    assert truth.output.split() == ['"n"', "6"]

    # The lineage of a curated pair, by an 8-digit prefix, as text, JSON and an HTML card.
    pair = json.loads(runner.invoke(app, [
        "sql", "SELECT pair_id, edit_id, run_id FROM curated_pairs WHERE decision = 'accepted' "
        "ORDER BY pair_id LIMIT 1", "--format", "json"]).output)[0]
    result = runner.invoke(app, ["lineage", pair["pair_id"][:8], "--json", "--html", str(tmp_path / "card.html"), "--runs"])
    assert result.exit_code == 0, result.output
    lineage = json.loads(result.stdout)
    assert lineage["pair_id"] == pair["pair_id"] and lineage["edit"]["edit_id"] == pair["edit_id"]
    assert pair["run_id"] in lineage["runs"]
    assert lineage["run_records"][pair["run_id"]]["status"] == "SUCCESS"
    assert pair["pair_id"] in (tmp_path / "card.html").read_text()
    text = runner.invoke(app, ["lineage", pair["pair_id"]]).output
    assert "provenance chain" in text and pair["edit_id"][:16] in text
    missing = runner.invoke(app, ["lineage", "0" * 64])
    assert missing.exit_code == 2 and "0" * 16 in missing.output


def test_unknown_category_fails_clearly(write_config, tmp_path, monkeypatch):
    write_config()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path))
    result = runner.invoke(app, ["demo", "--categories", "O42_nothing"])
    assert result.exit_code == 2
    assert "unknown categories ['O42_nothing']" in result.output
