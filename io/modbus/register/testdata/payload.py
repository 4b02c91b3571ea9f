"""Independent peer for io/modbus/register: pymodbus's payload codec.

Usage: /usr/bin/python3 payload.py < cases.json > results.json

Reads a JSON list of cases {"type", "order", "int" | "float" | "text", "n",
"regs"} and writes one result per case: "regs", the registers pymodbus's
BinaryPayloadBuilder makes of the value, and "int" | "float" | "text", what
BinaryPayloadDecoder reads from the case's "regs" (the Go encoding). Floats
travel as the hex of their IEEE 754 binary64 bits; strings are ASCII.

Orders map to pymodbus as byteorder=Little for BADC/DCBA (bytes swapped in
each register) and wordorder=Little for CDAB/DCBA (registers reversed).
pymodbus ignores both for strings (struct's "s" format has no byte order);
its builder's repack option with byteorder=Little swaps the bytes of every
register, which gives byte-swapped text, and its decoder's 16-bit reads in
byteorder=Little read such text back.
"""
import json
import struct
import sys

from pymodbus.constants import Endian
from pymodbus.payload import BinaryPayloadBuilder, BinaryPayloadDecoder

ADD = {
    "bool": "add_16bit_uint", "int16": "add_16bit_int", "uint16": "add_16bit_uint",
    "int32": "add_32bit_int", "uint32": "add_32bit_uint", "int64": "add_64bit_int",
    "float32": "add_32bit_float", "float64": "add_64bit_float",
}
DECODE = {
    "bool": "decode_16bit_uint", "int16": "decode_16bit_int", "uint16": "decode_16bit_uint",
    "int32": "decode_32bit_int", "uint32": "decode_32bit_uint", "int64": "decode_64bit_int",
    "float32": "decode_32bit_float", "float64": "decode_64bit_float",
}


def orders(order):
    byteorder = Endian.Little if order in ("BADC", "DCBA") else Endian.Big
    wordorder = Endian.Little if order in ("CDAB", "DCBA") else Endian.Big
    return byteorder, wordorder


def from_hex(h):
    return struct.unpack(">d", bytes.fromhex(h))[0]


def to_hex(v):
    return struct.pack(">d", v).hex()


def build(case):
    byteorder, wordorder = orders(case["order"])
    typ = case["type"]
    if typ == "string":
        text = case["text"].encode("ascii").ljust(2 * case["n"], b"\0")
        b = BinaryPayloadBuilder(byteorder=byteorder, wordorder=wordorder,
                                 repack=byteorder == Endian.Little)
        b.add_string(text)
        return b.to_registers()
    b = BinaryPayloadBuilder(byteorder=byteorder, wordorder=wordorder)
    value = from_hex(case["float"]) if typ.startswith("float") else case["int"]
    getattr(b, ADD[typ])(value)
    return b.to_registers()


def decode(case):
    byteorder, wordorder = orders(case["order"])
    typ = case["type"]
    d = BinaryPayloadDecoder.fromRegisters(case["regs"], byteorder=byteorder, wordorder=wordorder)
    if typ == "string":
        if byteorder == Endian.Little:
            raw = b"".join(struct.pack(">H", d.decode_16bit_uint()) for _ in case["regs"])
        else:
            raw = d.decode_string(2 * len(case["regs"]))
        return {"text": raw.split(b"\0", 1)[0].decode("ascii")}
    v = getattr(d, DECODE[typ])()
    if typ.startswith("float"):
        return {"float": to_hex(v)}
    return {"int": v}


def main():
    results = []
    for case in json.load(sys.stdin):
        r = {"regs": build(case)}
        r.update(decode(case))
        results.append(r)
    json.dump(results, sys.stdout)


main()
