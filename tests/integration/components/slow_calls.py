"""What burst_client and churn_client share: one call to test.Slow/Call, and the line and
exit code that report how a batch of them went."""
import grpc

RESULT: list[int] = []  # the exit code, once main has reported


async def call(channel) -> str:
    """One call through ``channel``: "OK", or the error's code and details."""
    try:
        await channel.unary_unary("/test.Slow/Call")(b"x", timeout=60)
        return "OK"
    except grpc.aio.AioRpcError as e:
        return f"{e.code().name}: {e.details()}"


def report(results: list[str]) -> None:
    """Print "ok=K failed=F errors=[...]"; the exit code is 0 only if every one succeeded."""
    failed = [r for r in results if r != "OK"]
    print(f"ok={len(results) - len(failed)} failed={len(failed)} errors={sorted(set(failed))[:5]}", flush=True)
    RESULT.append(0 if not failed else 1)


def exit_code(code) -> int:
    return code or (RESULT[0] if RESULT else 99)
