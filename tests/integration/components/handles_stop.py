"""Handles OnStop: flushes, then exits 0 of its own accord."""
from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    stopped = []
    ctx.on_stop(lambda reason: _remember(stopped, reason))
    await ctx.serving()
    await ctx.wait_for_stop()
    print(f"stopped cleanly: {stopped}", flush=True)


async def _remember(stopped: list, reason: str) -> None:
    stopped.append(reason)


if __name__ == "__main__":
    sdk.run(main)
