"""Decode, normalize + classify, and validation on one million raw `/introspect` answers.

The raw rows are shaped exactly like the extractor's (`RAW_SCHEMA`, one row per call,
`endpoint="introspect"`, `outcome="ok"`, `body` the JSON text) and their bodies are the
emulator's own payloads (`sandbox.payloads.introspection`) over seeded emulator datasets,
so the mix of statuses, authentication methods, multi-entity and multi-token connections is
the emulator's. One `/providers` row is added, as every extraction has one. The token source
frame comes from the same tokens.

Each measured step runs in a fresh subprocess that first loads its inputs from Parquet, so
its RSS high-water mark (`resource.getrusage`, which also sees Rust allocations) belongs to
that step alone (inputs included; the RSS after loading them is printed beside it):

  (0) decode: the extraction's `IntrospectionDecoder` over every body, in chunks on worker
      threads, as a sync does while the answers arrive; each body is decoded once, here.
  (1) normalize + classify: `build_snapshot` from the decoded introspections (what the
      extraction hands over) with empty previous / previous_tokens / sessions frames;
      rows/s counts raw rows in. The bodies' text is not loaded: the snapshot never reads
      it (it goes to `finch_raw_responses` as received).
  (2) validation: `split_valid(connections, CONNECTIONS_SCHEMA, "connection_key")`; rows/s
      counts snapshot rows in.

Target: (1) >= 300,000 rows/s and <= 1.5 GiB peak RSS at 1,000,000 rows.

    python benchmarks/normalize.py --rows 1000000
    python benchmarks/normalize.py --rows 200000 --profile
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path

import polars as pl

START = datetime(2026, 1, 5, 6, 0, tzinfo=UTC)
CONNECTIONS_PER_CHUNK = 50_000
TARGET_ROWS_PER_SECOND = 300_000
TARGET_PEAK_MIB = 1_536


# --- generation ---------------------------------------------------------------------------


def _generate_chunk(seed: int, connections: int, folder: str) -> tuple[str, str, int]:
    """One seeded emulator dataset rendered as raw `/introspect` rows and token-source rows."""
    from connections_pipeline.finch.fingerprint import token_fingerprint
    from connections_pipeline.sync.raw_rows import RAW_SCHEMA
    from connections_pipeline.transform.token_frame import TOKEN_FRAME_SCHEMA
    from finch_sandbox import payloads
    from finch_sandbox.dataset import generate_dataset

    data = generate_dataset(seed, connections, START)
    raw: dict[str, list] = {name: [] for name in RAW_SCHEMA}
    source: dict[str, list] = {name: [] for name in TOKEN_FRAME_SCHEMA}
    for number, token in enumerate(data.tokens.values()):
        connection = data.connections[token.connection_id]
        fingerprint = token_fingerprint(token.access_token)
        body = payloads.introspection(token, connection, data.client_id)
        raw["run_id"].append("bench-run")
        raw["endpoint"].append("introspect")
        raw["token_fingerprint"].append(fingerprint)
        raw["connection_id"].append(body["connection_id"])
        raw["fetched_at"].append(START)
        raw["outcome"].append("ok")
        raw["status_code"].append(200)
        raw["error_name"].append(None)
        raw["finch_code"].append(None)
        raw["request_id"].append(f"req-{seed}-{number}")
        raw["body"].append(json.dumps(body, ensure_ascii=False))
        source["token_fingerprint"].append(fingerprint)
        source["source_connection_id"].append(token.connection_id)
        source["source_disconnected"].append(connection.disconnected)
        source["issued_at"].append(token.issued_at)
    # Columns the loop above does not know (added to the schemas since) stay null, so the
    # generator keeps up with RAW_SCHEMA and TOKEN_FRAME_SCHEMA as they grow.
    for columns in (raw, source):
        for values in columns.values():
            values.extend([None] * (len(raw["body"]) - len(values)))
    raw_path = str(Path(folder) / f"raw_{seed}.parquet")
    source_path = str(Path(folder) / f"source_{seed}.parquet")
    pl.DataFrame(raw, schema=RAW_SCHEMA).write_parquet(raw_path)
    pl.DataFrame(source, schema=TOKEN_FRAME_SCHEMA).write_parquet(source_path)
    return raw_path, source_path, len(raw["body"])


def generate(rows: int, folder: Path, workers: int) -> tuple[int, float]:
    """Write raw.parquet and token_source.parquet with exactly `rows` introspect rows."""
    from connections_pipeline.sync.raw_rows import RAW_SCHEMA
    from finch_sandbox.providers import PROVIDERS_BODY

    # About 1.3 tokens per connection in the emulator's mix; a spare chunk covers the rest.
    chunks = math.ceil(rows / (CONNECTIONS_PER_CHUNK * 1.25)) + 1
    parts = folder / "parts"
    parts.mkdir(exist_ok=True)
    with ProcessPoolExecutor(workers, mp_context=get_context("spawn")) as pool:
        futures = [
            pool.submit(_generate_chunk, 1000 + index, CONNECTIONS_PER_CHUNK, str(parts))
            for index in range(chunks)
        ]
        results = [future.result() for future in futures]
    introspect = pl.concat([pl.read_parquet(raw) for raw, _, _ in results]).head(rows)
    if introspect.height < rows:
        raise RuntimeError(f"generated only {introspect.height} rows; raise the chunk count")
    source = pl.concat([pl.read_parquet(path) for _, path, _ in results])
    source = source.join(introspect.select("token_fingerprint"), on="token_fingerprint", how="semi")
    providers = pl.DataFrame(
        [
            {
                "run_id": "bench-run",
                "endpoint": "providers",
                "token_fingerprint": None,
                "connection_id": None,
                "fetched_at": START,
                "outcome": "ok",
                "status_code": 200,
                "error_name": None,
                "finch_code": None,
                "request_id": "req-providers",
                "body": PROVIDERS_BODY.decode(),
                "failure_reason": None,
            }
        ],
        schema=RAW_SCHEMA,
    )
    raw = pl.concat([providers, introspect])
    raw.write_parquet(folder / "raw.parquet")
    source.write_parquet(folder / "token_source.parquet")
    mean_body = float(introspect["body"].str.len_bytes().mean())
    return introspect.height, mean_body


# --- measured steps (each in a fresh subprocess) ---------------------------------------------


def _rss_now_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _inputs(folder: Path):
    """The snapshot's inputs: raw rows without the `/introspect` bodies, already decoded."""
    from connections_pipeline.transform.snapshot import SnapshotInputs
    from connections_pipeline.warehouse import CONNECT_SESSIONS, CONNECTIONS, TOKENS, empty_frame

    raw = pl.read_parquet(folder / "snapshot_raw.parquet")
    token_source = pl.read_parquet(folder / "token_source.parquet")
    inputs = SnapshotInputs(
        run_id="bench-run",
        as_of=START,
        raw=raw,
        token_source=token_source,
        previous=empty_frame(CONNECTIONS),
        previous_tokens=empty_frame(TOKENS),
        sessions=empty_frame(CONNECT_SESSIONS),
    )
    decoded = (
        pl.read_parquet(folder / "introspections.parquet"),
        pl.read_parquet(folder / "rejected.parquet"),
    )
    return inputs, decoded


