"""The project's own errors: their messages name files, sheets, rows, rules and tables,
never a value of the data (they were written so), and a user can act on them. Any other
exception's message may quote data: a run reports its class only (`pipeline.launch`)."""

from __future__ import annotations


class PipelineError(Exception):
    """Base of every error the project raises on purpose, with a message meant for the user."""


def own_error_names() -> set[str]:
    """The class names of the project's errors (every subclass of PipelineError, loaded)."""
    names, todo = set(), [PipelineError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names
