"""Serves echo.Echo/Echo (raw bytes): replies "<greeting>: <request>", counts calls in LMDB."""

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    greeting = (await ctx.config()).get("greeting", "hello").encode()
    db = ctx.storage("data")

    async def echo(request: bytes, context) -> bytes:
        with db.begin(write=True) as txn:
            txn.put(b"calls", str(int(txn.get(b"calls", b"0")) + 1).encode())
        return greeting + b": " + request

    async def flush(reason: str) -> None:
        db.sync(True)
        print(f"stopping ({reason})", flush=True)

    ctx.serve_unary("echo.Echo", "Echo", echo)
    ctx.on_stop(flush)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
