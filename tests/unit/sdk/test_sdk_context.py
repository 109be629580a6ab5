"""ComponentContext in this process, against the fake manager (run_async with a StartupInfo)."""

import asyncio
import types

import pytest

from component_manager.errors import StorageError
from component_manager.runners.startup import StartupInfo
from component_manager.sdk import ComponentContext, run_async


def _startup(manager, token, **kw):
    return StartupInfo(moniker="/me", instance_id="id", component_address=manager.address,
                       token=token, **kw)


def test_config_is_read_only_and_storage_is_checked(fake_manager):
    seen = {}

    async def main(ctx: ComponentContext):
        cfg = await ctx.config()
        seen["cfg"] = cfg
        with pytest.raises(TypeError):
            cfg["greeting"] = "changed"
        with pytest.raises(StorageError, match="not used by this component"):
            ctx.storage("data")

    async def body():
        manager, server = await fake_manager()
        manager.runs["tok"] = object()
        try:
            return await run_async(main, _startup(manager, "tok"))
        finally:
            await server.stop(None)

    assert asyncio.run(asyncio.wait_for(body(), 20)) == 0
    assert isinstance(seen["cfg"], types.MappingProxyType)
    assert seen["cfg"]["greeting"] == "hey"


def test_an_exception_in_main_is_exit_code_1(fake_manager, capsys):
    async def main(ctx):
        raise ValueError("boom")

    code = asyncio.run(run_async(main, StartupInfo("/me", "id", "", "tok")))
    assert code == 1
    assert "ValueError: boom" in capsys.readouterr().err


def test_stop_callbacks_run_once_and_release_waiters():
    calls = []

    async def main(ctx: ComponentContext):
        async def cb(reason):
            calls.append(reason)
        ctx.on_stop(cb)
        waiter = asyncio.ensure_future(ctx.wait_for_stop())
        await asyncio.gather(ctx._stop("idle", None), ctx._stop("requested", None))
        assert await asyncio.wait_for(waiter, 5) == "idle"

    assert asyncio.run(run_async(main, StartupInfo("/me", "id", "", "tok"))) == 0
    assert calls == ["idle"]
