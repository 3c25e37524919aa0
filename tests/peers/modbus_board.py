#!/usr/bin/env python3
"""A locker lock board simulated with pymodbus (an independent Modbus peer for the e2e tests).

Serves Modbus TCP (--tcp HOST:PORT) or Modbus RTU on a serial line (--rtu /dev/pts/N, e.g.
one end of a socat pty pair). Each unit has coils (lock pulses) and discrete inputs (door and
occupancy sensors). With --spring, a lock coil switched on opens the door input at the same
address, as a sprung door does when its lock releases.

stdout: `READY` once serving, then `coil UNIT ADDR 0|1` for every coil written.
stdin, one command per line:
  door UNIT ADDR 0|1     set a discrete input (a door opened or shut by hand)
  silent UNIT on|off     the unit stops answering (a dead board), or answers again
  corrupt N              the next N answers carry a wrong CRC (RTU only)
Pinned: pymodbus 3.6.9 (.ci/run installs it).
"""

import argparse
import asyncio
import sys
import threading

from pymodbus.datastore import (
    ModbusSequentialDataBlock,
    ModbusServerContext,
    ModbusSlaveContext,
)
from pymodbus.factory import ServerDecoder
from pymodbus.framer import Framer
from pymodbus.framer.rtu_framer import ModbusRtuFramer
from pymodbus.server import ModbusSerialServer, ModbusTcpServer

SIZE = 64


class Coils(ModbusSequentialDataBlock):
    """Coils that report every write and may spring the door at the same address open."""

    def __init__(self, unit, inputs, spring):
        super().__init__(0, [False] * SIZE)
        self.unit = unit
        self.inputs = inputs
        self.spring = spring

    def setValues(self, address, values):
        super().setValues(address, values)
        for i, value in enumerate(values):
            print(f"coil {self.unit} {address + i} {int(bool(value))}", flush=True)
            if value and self.spring:
                self.inputs.setValues(address + i, [True])


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tcp", help="HOST:PORT to serve Modbus TCP on")
    ap.add_argument("--rtu", help="serial device to serve Modbus RTU on")
    ap.add_argument("--baud", type=int, default=9600)
    ap.add_argument("--units", default="1", help="unit ids, comma separated")
    ap.add_argument("--spring", action="store_true")
    args = ap.parse_args()

    units = {}
    slaves = {}
    for unit in (int(u) for u in args.units.split(",")):
        inputs = ModbusSequentialDataBlock(0, [False] * SIZE)
        coils = Coils(unit, inputs, args.spring)
        units[unit] = inputs
        slaves[unit] = ModbusSlaveContext(di=inputs, co=coils, zero_mode=True)
    # A copy: the context's own map loses a unit while it is silent; ours keeps it.
    context = ModbusServerContext(slaves=dict(slaves), single=False)
    state = {"corrupt": 0}
    rtu_framer = ModbusRtuFramer(ServerDecoder())

    def manipulate(response):
        if state["corrupt"] > 0 and args.rtu:
            state["corrupt"] -= 1
            packet = bytearray(rtu_framer.buildPacket(response))
            packet[-1] ^= 0x55
            return bytes(packet), True
        return response, False

    def command(line):
        words = line.split()
        try:
            if words[0] == "door":
                units[int(words[1])].setValues(int(words[2]), [words[3] == "1"])
            elif words[0] == "silent":
                unit = int(words[1])
                if words[2] == "on":
                    context._slaves.pop(unit, None)  # pylint: disable=protected-access
                else:
                    context._slaves[unit] = slaves[unit]  # pylint: disable=protected-access
            elif words[0] == "corrupt":
                state["corrupt"] = int(words[1])
            else:
                raise ValueError(f"unknown command {words[0]!r}")
            print(f"ok {line}", flush=True)
        except (IndexError, KeyError, ValueError) as e:
            print(f"error {line!r}: {e}", flush=True)

    async def serve():
        loop = asyncio.get_running_loop()
        if args.tcp:
            host, port = args.tcp.rsplit(":", 1)
            server = ModbusTcpServer(
                context,
                framer=Framer.SOCKET,
                address=(host, int(port)),
                ignore_missing_slaves=True,
                response_manipulator=manipulate,
            )
        else:
            server = ModbusSerialServer(
                context,
                framer=Framer.RTU,
                port=args.rtu,
                baudrate=args.baud,
                ignore_missing_slaves=True,
                response_manipulator=manipulate,
            )

        def stdin():
            for line in sys.stdin:
                if line.strip():
                    loop.call_soon_threadsafe(command, line.strip())
            loop.call_soon_threadsafe(lambda: asyncio.ensure_future(server.shutdown()))

        threading.Thread(target=stdin, daemon=True).start()
        loop.call_later(0.3, lambda: print("READY", flush=True))
        await server.serve_forever()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