def step_decode(folder: Path) -> dict:
    import asyncio

    from connections_pipeline.sync.decoding import IntrospectionDecoder

    raw = pl.read_parquet(folder / "raw.parquet")
    introspect = pl.col("endpoint") == "introspect"
    # What the snapshot is handed: the raw rows, the decoded bodies' text left out.
    raw.with_columns(pl.when(~introspect).then(pl.col("body")).alias("body")).write_parquet(
        folder / "snapshot_raw.parquet"
    )
    rows = raw.filter(introspect).to_dicts()
    del raw
    loaded_mb, loaded_peak_mb = _rss_now_mb(), _peak_mb()

    async def decode_all() -> tuple[pl.DataFrame, pl.DataFrame]:
        decoder = IntrospectionDecoder()
        for row in rows:
            decoder.add(row)
        return await decoder.decoded()

    started = time.perf_counter()
    cpu_started = time.process_time()
    introspections, rejected = asyncio.run(decode_all())
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu_started
    peak = _peak_mb()
    introspections.write_parquet(folder / "introspections.parquet")
    rejected.write_parquet(folder / "rejected.parquet")
    return {
        "rows_in": len(rows),
        "seconds": elapsed,
        "cpu_seconds": cpu,
        "rejected": rejected.height,
        "loaded_rss_mb": loaded_mb,
        "loaded_peak_mb": loaded_peak_mb,
        "peak_rss_mb": peak,
    }


