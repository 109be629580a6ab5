"""The log tail the page shows: the end of the file, from a line start, bounded."""

import pytest

pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")

from component_manager.ui.backend import LOG_TAIL_BYTES, _tail  # noqa: E402

pytestmark = pytest.mark.timeout(10)


def test_a_short_log_whole_and_a_long_one_from_a_line_start(tmp_path):
    log = tmp_path / "log"
    log.write_text("count=1\n")
    assert _tail(str(log)) == "count=1\n"
    lines = [f"line {n:06d}" for n in range(LOG_TAIL_BYTES // 5)]
    log.write_text("\n".join(lines) + "\n")
    tail = _tail(str(log))
    assert len(tail.encode()) <= LOG_TAIL_BYTES
    assert tail.startswith("line ") and tail.endswith(lines[-1] + "\n")
    assert _tail(str(tmp_path / "none")) == ""
