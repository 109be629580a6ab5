"""Connects to test.R through the manager (over TCP, from a Ray node), calls it with the
grant it got and without one, prints what it saw (ATTEMPT lines), then serves until stopped."""
from attempts import call, report, runtime_connect
from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    info = ctx.startup
    opened, seen = await runtime_connect(info.component_address, info.token, "test.R")
    if opened is None:
        report("connect", seen, refused_if="never")
    else:
        print(f"provider at {opened.address}", flush=True)
        report("with_grant", await call(opened.address, "/test.R/Echo", opened.grant), refused_if="never")
        report("no_grant", await call(opened.address, "/test.R/Echo"))
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
