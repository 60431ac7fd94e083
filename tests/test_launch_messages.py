"""What `make run` prints when a step fails: the project's own errors as they are (they
name files, rules and tables), any other exception by its class only (its message may
quote a value of the data)."""

from __future__ import annotations

import dagster as dg

from pipeline.defs.warehouse import WarehouseBuildError
from pipeline.launch import failure_messages


@dg.asset
def ours() -> None:
    raise WarehouseBuildError("staging.caf_iris does not exist: materialize stg_caf_iris first")


@dg.asset
def theirs() -> None:
    raise KeyError("value-1234 of a commune")


@dg.asset
def refused() -> None:
    raise dg.Failure(description="BCA2020.xlsx: sheet 'BCA' missing")


def test_a_failed_step_says_what_to_do_and_never_quotes_an_unexpected_message():
    result = dg.materialize([ours, theirs, refused], raise_on_error=False)
    messages = failure_messages(result)
    assert "staging.caf_iris does not exist: materialize stg_caf_iris first" in messages
    assert "theirs: unexpected KeyError (details in the run's logs: make ui)" in messages
    assert any(m.startswith("BCA2020.xlsx: sheet 'BCA' missing") for m in messages)
    assert not any("value-1234" in m or "Error occurred while executing" in m for m in messages)
