"""A Modbus TCP server that is not our code: Debian's pymodbus (3.0) with a plain sequential datastore.

Run with Debian's interpreter: /usr/bin/python3 test/modbus/pymodbus_server.py [--size 100]
Prints {"event": "ready", "port": N} once serving on an ephemeral port of 127.0.0.1, then reads commands on
stdin, each answered with one JSON line:
    set <coil|discrete|holding|input> <address> <value>
Exits when stdin closes, so the test that started it takes it along.
"""
import argparse
import asyncio
import json
import sys

from pymodbus.datastore import ModbusSequentialDataBlock, ModbusServerContext, ModbusSlaveContext
from pymodbus.server import StartAsyncTcpServer

# the function code whose table each name means (pymodbus keys its blocks by function code)
TABLES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def say(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--size", type=int, default=100)
    args = parser.parse_args()

    def block():
        return ModbusSequentialDataBlock(0, [0] * args.size)

    # zero_mode: protocol address N is datastore index N (no 1-based shift)
    store = ModbusSlaveContext(co=block(), di=block(), hr=block(), ir=block(), zero_mode=True)
    context = ModbusServerContext(slaves=store, single=True)
    server = await StartAsyncTcpServer(context=context, address=("127.0.0.1", 0), defer_start=True)
    serving = asyncio.create_task(server.serve_forever())
    await server.serving
    port = server.server.sockets[0].getsockname()[1]
    say({"event": "ready", "port": port, "pymodbus": __import__("pymodbus").__version__})

    loop = asyncio.get_running_loop()
    while True:
        line = await loop.run_in_executor(None, sys.stdin.readline)
        if not line:
            break
        cmd = line.strip()
        if not cmd:
            continue
        try:
            word, table, address, value = cmd.split()
            if word != "set" or table not in TABLES:
                raise ValueError("set <coil|discrete|holding|input> <address> <value>")
            store.setValues(TABLES[table], int(address), [int(value)])
            say({"event": "ok", "cmd": cmd})
        except Exception as err:  # answer every command, never die of a typo
            say({"event": "error", "cmd": cmd, "message": str(err)})
    await server.shutdown()
    serving.cancel()


if __name__ == "__main__":
    asyncio.run(main())
