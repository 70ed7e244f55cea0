"""decode_bodies: whole chunks when they decode, row by row only where a chunk fails."""

import json

import polars as pl
import pytest

from connections_pipeline.transform import json_bodies
from connections_pipeline.transform.json_bodies import (
    COMPANY_DTYPE,
    INTROSPECTION_DTYPE,
    decode_bodies,
)


def _bodies(*texts: str | None) -> pl.DataFrame:
    return pl.DataFrame(
        {"row": list(range(len(texts))), "body": list(texts)},
        schema={"row": pl.Int64, "body": pl.String},
    )


GOOD = json.dumps({"id": "c-1", "legal_name": "Acme"})
BAD_TEXTS = {
    "not JSON": "{not json",
    "a list": "[1, 2, 3]",
    "a string": '"just text"',
    "a nested object where text is due": json.dumps({"legal_name": {"first": "A"}}),
    "truncated": '{"id": "c-1", "legal_na',
}


def test_good_rows_are_kept_in_order_and_bad_ones_returned_with_a_reason() -> None:
    texts = [
        GOOD,
        BAD_TEXTS["not JSON"],
        json.dumps({"id": "c-2", "legal_name": "Beta"}),
        BAD_TEXTS["a list"],
        json.dumps({"id": "c-3", "legal_name": "Gamma", "extra": [1, {"x": None}]}),
    ]
    good, bad = decode_bodies(_bodies(*texts), COMPANY_DTYPE)

    assert good["row"].to_list() == [0, 2, 4]
    names = good.select(pl.col("decoded").struct.field("legal_name"))["legal_name"].to_list()
    assert names == ["Acme", "Beta", "Gamma"]
    assert bad["row"].to_list() == [1, 3]
    assert bad["body"].to_list() == [texts[1], texts[3]]
    assert all(reason.startswith("malformed body: ") for reason in bad["reason"].to_list())
    assert good.schema["decoded"] == COMPANY_DTYPE


@pytest.mark.parametrize("label", sorted(BAD_TEXTS))
def test_each_kind_of_bad_body_is_isolated(label: str) -> None:
    good, bad = decode_bodies(_bodies(GOOD, BAD_TEXTS[label], GOOD), COMPANY_DTYPE)
    assert good["row"].to_list() == [0, 2]
    assert bad["row"].to_list() == [1]
    assert bad["reason"].item().startswith("malformed body")
    assert len(bad["reason"].item()) <= len("malformed body: ") + 200


def test_order_is_kept_across_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(json_bodies, "CHUNK_ROWS", 3)
    texts = [json.dumps({"id": f"c-{n}", "legal_name": f"N{n}"}) for n in range(10)]
    texts[4] = "nope"
    texts[9] = "[]"
    good, bad = decode_bodies(_bodies(*texts), COMPANY_DTYPE)
    assert good["row"].to_list() == [0, 1, 2, 3, 5, 6, 7, 8]
    assert bad["row"].to_list() == [4, 9]
    ids = good.select(pl.col("decoded").struct.field("id"))["id"].to_list()
    assert ids == [f"c-{n}" for n in (0, 1, 2, 3, 5, 6, 7, 8)]


def test_missing_fields_and_json_null_decode_to_nulls_not_rejections() -> None:
    good, bad = decode_bodies(_bodies("{}", "null", None), COMPANY_DTYPE)
    assert bad.is_empty()
    assert good["row"].to_list() == [0, 1, 2]
    assert good.select(pl.col("decoded").struct.field("id"))["id"].to_list() == [None] * 3


def test_empty_input_gives_typed_empty_outputs() -> None:
    good, bad = decode_bodies(_bodies(), INTROSPECTION_DTYPE)
    assert good.is_empty() and bad.is_empty()
    assert good.schema["decoded"] == INTROSPECTION_DTYPE
    assert bad.schema["reason"] == pl.String
    assert bad.columns == ["row", "body", "reason"]


def test_unicode_and_escapes_survive_decoding() -> None:
    name = 'Crème Brûlée GmbH — 株式会社 "Ω" \\ \U0001f680'
    good, bad = decode_bodies(
        _bodies(json.dumps({"id": "c", "legal_name": name}, ensure_ascii=False)), COMPANY_DTYPE
    )
    assert bad.is_empty()
    assert good.select(pl.col("decoded").struct.field("legal_name")).item() == name


def test_a_custom_column_name_is_decoded_and_named_in_the_reason() -> None:
    frame = pl.DataFrame({"payload": [GOOD, "{"]})
    good, bad = decode_bodies(frame, COMPANY_DTYPE, column="payload")
    assert good.height == 1
    assert bad["reason"].item().startswith("malformed payload: ")
