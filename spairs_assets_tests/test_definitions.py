import json
import os

import dagster as dg

from spairs_assets.definitions import defs
from spairs_assets.policy import load_policy
from spairs_assets_tests.graph_snapshot import SNAPSHOT, describe


def test_definitions_load_and_validate():
    dg.Definitions.validate_loadable(defs)
    assert defs.resolve_job_def("category_pipeline").partitions_def is not None


def test_every_asset_is_partitioned_by_policy_category_or_reads_all_of_them():
    keys = load_policy().partition_keys
    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        partitions = graph.get(key).partitions_def
        if partitions is not None:
            assert partitions.get_partition_keys() == keys, key


def test_asset_graph_matches_snapshot():
    """The graph (assets, deps, partitions, checks, jobs) is snapshotted so changes are reviewed.

    After an intended change: SPAIRS_UPDATE_SNAPSHOTS=1 pytest spairs_assets_tests/test_definitions.py
    """
    current = describe(defs)
    if os.environ.get("SPAIRS_UPDATE_SNAPSHOTS") == "1" or not SNAPSHOT.exists():
        SNAPSHOT.write_text(json.dumps(current, indent=2, sort_keys=True) + "\n")
    assert current == json.loads(SNAPSHOT.read_text())


def test_domain_modules_do_not_import_dagster():
    import ast
    from pathlib import Path

    package = Path(__file__).parent.parent / "spairs_assets"
    offenders = []
    for path in package.rglob("*.py"):
        rel = path.relative_to(package).as_posix()
        if rel.startswith("defs/") or rel == "definitions.py" or rel == "cli.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            if any(n == "dagster" or n.startswith("dagster") for n in names):
                offenders.append(rel)
    assert offenders == []


def test_definitions_import_does_not_load_heavy_model_code():
    import subprocess
    import sys

    code = (
        "import sys, spairs_assets.definitions; "
        "print(','.join(m for m in ('torch','diffusers','transformers','great_expectations',"
        "'sentence_transformers','rapidocr_onnxruntime','onnxruntime','cv2') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_dg_check_defs_loads_the_project():
    """`dg check defs` (the README's command) reads [tool.dg] from pyproject.toml and loads defs."""
    import subprocess
    import sys
    from pathlib import Path

    dg_cli = Path(sys.executable).with_name("dg")
    out = subprocess.run([str(dg_cli), "check", "defs"], cwd=Path(__file__).parent.parent,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "All definitions loaded successfully" in out.stdout + out.stderr
