"""Independent Modbus client (pymodbus) for the io/modbus tests.

Usage: /usr/bin/python3 pyclient.py HOST PORT FRAMER MODE SPEC...
FRAMER is "socket" (Modbus TCP) or "rtu" (RTU frames over TCP). A SPEC is
AREA:ADDR:COUNT (AREA holding, input, coil or discrete), with =V,V,... for
the values MODE watch waits for.

read:  reads every SPEC once and prints one JSON object {SPEC: [values]}.
watch POLL_MS: reads the SPECs, prints "ready" and waits for a line on
       stdin; then reads them every POLL_MS ms until all hold their values
       and prints "safe MS POLLS" (milliseconds since that line, reads
       made), or "timeout" after 10 s.
"""
import json
import sys
import time

from pymodbus.client import ModbusTcpClient
from pymodbus.transaction import ModbusRtuFramer, ModbusSocketFramer

host, port, framer, mode = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
args = sys.argv[5:]
poll_ms = 0
if mode == "watch":
    poll_ms, args = int(args[0]), args[1:]
specs = []
for a in args:
    spec, _, want = a.partition("=")
    area, addr, count = spec.split(":")
    specs.append((spec, area, int(addr), int(count), [int(v) for v in want.split(",")] if want else None))

client = ModbusTcpClient(host, port=port, framer=ModbusRtuFramer if framer == "rtu" else ModbusSocketFramer, timeout=2)
if not client.connect():
    print("cannot connect", flush=True)
    sys.exit(1)


def read(area, addr, count):
    fn = {"holding": client.read_holding_registers, "input": client.read_input_registers,
          "coil": client.read_coils, "discrete": client.read_discrete_inputs}[area]
    r = fn(addr, count, slave=1)
    if r.isError():
        raise RuntimeError("%s %d+%d: %s" % (area, addr, count, r))
    if area in ("coil", "discrete"):
        return [int(b) for b in r.bits[:count]]
    return list(r.registers)


def snapshot():
    return {spec: read(area, addr, count) for spec, area, addr, count, _ in specs}


if mode == "read":
    print(json.dumps(snapshot()), flush=True)
    sys.exit(0)

print("ready", json.dumps(snapshot()), flush=True)
sys.stdin.readline()
start, polls = time.monotonic(), 0
while time.monotonic() - start < 10:
    polls += 1
    now = snapshot()
    if all(want is None or now[spec] == want for spec, _, _, _, want in specs):
        print("safe %.1f %d" % ((time.monotonic() - start) * 1000, polls), json.dumps(now), flush=True)
        sys.exit(0)
    time.sleep(poll_ms / 1000)
print("timeout", json.dumps(snapshot()), flush=True)
