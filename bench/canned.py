"""A keep-alive HTTP server on loopback that answers every request with the same 48 bytes
of JSON, as fast as one asyncio process can: the upstream for measuring what a client
costs, so the client's own time is most of what is timed.

    python -m bench.canned PORT        # serves until killed
"""

from __future__ import annotations

import asyncio
import sys

BODY = b'{"id": 1, "name": "Aaron Apple", "phone": "99"}\n'
assert len(BODY) == 48
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 48\r\n\r\n" + BODY


async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")  # requests here carry no body
            if not head:
                break
            writer.write(RESPONSE)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError, asyncio.LimitOverrunError):
        pass
    finally:
        writer.close()


async def main(port: int) -> None:
    server = await asyncio.start_server(serve, "127.0.0.1", port, backlog=512)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
