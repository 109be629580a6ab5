"""Spawns `sleep` into a session of its own (as a daemon would), prints daemon=PID, serves."""
import subprocess

from component_manager import sdk


async def main(ctx: sdk.ComponentContext) -> None:
    daemon = subprocess.Popen(["sleep", "600"], start_new_session=True)
    print(f"daemon={daemon.pid}", flush=True)
    await ctx.serving()
    await ctx.wait_for_stop()


if __name__ == "__main__":
    sdk.run(main)