def step_normalize(folder: Path) -> dict:
    from connections_pipeline.transform.snapshot import build_snapshot
    from connections_pipeline.warehouse import CONNECTIONS_COLUMNS

    columns = [column.name for column in CONNECTIONS_COLUMNS]
    inputs, decoded = _inputs(folder)
    rows_in = inputs.raw.filter(pl.col("endpoint") == "introspect").height
    loaded_mb, loaded_peak_mb = _rss_now_mb(), _peak_mb()
    started = time.perf_counter()
    snapshot = build_snapshot(inputs, columns, decoded)
    elapsed = time.perf_counter() - started
    peak = _peak_mb()
    snapshot.connections.write_parquet(folder / "connections.parquet")
    return {
        "rows_in": rows_in,
        "seconds": elapsed,
        "rows_out": snapshot.connections.height,
        "states": dict(snapshot.connections["state"].value_counts().iter_rows()),
        "entities": snapshot.entities.height,
        "rejected": snapshot.rejected.height,
        "loaded_rss_mb": loaded_mb,
        "loaded_peak_mb": loaded_peak_mb,
        "peak_rss_mb": peak,
    }


def step_validate(folder: Path) -> dict:
    from connections_pipeline.transform.schemas import CONNECTIONS_SCHEMA
    from connections_pipeline.transform.validate import split_valid

    connections = pl.read_parquet(folder / "connections.parquet")
    loaded_mb, loaded_peak_mb = _rss_now_mb(), _peak_mb()
    started = time.perf_counter()
    outcome = split_valid(connections, CONNECTIONS_SCHEMA, "connection_key")
    elapsed = time.perf_counter() - started
    return {
        "rows_in": connections.height,
        "seconds": elapsed,
        "valid": outcome.valid.height,
        "quarantined": outcome.quarantined.height,
        "failed_checks": outcome.failed_checks,
        "loaded_rss_mb": loaded_mb,
        "loaded_peak_mb": loaded_peak_mb,
        "peak_rss_mb": _peak_mb(),
    }


def step_profile(folder: Path) -> dict:
    """Time build_snapshot's stages one by one, the way it calls them."""
    from connections_pipeline.transform import parse, snapshot
    from connections_pipeline.transform.sessions import session_progress, staged_rows
    from connections_pipeline.warehouse import CONNECTIONS_COLUMNS

    inputs, (parsed, _) = _inputs(folder)
    timings: dict[str, float] = {}

    def clock(name, function, *args):
        started = time.perf_counter()
        result = function(*args)
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - started
        return result

    as_of = pl.lit(inputs.as_of).cast(parse.UTC_DATETIME)
    introspections, others = snapshot.split_by_application(parsed, inputs.application)
    providers = parse.parse_providers(inputs.raw)
    companies = parse.parse_companies(inputs.raw)
    tokens = clock(
        "_token_outcomes", snapshot._token_outcomes, inputs, introspections, others, as_of
    )
    live = clock(
        "_live_connections",
        snapshot._live_connections,
        inputs,
        introspections,
        tokens,
        providers,
        companies,
    )
    carried = clock(
        "_carried_forward", snapshot._carried_forward, inputs, live, tokens, providers, companies
    )
    connections = pl.concat([live, carried], how="diagonal_relaxed")
    progress = clock("session_progress", session_progress, inputs.sessions, connections, START)
    staged = clock("staged_rows", staged_rows, progress, inputs.previous, providers)
    connections = pl.concat([connections, staged], how="diagonal_relaxed")
    connections = clock("_with_session_links", snapshot._with_session_links, connections, progress)
    connections = clock(
        "_with_derived_columns", snapshot._with_derived_columns, connections, inputs, as_of
    )
    columns = [column.name for column in CONNECTIONS_COLUMNS]
    clock("_conform + sort", lambda: snapshot._conform(connections, columns).sort("connection_key"))
    clock("_entities", snapshot._entities, introspections, live, inputs.run_id)
    return {"rows_in": introspections.height, "timings": timings}


