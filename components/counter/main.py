"""Adds one to b"count" in its storage on each start, prints count=N, runs until stopped."""

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    with ctx.storage("data").begin(write=True) as txn:
        count = int(txn.get(b"count", b"0")) + 1
        txn.put(b"count", str(count).encode())
    print(f"count={count}", flush=True)
    await ctx.serving()  # ready: "serving", so `cm start` returns after the line above
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
