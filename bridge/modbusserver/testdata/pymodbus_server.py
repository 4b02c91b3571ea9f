# Reference Modbus TCP server for the throughput benchmark: pymodbus (Debian
# python3-pymodbus) serving 200 holding registers. Run with /usr/bin/python3.
import sys
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
from pymodbus.server import StartTcpServer

block = ModbusSequentialDataBlock(0, list(range(201)))
store = ModbusSlaveContext(hr=block, zero_mode=True)
context = ModbusServerContext(slaves=store, single=True)
print("listening", flush=True)
StartTcpServer(context=context, address=("127.0.0.1", int(sys.argv[1])))
