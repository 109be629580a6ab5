"""The harness shows why: a program that fails before serving fails the test with its log's
last lines; a child's config can be overridden from the test."""

from __future__ import annotations

from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HERE = Path(__file__).parent
ROOT = HERE.parents[1]
ECHO = str(ROOT / "components" / "echo" / "echo_server.cml")


@pytest.mark.asyncio
async def test_a_program_that_fails_before_serving_shows_its_traceback(realm_builder):
    realm_builder.add_child("bad", url=str(HERE / "components" / "fails_at_once.cml"))
    async with realm_builder.build() as realm:
        with pytest.raises(AssertionError) as error:
            await realm.start("/bad")
        message = str(error.value)
        assert "before it was serving" in message
        assert "the last lines of /bad's log" in message
        assert "RuntimeError: no database configured" in message


@pytest.mark.asyncio
async def test_add_child_overrides_config(realm_builder):
    realm_builder.add_child("server", url=ECHO, config={"greeting": "hey"})
    realm_builder.add_route(protocol="echo.Echo", source="#server", targets=["test"])
    realm_builder.add_route(storage="data", targets=["#server"])
    async with realm_builder.build() as realm:
        assert (await realm.show("/server"))["config"] == {"greeting": "hey"}  # before it runs
        channel = await realm.connect("echo.Echo")
        assert await channel.unary_unary("/echo.Echo/Echo")(b"x") == b"hey: x"


def test_the_factory_and_events_example_of_testing_md(cm_manager_factory, monkeypatch):
    import re
    import textwrap

    monkeypatch.chdir(ROOT)
    guide = (ROOT / "docs" / "testing.md").read_text()
    example = next(b for b in re.findall(r"```python\n(.*?)```", guide, flags=re.S) if "cm_manager_factory" in b)
    scope: dict = {}
    exec(textwrap.dedent(example), scope)  # noqa: S102 - the documented example, run as written
    scope["test_counter_counts"](cm_manager_factory)


@pytest.mark.asyncio
async def test_a_connect_to_a_provider_that_fails_shows_its_traceback(realm_builder):
    realm_builder.add_child("bad", url=str(HERE / "components" / "fails_at_once.cml"))
    realm_builder.add_route(protocol="test.Never", source="#bad", targets=["test"])
    async with realm_builder.build() as realm:
        with pytest.raises(AssertionError) as error:
            await realm.connect("test.Never")
        assert "RuntimeError: no database configured" in str(error.value)