STEPS = {
    "decode": step_decode,
    "normalize": step_normalize,
    "validate": step_validate,
    "profile": step_profile,
}


def run_step(step: str, folder: Path) -> dict:
    """Run one step in a fresh interpreter; it prints one JSON line."""
    command = [sys.executable, __file__, "--step", step, "--folder", str(folder)]
    completed = subprocess.run(command, check=True, capture_output=True, text=True)
    return json.loads(completed.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", action="store_true", help="also time each stage")
    parser.add_argument("--folder", help="reuse generated inputs in this folder")
    parser.add_argument("--step", choices=sorted(STEPS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.step:
        print(json.dumps(STEPS[args.step](Path(args.folder)), default=str))
        return
    with tempfile.TemporaryDirectory(prefix="normalize-bench-") as scratch:
        folder = Path(args.folder or scratch)
        folder.mkdir(parents=True, exist_ok=True)
        if not (folder / "raw.parquet").exists():
            started = time.perf_counter()
            rows, mean_body = generate(args.rows, folder, args.workers)
            print(
                f"generated {rows:,} raw /introspect rows (mean body {mean_body:,.0f} bytes) "
                f"in {time.perf_counter() - started:.1f} s"
            )
        _report(folder, args.profile)


def _report(folder: Path, profile: bool) -> None:
    decode = run_step("decode", folder)
    print(f"(0) decode (IntrospectionDecoder, {decode['rows_in']:,} bodies, once each)")
    per_body_us = decode["cpu_seconds"] / decode["rows_in"] * 1e6
    print(f"      time {decode['seconds']:8.2f} s   "
          f"{decode['rows_in'] / decode['seconds']:12,.0f} bodies/s   "
          f"CPU {decode['cpu_seconds']:.2f} s ({per_body_us:.1f} us a body), "
          f"{decode['rejected']:,} rejected")  # fmt: skip
    print(f"      RSS after loading inputs {decode['loaded_rss_mb']:8,.0f} MiB   "
          f"peak RSS {decode['peak_rss_mb']:8,.0f} MiB")  # fmt: skip
    normalize = run_step("normalize", folder)
    rate = normalize["rows_in"] / normalize["seconds"]
    verdict = "OK" if rate >= TARGET_ROWS_PER_SECOND else "MISSED"
    memory = "OK" if normalize["peak_rss_mb"] <= TARGET_PEAK_MIB else "MISSED"
    print(f"(1) normalize + classify (build_snapshot), {normalize['rows_in']:,} raw rows")
    print(f"      time {normalize['seconds']:8.2f} s   {rate:12,.0f} rows/s   "
          f"(target >= {TARGET_ROWS_PER_SECOND:,}: {verdict})")  # fmt: skip
    print(f"      out: {normalize['rows_out']:,} connections {normalize['states']}, "
          f"{normalize['entities']:,} entities, {normalize['rejected']:,} rejected")  # fmt: skip
    print(f"      RSS after loading inputs {normalize['loaded_rss_mb']:8,.0f} MiB   "
          f"peak RSS {normalize['peak_rss_mb']:8,.0f} MiB   "
          f"(target <= {TARGET_PEAK_MIB:,} MiB at 1,000,000 rows: {memory})")  # fmt: skip
    validate = run_step("validate", folder)
    rate = validate["rows_in"] / validate["seconds"]
    print(f"(2) validation (split_valid, CONNECTIONS_SCHEMA), {validate['rows_in']:,} rows")
    print(f"      time {validate['seconds']:8.2f} s   {rate:12,.0f} rows/s   "
          f"valid {validate['valid']:,}, quarantined {validate['quarantined']:,} "
          f"{validate['failed_checks'] or ''}")  # fmt: skip
    print(f"      RSS after loading inputs {validate['loaded_rss_mb']:8,.0f} MiB   "
          f"peak RSS {validate['peak_rss_mb']:8,.0f} MiB")  # fmt: skip
    if profile:
        result = run_step("profile", folder)
        print(f"profile of build_snapshot's stages ({result['rows_in']:,} introspections):")
        for name, seconds in result["timings"].items():
            print(f"      {seconds:8.2f} s  {name}")


if __name__ == "__main__":
    main()
