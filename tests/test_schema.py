"""The run document's JSON Schema: generated from the column schema, committed as a file,
and met by every document the tool writes (pure documents, stored fixtures)."""

import json
from pathlib import Path

import pytest

from rnnbench import results, schema
from rnnbench.assemble import run_document

jsonschema = pytest.importorskip("jsonschema")

ROOT = Path(__file__).resolve().parents[1]
FILE = ROOT / "docs" / "schema" / (schema.RUN_SCHEMA.replace("/", "-") + ".schema.json")


def validator():
    return jsonschema.Draft202012Validator(schema.run_json_schema())


def test_committed_file_is_the_generated_schema():
    """`python -m rnnbench.schema` rewrites it; a column change without that fails here."""
    assert json.loads(FILE.read_text()) == schema.run_json_schema()
    jsonschema.Draft202012Validator.check_schema(schema.run_json_schema())


def test_documents_the_tool_writes_meet_it():
    from test_assemble import RUN, exited, job, ok

    docs = [run_document(job(), RUN, exited(ok())), run_document(job(verify=True), RUN, exited(None))]
    docs += results.load_runs(ROOT / "tests" / "fixtures" / "quick-base")
    v = validator()
    for doc in docs:
        stored = json.loads(json.dumps(results.strict(doc), default=str))  # as written to disk
        assert not list(v.iter_errors(stored)), (doc["scenario"], doc["impl"])


@pytest.mark.parametrize("field, value", [("median_s", -1.0), ("median_s", 0), ("steps", 2.5),
                                          ("status", "great"), ("schema", "rnnbench.run/1"),
                                          ("efficiency_pct", -3), ("stable", "yes")])
def test_a_damaged_document_fails_it(field, value):
    doc = results.load_runs(ROOT / "tests" / "fixtures" / "quick-base")[0]
    doc[field] = value
    assert list(validator().iter_errors(doc))
