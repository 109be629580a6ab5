"""`cm ui`'s guards, without a server: loopback addresses only, loopback Host headers only."""

import pytest

from component_manager.errors import CmError

pytest.importorskip("starlette", reason="the ui extra (starlette, uvicorn) is not installed")

from component_manager.ui.app import local_host  # noqa: E402
from component_manager.ui.serve import check_loopback  # noqa: E402

pytestmark = pytest.mark.timeout(10)


@pytest.mark.parametrize("header, ok", [
    ("127.0.0.1:8080", True), ("127.0.0.1", True), ("127.9.9.9:1", True), ("[::1]:8080", True), ("[::1]", True),
    ("localhost:8080", True), ("LOCALHOST", True),
    ("", False), ("evil.example", False), ("evil.example:8080", False), ("127.0.0.1.evil.example", False),
    ("10.0.0.1:8080", False), ("[::1", False), ("[2001:db8::1]:80", False)])
def test_only_a_loopback_host_header_is_answered(header, ok):
    assert local_host(header) is ok


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_addresses_are_accepted(host):
    check_loopback(host)


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.168.1.10", "example.com"])
def test_anything_else_is_refused_with_one_line(host):
    with pytest.raises(CmError, match="loopback addresses only"):
        check_loopback(host)
