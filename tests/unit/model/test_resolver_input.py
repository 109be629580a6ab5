"""The resolver under hostile URLs: only manifests (.cml, .cm), only regular files under the
size limit, only under the package roots; each refusal is one line, at once, and never
echoes a file that is not a manifest."""

import os
import threading
from pathlib import Path

import pytest

from component_manager.errors import UrlError
from component_manager.manifest.limits import MAX_MANIFEST_BYTES
from component_manager.model.resolver import Resolver

SECRET = "root:$6$hash:19000:0:99999:7:::"


@pytest.fixture
def package(tmp_path):
    root = tmp_path / "pkg"
    root.mkdir()
    (root / "ok.cml").write_text("{}")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "other.cml").write_text("{}")
    (outside / "shadow").write_text(SECRET)
    return root, outside


def refused(resolver: Resolver, url: str, timeout: float = 10.0) -> str:
    """Resolve ``url`` in a thread; it must be refused (UrlError) within ``timeout``."""
    outcome = []

    def attempt():
        try:
            resolver.resolve(url)
            outcome.append("accepted")
        except UrlError as e:
            outcome.append(e)
        except BaseException as e:  # noqa: BLE001 - reported below
            outcome.append(f"raised {type(e).__name__}: {e}")

    thread = threading.Thread(target=attempt, daemon=True)
    thread.start()
    thread.join(timeout)
    assert not thread.is_alive(), f"resolving {url!r} blocked"
    assert isinstance(outcome[0], UrlError), outcome[0]
    message = str(outcome[0])
    assert "\n" not in message and "$6$hash" not in message
    return message


def test_a_manifest_under_a_package_root_resolves(package):
    root, _ = package
    assert Resolver([root]).resolve(f"file://{root}/ok.cml").decl.program is None


def test_a_file_that_is_not_a_manifest_is_refused_without_reading_it(package):
    root, outside = package
    assert "not a component manifest" in refused(Resolver([outside]), f"file://{outside}/shadow")
    assert "not a component manifest" in refused(Resolver([Path("/")]), "file:///etc/shadow")


def test_a_manifest_outside_the_package_roots_is_refused(package):
    root, outside = package
    assert "outside the package roots" in refused(Resolver([root]), f"file://{outside}/other.cml")
    assert "outside the package roots" in refused(Resolver([root]), f"file://{root}/../outside/other.cml")


def test_a_symlink_out_of_the_root_is_refused(package):
    root, outside = package
    (root / "link.cml").symlink_to(outside / "other.cml")
    (root / "shadow.cml").symlink_to(outside / "shadow")
    assert "outside the package roots" in refused(Resolver([root]), f"file://{root}/link.cml")
    assert "outside the package roots" in refused(Resolver([root]), f"file://{root}/shadow.cml")


def test_a_fifo_is_refused_at_once(package):
    root, _ = package
    fifo = root / "fifo.cml"
    os.mkfifo(fifo)
    try:
        assert "not a regular file" in refused(Resolver([root]), f"file://{fifo}")
    finally:  # before the fix a reader is stuck in open(): let it go
        try:
            os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        except OSError:
            pass


@pytest.mark.parametrize("device", ["/dev/zero", "/dev/urandom"])
def test_a_device_is_refused_at_once(package, device):
    root, _ = package
    (root / "dev.cml").symlink_to(device)
    assert "not a component manifest" in refused(Resolver([Path("/")]), f"file://{root}/dev.cml")
    assert "not a component manifest" in refused(Resolver([Path("/")]), f"file://{device}")


def test_a_directory_is_refused(package):
    root, _ = package
    (root / "dir.cml").mkdir()
    assert "not a regular file" in refused(Resolver([root]), f"file://{root}/dir.cml")


def test_a_manifest_over_the_size_limit_is_refused(package):
    root, _ = package
    (root / "big.cml").write_text("{" + " " * MAX_MANIFEST_BYTES + "}")
    assert f"larger than {MAX_MANIFEST_BYTES} bytes" in refused(Resolver([root]), f"file://{root}/big.cml")


@pytest.mark.parametrize("url", ["file:///a\0b.cml", "/a\0.cml", "", "file://" + "a" * 5000 + ".cml",
                                 "file:///" + "a/" * 3000 + "x.cml"])
def test_malformed_urls_are_refused(package, url):
    root, _ = package
    message = refused(Resolver([root]), url)
    assert len(message) < 600


def test_an_include_out_of_the_root_is_refused(package):
    root, outside = package
    (root / "inc.cml").write_text('{ include: ["../outside/other.cml"] }')
    assert "outside the package roots" in refused(Resolver([root]), f"file://{root}/inc.cml")


def test_a_cached_url_whose_symlink_turns_out_of_the_root_is_refused(package):
    root, outside = package
    (outside / "other.cml").write_text("{ }")  # the same size as ok.cml would not matter either
    link = root / "link.cml"
    link.symlink_to(root / "ok.cml")
    resolver = Resolver([root])
    resolver.resolve(f"file://{link}")
    link.unlink()
    link.symlink_to(outside / "other.cml")
    assert "outside the package roots" in refused(resolver, f"file://{link}")
