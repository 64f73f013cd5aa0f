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


def _run_job(job_name: str, partition: str | None, log_level: str) -> tuple[str, bool, float, str]:
    """Run a job of the code location in this process, recorded in the Dagster instance."""
    import dagster as dg

    from spairs_assets.definitions import defs

    started = time.perf_counter()
    job = defs.resolve_job_def(job_name)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            partition_key=partition, instance=instance, raise_on_error=False,
            tags={"spairs/source": "cli"},
            run_config={"loggers": {"console": {"config": {"log_level": log_level}}}})
    return partition or job_name, result.success, time.perf_counter() - started, result.run_id


def _run_partition(partition: str, log_level: str = "WARNING") -> tuple[str, bool, float, str]:
    """Materialize every per-category asset for one partition, in this process."""
    from spairs_assets.defs.jobs import PIPELINE_JOB

    return _run_job(PIPELINE_JOB, partition, log_level)


def run_pipeline(partitions: list[str], workers: int,
                 log_level: str = "WARNING") -> list[tuple[str, bool, float, str]]:
    results = []
    _prepare_instance()  # create Dagster's databases once, before worker processes race to
    if workers <= 1 or len(partitions) == 1:
        for p in partitions:
            results.append(_run_partition(p, log_level))
            _report(results[-1], len(results), len(partitions))
        return results
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from spairs_assets.parallel import limit_threads, threads_per_worker

    with ProcessPoolExecutor(max_workers=workers, initializer=limit_threads,
                             initargs=(threads_per_worker(workers),)) as pool:
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
    log_level = "DEBUG" if verbose else "WARNING"
    results = run_pipeline(chosen, workers, log_level)
    failed = [p for p, ok, _, _ in results if not ok]
    if not failed:
        from spairs_assets.defs.jobs import SUMMARIES_JOB

        summary_run = _run_job(SUMMARIES_JOB, None, log_level)
        _report(summary_run, 1, 1)
        if not summary_run[1]:
            failed.append(SUMMARIES_JOB)

    from spairs_assets.storage import Catalog, Storage

    catalog = Catalog(Storage(config.data_url))
    db = catalog.build_file()
    summary = catalog.query(
        "SELECT s.category, s.seeds, s.unsafe, coalesce(i.instructions, 0) AS instructions, "
        "coalesce(e.edits, 0) AS edits, coalesce(c.pairs, 0) AS pairs FROM "
        "(SELECT category, count(*) AS seeds, count(*) FILTER (WHERE rating = 'Unsafe') AS unsafe "
        " FROM source_images GROUP BY category) s "
        "LEFT JOIN (SELECT category, count(*) FILTER (WHERE status = 'ok') AS instructions "
        " FROM edit_instructions GROUP BY category) i USING (category) "
        "LEFT JOIN (SELECT category, count(*) FILTER (WHERE status = 'ok' AND kind = 'edit') AS edits "
        " FROM edited_images GROUP BY category) e USING (category) "
        "LEFT JOIN (SELECT category, count(*) FILTER (WHERE decision = 'accepted') AS pairs "
        " FROM curated_pairs GROUP BY category) c USING (category) ORDER BY category")
    quarantined = catalog.query("SELECT count(*) AS n FROM quarantine").column("n")[0].as_py()
    typer.echo("")
    typer.echo(f"  {'category':<24} {'seeds':>6} {'unsafe':>6} {'instr.':>6} {'edits':>6} {'pairs':>6}")
    for row in summary.to_pylist():
        typer.echo(f"  {row['category']:<24} {row['seeds']:>6} {row['unsafe']:>6} "
                   f"{row['instructions']:>6} {row['edits']:>6} {row['pairs']:>6}")
    typer.echo(f"  quarantined seeds: {quarantined}")
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


def _prepare_instance() -> None:
    """Create (or migrate) the instance's SQLite databases in this one process."""
    import dagster as dg

    with dg.DagsterInstance.get() as instance:
        instance.get_runs(limit=1)
        instance.event_log_storage.get_concurrency_keys()
        instance.schedule_storage.all_instigator_state() if instance.schedule_storage else None


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
def export(
    out: Annotated[Path | None, typer.Option(help="Folder to write; data/exports/<version> if unset.")] = None,
) -> None:
    """Export the curated pairs as a Hugging Face dataset (save_to_disk + Parquet) with its card."""
    from spairs_assets.curation.export import export_from_tables, pipeline_provenance
    from spairs_assets.storage import ImageStore, Storage, TableStore

    config = _load_config()
    storage = Storage(config.data_url)
    target = out or Path(config.data_url) / "exports" / "latest"
    try:
        result = export_from_tables(TableStore(storage), ImageStore(storage), config.safety_policy,
                                    target, pipeline_provenance(config))
    except ValueError as exc:
        _fail(str(exc))
    total = sum(sum(s.values()) for s in result.counts.values())
    typer.echo(f"dataset {result.dataset_version}: {total} pairs -> {result.folder}")
    typer.echo(f"  load with: datasets.load_from_disk({str(result.folder / 'hf')!r})")


@app.command()
def lineage(
    pair_id: Annotated[str, typer.Argument(help="A pair id from curated_pairs (or a unique prefix of 8+ hex digits).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the lineage as JSON.")] = False,
    html: Annotated[Path | None, typer.Option(help="Also write a self-contained HTML card here.")] = None,
    show_unsafe: Annotated[bool | None, typer.Option(
        "--show-unsafe/--blur-unsafe",
        help="Show the unsafe image unblurred in the HTML card (default: the config's previews setting).")] = None,
    runs: Annotated[bool, typer.Option(
        help="Add run status and each step's latest materialization from the Dagster instance.")] = False,
) -> None:
    """Audit one pair: source file, instruction, edit, scores, curation, benchmark runs and guard
    models, with the Dagster run ids and code versions of every step."""
    from spairs_assets.lineage import LineageError, lineage_command

    config = _load_config()
    html = html.resolve() if html is not None else None  # before --runs changes directory
    enrich = None
    if runs:
        import dagster as dg

        from spairs_assets.defs.lineage import enrich_with_dagster

        enter_project(config)
        instance = dg.DagsterInstance.get()
        enrich = lambda lin: enrich_with_dagster(lin, instance)  # noqa: E731
    try:
        text = lineage_command(config, pair_id, as_json=as_json, html_path=html,
                               show_unsafe=show_unsafe, enrich=enrich)
    except LineageError as exc:
        _fail(str(exc))
    typer.echo(text)
    if html is not None:
        typer.echo(f"HTML card: {html}", err=True)


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
