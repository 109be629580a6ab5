"""Takes memory, 4 MiB at a time (written, so it is really resident), until it is stopped."""
import time

chunks = []
while True:
    chunks.append(bytearray(b"x") * (4 << 20))
    print(f"holding {4 * len(chunks)} MiB", flush=True)
    time.sleep(0.02)
