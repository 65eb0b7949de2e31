#!/usr/bin/env python3
"""Writes data/seeds/{main,test,signet,testnet4}.txt from Bitcoin Core's
chainparamsseeds.h (BIP155-serialised fixed seeds).

Usage: contrib/gen-seeds.py PATH/TO/chainparamsseeds.h [OUTDIR] [PER_NETWORK]

Keeps the first PER_NETWORK (default 100) entries of each address network
(IPv4, IPv6, Tor v3, I2P, CJDNS) in Core's order, one `host:port` per line:
`1.2.3.4:8333`, `[2001:db8::1]:8333`, `<56 chars>.onion:8333`,
`<52 chars>.b32.i2p:0`, `[fc00::1]:8333`. strand's `seeds.rs` parses them.
"""
import base64
import hashlib
import ipaddress
import re
import sys

NAMES = {"main": "main", "test": "test", "signet": "signet", "testnet4": "testnet4"}
KINDS = {1: "ipv4", 2: "ipv6", 4: "onion", 5: "i2p", 6: "cjdns"}


def onion_v3(pubkey):
    version = b"\x03"
    checksum = hashlib.sha3_256(b".onion checksum" + pubkey + version).digest()[:2]
    return base64.b32encode(pubkey + checksum + version).decode().lower() + ".onion"


def entries(data):
    i = 0
    while i < len(data):
        net, n = data[i], data[i + 1]
        addr = bytes(data[i + 2 : i + 2 + n])
        port = data[i + 2 + n] << 8 | data[i + 3 + n]
        i += 4 + n
        if net == 1:
            host = str(ipaddress.IPv4Address(addr))
        elif net in (2, 6):
            host = "[" + str(ipaddress.IPv6Address(addr)) + "]"
        elif net == 4:
            host = onion_v3(addr)
        elif net == 5:
            host = base64.b32encode(addr).decode().lower().rstrip("=") + ".b32.i2p"
        else:
            continue
        yield KINDS[net], f"{host}:{port}"


def main():
    header = open(sys.argv[1]).read()
    outdir = sys.argv[2] if len(sys.argv) > 2 else "data/seeds"
    per = int(sys.argv[3]) if len(sys.argv) > 3 else 100
    for name, body in re.findall(r"chainparams_seed_(\w+)\[\] = \{(.*?)\};", header, re.S):
        if name not in NAMES:
            continue
        data = [int(x, 16) for x in re.findall(r"0x([0-9a-fA-F]{2})", body)]
        kept, counts = [], {}
        for kind, line in entries(data):
            if counts.get(kind, 0) < per:
                counts[kind] = counts.get(kind, 0) + 1
                kept.append(line)
        with open(f"{outdir}/{NAMES[name]}.txt", "w") as f:
            f.write(f"# Fixed seeds for {name}, from Bitcoin Core's chainparamsseeds.h\n")
            f.write(f"# by contrib/gen-seeds.py (first {per} per network): {counts}\n")
            f.write("\n".join(kept) + "\n")


main()
