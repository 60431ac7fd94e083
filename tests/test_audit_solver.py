"""The audit's HiGHS models are kept for many questions: each question's time limit must count
from its own start (pipeline.disclosure.audit_solver.set_time_limit)."""

from __future__ import annotations

import highspy
import numpy as np

from pipeline.disclosure.audit_solver import _quiet_highs, set_time_limit

LIMIT = 0.02


def _model(integer: bool) -> highspy.Highs:
    highs = _quiet_highs()
    highs.addVars(2, np.zeros(2), np.full(2, 10.0))
    highs.addRow(1.0, highspy.kHighsInf, 2, np.array([0, 1], dtype=np.int32), np.array([1.0, 1.0]))
    if integer:
        highs.changeColsIntegrality(2, np.array([0, 1], dtype=np.int32),
                                    np.array([highspy.HighsVarType.kInteger] * 2))
    return highs


def _statuses(highs: highspy.Highs, whole: bool, fixed: bool, until: float) -> set:
    """Solve again and again, with changing costs, until the model's run clock passes `until`."""
    seen, k = set(), 0
    while highs.getRunTime() < until:
        k += 1
        highs.changeColsCost(2, np.array([0, 1], dtype=np.int32), np.array([float(k % 3), 1.0]))
        if fixed:
            set_time_limit(highs, LIMIT, whole)
        else:
            highs.setOptionValue("time_limit", LIMIT)
        highs.run()
        seen.add(highs.getModelStatus())
    return seen


def test_a_linear_model_solved_many_times_never_runs_out_of_time():
    assert _statuses(_model(False), whole=False, fixed=True, until=5 * LIMIT) == {highspy.HighsModelStatus.kOptimal}


def test_a_mixed_integer_model_solved_many_times_never_runs_out_of_time():
    assert _statuses(_model(True), whole=True, fixed=True, until=5 * LIMIT) == {highspy.HighsModelStatus.kOptimal}


def test_the_installed_highs_counts_a_linear_limit_on_the_models_run_clock():
    """Why set_time_limit exists: a plain limit on a linear model is reached by the sum of its
    runs. If an upgrade of HiGHS changes this, set_time_limit may be simplified."""
    assert highspy.HighsModelStatus.kTimeLimit in _statuses(_model(False), whole=False, fixed=False,
                                                            until=5 * LIMIT)
