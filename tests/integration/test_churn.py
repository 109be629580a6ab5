"""A short kill -9 churn (the long one: ``tools/soak.py``): counters are created, started,
stopped and destroyed by three clients while the manager is killed with -9 four times."""

from __future__ import annotations

import pytest

from component_manager.testing.chaos import churn

pytestmark = pytest.mark.integration


def test_kill9_churn_loses_nothing_and_runs_nothing_twice(manager_dir):
    report = churn(manager_dir, kills=4, workers=3, seed=13, log=lambda line: None)
    assert report.kills == 4 and report.ops > 0
    assert report.problems() == [], str(report)
