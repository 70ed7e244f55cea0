"""Raw bodies as stored: any JSON Finch can send becomes text a frame can hold."""

import json

import polars as pl

from connections_pipeline.sync.extract import RAW_SCHEMA, body_text


def test_non_ascii_stays_readable() -> None:
    data = {"legal_name": "Zoë & Søn, Ltd — 株式会社"}
    assert body_text(data) == json.dumps(data, ensure_ascii=False)


def test_a_lone_surrogate_stays_escaped_and_the_frame_builds() -> None:
    # Regression: json.loads('"\\ud800"') gives a str UTF-8 cannot encode; dumped with
    # ensure_ascii=False it made building the run's raw frame raise UnicodeEncodeError.
    data = json.loads('{"connection_id": "conn-1", "customer_name": "lone \\ud800 high"}')
    text = body_text(data)
    assert "\\ud800" in text
    assert json.loads(text) == data
    frame = pl.DataFrame([{"endpoint": "introspect", "body": text}], schema=RAW_SCHEMA)
    assert frame["body"].to_list() == [text]
