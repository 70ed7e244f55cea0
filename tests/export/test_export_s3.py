"""An `s3://` destination, against moto's S3 server on loopback."""

import csv
import io
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import boto3
import polars as pl
import pytest
from export_helpers import (
    HEADER,
    STATES,
    expected_rows,
    failure_message,
    materialize_states,
    partition_metadata,
    read_with_polars,
    resources,
)
from moto.server import ThreadedMotoServer

from connections_pipeline.export import Destination

CREDENTIAL_VARIABLES = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
)


@pytest.fixture(scope="module")
def s3_endpoint() -> Iterator[str]:
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    try:
        yield f"http://{host}:{port}"
    finally:
        server.stop()


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> pytest.MonkeyPatch:
    """Dummy credentials only; no shared config, and never the instance-metadata address."""
    for name in CREDENTIAL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    return monkeypatch


@pytest.fixture
def bucket(s3_endpoint: str, aws_env: pytest.MonkeyPatch) -> str:
    name = f"drops-{secrets.token_hex(4)}"
    _client(s3_endpoint).create_bucket(Bucket=name)
    return name


def _client(endpoint: str):
    return boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1")


def _objects(endpoint: str, bucket: str) -> dict[str, bytes]:
    client = _client(endpoint)
    listed = client.list_objects_v2(Bucket=bucket).get("Contents", [])
    return {
        item["Key"]: client.get_object(Bucket=bucket, Key=item["Key"])["Body"].read()
        for item in listed
    }


@pytest.mark.slow
def test_all_states_land_in_the_bucket_and_read_back_equal(
    s3_endpoint: str,
    bucket: str,
    aws_env: pytest.MonkeyPatch,
    synced_warehouse_url: str,
    synced_current: pl.DataFrame,
) -> None:
    # The endpoint through botocore's own variable, as a deployment against MinIO would.
    aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    before = datetime.now(UTC).date()
    result = materialize_states(resources(synced_warehouse_url, f"s3://{bucket}/team/daily"))
    after = datetime.now(UTC).date()
    assert result.success
    objects = _objects(s3_endpoint, bucket)
    metadata = partition_metadata(result)
    for state in STATES:
        expected = [HEADER, *expected_rows(synced_current, state)]
        latest = objects[f"team/daily/connections_{state}_latest.csv"]
        dated = {f"team/daily/connections_{state}_{day.isoformat()}.csv" for day in (before, after)}
        [dated_key] = [key for key in objects if key in dated]
        assert objects[dated_key] == latest
        assert list(csv.reader(io.StringIO(latest.decode("utf-8"), newline=""))) == expected
        assert read_with_polars(latest) == expected
        assert metadata[state]["latest_path"] == (
            f"s3://{bucket}/team/daily/connections_{state}_latest.csv"
        )
        assert metadata[state]["dagster/row_count"] == len(expected) - 1
    assert len(objects) == 2 * len(STATES)


def test_endpoint_from_storage_options_and_a_failed_upload_keeps_the_old_object(
    s3_endpoint: str, bucket: str
) -> None:
    destination = Destination(f"s3://{bucket}/prefix", {"endpoint_url": s3_endpoint})
    destination.check()
    destination.write("connections_live_latest.csv", b"old,file\r\n")

    def chunks() -> Iterator[bytes]:
        yield b"new,partial\r\n"
        raise RuntimeError("the data writer failed midway")

    with pytest.raises(RuntimeError, match="midway"):
        destination.write("connections_live_latest.csv", chunks())
    assert _objects(s3_endpoint, bucket) == {"prefix/connections_live_latest.csv": b"old,file\r\n"}


def test_missing_credentials_fail_before_writing_naming_the_setting(
    s3_endpoint: str, bucket: str, aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env.delenv("AWS_ACCESS_KEY_ID")
    aws_env.delenv("AWS_SECRET_ACCESS_KEY")
    result = materialize_states(
        resources(
            f"duckdb:///{tmp_path / 'wh.duckdb'}",
            f"s3://{bucket}/prefix",
            storage_options=f'{{"endpoint_url": "{s3_endpoint}"}}',
        )
    )
    assert not result.success
    message = failure_message(result)
    assert "CONNECTIONS_EXPORT_URL" in message and "credentials" in message
    aws_env.setenv("AWS_ACCESS_KEY_ID", "testing")
    aws_env.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    assert _objects(s3_endpoint, bucket) == {}


def test_missing_bucket_fails_naming_the_setting_and_is_not_created(
    s3_endpoint: str, aws_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    result = materialize_states(
        resources(f"duckdb:///{tmp_path / 'wh.duckdb'}", "s3://no-such-bucket/prefix")
    )
    assert not result.success
    message = failure_message(result)
    assert "CONNECTIONS_EXPORT_URL" in message and "'no-such-bucket' does not exist" in message
    names = [item["Name"] for item in _client(s3_endpoint).list_buckets()["Buckets"]]
    assert "no-such-bucket" not in names


@pytest.mark.slow
def test_the_report_lands_in_the_bucket_beside_the_csvs(
    s3_endpoint: str,
    bucket: str,
    aws_env: pytest.MonkeyPatch,
    synced_warehouse_url: str,
    synced_current: pl.DataFrame,
) -> None:
    import dagster as dg

    from connections_pipeline.assets.report import finch_connections_report

    aws_env.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    result = dg.materialize(
        [finch_connections_report],
        resources=resources(synced_warehouse_url, f"s3://{bucket}/team/daily"),
    )
    assert result.success
    objects = _objects(s3_endpoint, bucket)
    latest = objects["team/daily/connections_report_latest.html"]
    [dated] = [key for key in objects if key.startswith("team/daily/connections_report_2")]
    assert objects[dated] == latest
    live = synced_current.filter(pl.col("state") == "live").height
    assert f'<span class="count" id="count-live">{live}</span>'.encode() in latest
    [materialization] = result.asset_materializations_for_node("finch_connections_report")
    assert materialization.metadata["latest_path"].value == (
        f"s3://{bucket}/team/daily/connections_report_latest.html"
    )
