"""Opens N keep-alive connections to HOST:PORT, sends one GET on each and reads its
answer, then holds them all idle: prints "ready" once they are all open, and closes
them when stdin closes (or after HOLD seconds). For the memory-per-idle-connection
figure of bench/run."""
import asyncio
import sys


async def one(host, port, path, conns, sem):
    async with sem:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(f"GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n".encode())
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        await reader.readexactly(length)
        conns.append(writer)


async def main(host, port, path, n, hold):
    sem = asyncio.Semaphore(256)
    conns = []
    await asyncio.gather(*(one(host, port, path, conns, sem) for _ in range(n)))
    print("ready", len(conns), flush=True)
    loop = asyncio.get_running_loop()
    done = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(done, hold)
    except asyncio.TimeoutError:
        pass
    for w in conns:
        w.close()


if __name__ == "__main__":
    host, port, path, n, hold = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    asyncio.run(main(host, port, path, n, hold))
