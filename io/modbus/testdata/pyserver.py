"""Modbus TCP (or RTU-over-TCP) server for the io/modbus integration tests.

Usage: /usr/bin/python3 pyserver.py HOST PORT FRAMER REGS
FRAMER is "socket" (Modbus TCP) or "rtu" (RTU frames over TCP). REGS is a
comma-separated list of holding register values (also served as input
registers) starting at address 0. Runs until killed.
"""
import logging
import sys

from pymodbus.datastore import (ModbusSequentialDataBlock, ModbusServerContext,
                                ModbusSlaveContext)
from pymodbus.server import StartTcpServer
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

logging.basicConfig(level=logging.ERROR)
host, port, framer, regs = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
values = [int(v, 0) for v in regs.split(",")] if regs else []
values += [0] * (200 - len(values))
store = ModbusSlaveContext(
    di=ModbusSequentialDataBlock(0, [0] * 200),
    co=ModbusSequentialDataBlock(0, [0] * 200),
    hr=ModbusSequentialDataBlock(0, list(values)),
    ir=ModbusSequentialDataBlock(0, list(values)),
    zero_mode=True,
)
context = ModbusServerContext(slaves=store, single=True)
StartTcpServer(context=context, address=(host, port),
               framer=ModbusRtuFramer if framer == "rtu" else ModbusSocketFramer)
