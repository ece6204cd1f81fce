"""Print the hostile-input figure (cases tried / passed) at the end of the run."""
from __future__ import annotations

from tests.reliability import hostile


def pytest_terminal_summary(terminalreporter, exitstatus, config):  # pytest hook
    tried, passed = hostile.totals()
    if not tried:
        return
    terminalreporter.write_sep("=", "hostile inputs")
    terminalreporter.write_line(f"hostile inputs: {tried} cases tried, {passed} passed")
    for line in hostile.failures()[:50]:
        terminalreporter.write_line(f"  FAILED {line}")
