"""The `spairs` command line: run the demo, open the UI, query the catalogue.

Dagster runs from the project folder (the one holding `spairs.yaml` and `dagster.yaml`) with
`DAGSTER_HOME` set to it, so runs started here show up in the UI and data lands in `data/`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

app = typer.Typer(
    help="spairs: build SafetyPairs (counterfactual safe/unsafe image pairs) with Dagster.",
    no_args_is_help=True,
    add_completion=False,
)

def _fail(message: str) -> None:
    typer.secho(message, fg=typer.colors.RED, err=True)
    raise typer.Exit(code=2)


def _load_config():
    from spairs_assets.config import ConfigError, load_config

    try:
        return load_config()
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        _fail(str(exc))


def project_home(config) -> Path:
    """The folder Dagster runs from: where spairs.yaml is, holding dagster.yaml.

    Without a dagster.yaml there (the package used outside its repository), a minimal one is
    written under the data root and Dagster keeps its storage beside it.
    """
    home = Path(config.base_dir)
    if (home / "dagster.yaml").exists():
        return home
    fallback = Path(config.data_url) / "dagster_home"
    fallback.mkdir(parents=True, exist_ok=True)
    if not (fallback / "dagster.yaml").exists():
        (fallback / "dagster.yaml").write_text(
            "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
            "concurrency:\n  pools:\n    default_limit: 1\n")
    return fallback


def enter_project(config) -> Path:
    home = project_home(config)
    os.environ["DAGSTER_HOME"] = str(home)
    os.chdir(home)
    return home


def _run_partition(partition: str, log_level: str = "WARNING") -> tuple[str, bool, float, str]:
    """Materialize every per-category asset for one partition, in this process."""
    import dagster as dg

    from spairs_assets.defs.jobs import PIPELINE_JOB
    from spairs_assets.definitions import defs

    started = time.perf_counter()
    job = defs.resolve_job_def(PIPELINE_JOB)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False,
            tags={"spairs/source": "cli"},
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    return partition, result.success, time.perf_counter() - started, result.run_id


def run_pipeline(partitions: list[str], workers: int,
                 log_level: str = "WARNING") -> list[tuple[str, bool, float, str]]:
    results = []
    if workers <= 1 or len(partitions) == 1:
        for p in partitions:
            results.append(_run_partition(p, log_level))
            _report(results[-1], len(results), len(partitions))
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    with ProcessPoolExecutor(max_workers=workers) as pool:
        futures = [pool.submit(_run_partition, p, log_level) for p in partitions]
        for fut in as_completed(futures):
            results.append(fut.result())
            _report(results[-1], len(results), len(partitions))
    return sorted(results)


def _report(result: tuple[str, bool, float, str], done: int, total: int) -> None:
    partition, ok, seconds, run_id = result
    status = typer.style("ok" if ok else "FAILED", fg=typer.colors.GREEN if ok else typer.colors.RED)
    typer.echo(f"[{done}/{total}] {partition:<24} {status}  {seconds:5.1f}s  run {run_id[:8]}")


@app.command()
def demo(
    categories: Annotated[
        str | None, typer.Option(help="Comma-separated partition keys; all categories if unset.")
    ] = None,
    workers: Annotated[int, typer.Option(help="Categories materialized in parallel.")] = min(
        2, os.cpu_count() or 1
    ),
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show Dagster's step logs.")] = False,
) -> None:
    """Generate the demo seeds and materialize every asset for every category."""
    config = _load_config()
    home = enter_project(config)
    keys = config.safety_policy.partition_keys
    chosen = [c.strip() for c in categories.split(",")] if categories else keys
    unknown = [c for c in chosen if c not in keys]
    if unknown:
        _fail(f"unknown categories {unknown}; known: {', '.join(keys)}")
    typer.echo(f"spairs demo: {len(chosen)} categories, {workers} worker(s), DAGSTER_HOME={home}")
    started = time.perf_counter()
    results = run_pipeline(chosen, workers, "DEBUG" if verbose else "WARNING")
    failed = [p for p, ok, _, _ in results if not ok]

    from spairs_assets.storage import Catalog, Storage

    catalog = Catalog(Storage(config.data_url))
    db = catalog.build_file()
    summary = catalog.query(
        "SELECT category, count(*) AS seeds, count(*) FILTER (WHERE rating = 'Unsafe') AS unsafe "
        "FROM source_images GROUP BY category ORDER BY category")
    quarantined = catalog.query("SELECT count(*) AS n FROM quarantine").column("n")[0].as_py()
    typer.echo("")
    for row in summary.to_pylist():
        typer.echo(f"  {row['category']:<24} {row['seeds']:>4} seeds ({row['unsafe']} unsafe)")
    typer.echo(f"  quarantined: {quarantined}")
    typer.echo(f"\nDone in {time.perf_counter() - started:.1f}s.")
    typer.echo(f"Outputs:   {config.data_url}  (tables/, images/, reports/)")
    typer.echo(f"Catalogue: {db}   e.g. spairs sql \"SELECT * FROM source_images LIMIT 5\"")
    typer.echo("UI:        spairs ui   then open http://127.0.0.1:3000")
    if failed:
        _fail(f"failed categories: {', '.join(failed)} (see the runs in the UI)")


@app.command()
def ui(
    host: Annotated[str, typer.Option(help="Interface to bind; localhost by default.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port of the web UI.")] = 3000,
) -> None:
    """Start the Dagster UI (and daemon) with DAGSTER_HOME set to the project."""
    config = _load_config()
    home = enter_project(config)
    _set_gpu_pool_limit()
    target = ["-w", "workspace.yaml"] if (home / "workspace.yaml").exists() else [
        "-m", "spairs_assets.definitions"]
    cmd = [sys.executable, "-m", "dagster", "dev", *target, "-h", host, "-p", str(port)]
    typer.echo(f"DAGSTER_HOME={home}\nUI on http://{host}:{port}  ({' '.join(cmd[2:])})")
    raise typer.Exit(subprocess.call(cmd))


def _set_gpu_pool_limit(limit: int = 1) -> None:
    """Make the `gpu` pool's limit explicit in the instance (dagster.yaml sets the default)."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.event_log_storage.set_concurrency_slots("gpu", limit)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL over the catalogue views, e.g. SELECT * FROM source_images")],
    output: Annotated[str, typer.Option("--format", help="table, csv or json")] = "table",
    limit: Annotated[int, typer.Option(help="Rows shown in table format.")] = 50,
) -> None:
    """Query the DuckDB catalogue (one view per asset, over all partitions)."""
    import duckdb

    from spairs_assets.storage import Catalog, Storage

    config = _load_config()
    try:
        result = Catalog(Storage(config.data_url)).query(query)
    except duckdb.Error as exc:
        _fail(f"query failed: {exc}")
    if output == "json":
        typer.echo(json.dumps(result.to_pylist(), default=str, indent=1))
    elif output == "csv":
        import pyarrow.csv as pacsv

        pacsv.write_csv(result, sys.stdout.buffer)
    elif output == "table":
        from rich.console import Console
        from rich.table import Table

        table = Table(*result.column_names, show_lines=False)
        for row in result.slice(0, limit).to_pylist():
            table.add_row(*[_short(v) for v in row.values()])
        Console().print(table)
        if result.num_rows > limit:
            typer.echo(f"... {result.num_rows - limit} more rows (use --limit or --format csv)")
    else:
        _fail(f"unknown --format {output!r}: use table, csv or json")


def _short(value: object, width: int = 48) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


@app.command()
def catalog() -> None:
    """Rebuild data/catalog.duckdb (views over every table) for external tools."""
    from spairs_assets.storage import Catalog, Storage

    config = _load_config()
    typer.echo(str(Catalog(Storage(config.data_url)).build_file()))


def main() -> None:  # console script entry point
    app()


if __name__ == "__main__":
    main()
