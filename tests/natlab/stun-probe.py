#!/usr/bin/env python3
"""Small UDP probe for the NAT lab (tests/natlab/natlab.sh); standard library only.

All work happens on ONE UDP socket bound to --bind/--port, so every probe in a
single run leaves through the same local endpoint (that is what makes "same
mapping seen by two STUN servers" meaningful).  Steps run in this order:

  1. --natpmp GW       NAT-PMP public-address request (RFC 6886, opcode 0) to GW:5351;
                       prints  "natpmp public <ip>"
  2. --natpmp-map GW   the same, then a UDP mapping request for the local port
                       (suggested external port = local port, --lifetime seconds);
                       prints  "natpmp map udp <local-port> <public-ip>:<external-port> <lifetime>"
  3. SERVER[:PORT]...  an RFC 5389 Binding request to each STUN server (port 3478
                       by default); prints per server
                       "stun <server-ip>:<server-port> <mapped-ip>:<mapped-port>"
                       (from XOR-MAPPED-ADDRESS, or MAPPED-ADDRESS if absent)
  4. --send IP:PORT    sends one datagram (--payload) and prints "sent <ip>:<port>"
  5. --listen SECONDS  waits for one datagram that is not a STUN response;
                       prints "recv <ip>:<port> <len>" or "recv none"

Before any of that it prints "local <ip>:<port>" (the socket's bound address).
Output is flushed line by line so a caller can read it while --listen waits.

Exit status: 0 success; 1 a STUN server or the NAT-PMP gateway did not answer
(or answered with an error); 3 --listen received nothing; 64 bad usage.

Examples (inside the lab's namespaces):
  stun-probe.py -p 40000 203.0.113.2 203.0.113.3
  stun-probe.py -p 40001 --natpmp-map 198.18.4.1 --listen 3
  stun-probe.py -b 203.0.113.1 --send 203.0.113.11:40000
"""

import argparse
import os
import select
import socket
import struct
import sys
import time

MAGIC = 0x2112A442
BINDING_REQUEST = 0x0001
BINDING_SUCCESS = 0x0101
ATTR_MAPPED_ADDRESS = 0x0001
ATTR_XOR_MAPPED_ADDRESS = 0x0020
ATTR_XOR_MAPPED_ADDRESS_OLD = 0x8020  # pre-RFC 5389 servers
NATPMP_PORT = 5351


def out(line):
    print(line, flush=True)


def hostport(text, default_port):
    if ":" in text:
        host, port = text.rsplit(":", 1)
        return host, int(port)
    return text, default_port


def is_stun_response(data):
    if len(data) < 20:
        return False
    mtype, _length, cookie = struct.unpack("!HHI", data[:8])
    return cookie == MAGIC and (mtype & 0x0110) == 0x0100  # success or error response


def parse_binding_response(data, txid):
    """Returns (ip, port) from a Binding success response, or None."""
    if len(data) < 20:
        return None
    mtype, length, cookie = struct.unpack("!HHI", data[:8])
    if cookie != MAGIC or data[8:20] != txid or mtype != BINDING_SUCCESS:
        return None
    xor_addr = None
    plain_addr = None
    pos = 20
    end = min(len(data), 20 + length)
    while pos + 4 <= end:
        atype, alen = struct.unpack("!HH", data[pos:pos + 4])
        value = data[pos + 4:pos + 4 + alen]
        if atype in (ATTR_XOR_MAPPED_ADDRESS, ATTR_XOR_MAPPED_ADDRESS_OLD, ATTR_MAPPED_ADDRESS) \
                and len(value) >= 8 and value[1] == 0x01:  # IPv4
            port = struct.unpack("!H", value[2:4])[0]
            raw = struct.unpack("!I", value[4:8])[0]
            if atype == ATTR_MAPPED_ADDRESS:
                plain_addr = (socket.inet_ntoa(struct.pack("!I", raw)), port)
            else:
                port ^= MAGIC >> 16
                raw ^= MAGIC
                xor_addr = (socket.inet_ntoa(struct.pack("!I", raw)), port)
        pos += 4 + alen + ((4 - alen % 4) % 4)
    return xor_addr or plain_addr


def request(sock, dest, payload, accept, timeout, pending):
    """Sends payload to dest every 0.5 s until accept(data, addr) returns
    non-None or timeout passes.  Datagrams that are not accepted are kept in
    `pending` (a caller listening later may be waiting for one of them)."""
    deadline = time.monotonic() + timeout
    next_send = 0.0
    while True:
        now = time.monotonic()
        if now >= deadline:
            return None
        if now >= next_send:
            sock.sendto(payload, dest)
            next_send = now + 0.5
        ready, _, _ = select.select([sock], [], [], max(0.0, min(deadline, next_send) - now))
        if not ready:
            continue
        try:
            data, addr = sock.recvfrom(2048)
        except ConnectionRefusedError:  # an ICMP error from an earlier send
            continue
        result = accept(data, addr)
        if result is not None:
            return result
        pending.append((data, addr))


def stun(sock, server, timeout, pending):
    txid = os.urandom(12)
    req = struct.pack("!HHI", BINDING_REQUEST, 0, MAGIC) + txid
    return request(sock, server, req, lambda d, a: parse_binding_response(d, txid), timeout, pending)


def natpmp_public(sock, gateway, timeout, pending):
    def accept(data, addr):
        if addr[0] != gateway[0] or len(data) < 12:
            return None
        version, op, result = struct.unpack("!BBH", data[:4])
        if version != 0 or op != 128:
            return None
        if result != 0:
            return ("error", result)
        return ("ok", socket.inet_ntoa(data[8:12]))
    return request(sock, gateway, struct.pack("!BB", 0, 0), accept, timeout, pending)


def natpmp_map_udp(sock, gateway, local_port, lifetime, timeout, pending):
    def accept(data, addr):
        if addr[0] != gateway[0] or len(data) < 16:
            return None
        version, op, result = struct.unpack("!BBH", data[:4])
        if version != 0 or op != 129:
            return None
        _epoch, internal, external, granted = struct.unpack("!IHHI", data[4:16])
        if internal != local_port:
            return None
        if result != 0:
            return ("error", result)
        return ("ok", external, granted)
    req = struct.pack("!BBHHHI", 0, 1, 0, local_port, local_port, lifetime)
    return request(sock, gateway, req, accept, timeout, pending)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n", 1)[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("servers", nargs="*", metavar="SERVER[:PORT]", help="STUN servers (port 3478 by default)")
    ap.add_argument("-b", "--bind", default="0.0.0.0", help="local address (default 0.0.0.0)")
    ap.add_argument("-p", "--port", type=int, default=0, help="local UDP port (default: any)")
    ap.add_argument("-t", "--timeout", type=float, default=2.0, help="seconds to wait per request (default 2)")
    ap.add_argument("--natpmp", metavar="GW", help="NAT-PMP public address request to GW:5351")
    ap.add_argument("--natpmp-map", metavar="GW", help="NAT-PMP public address + UDP mapping of the local port")
    ap.add_argument("--lifetime", type=int, default=120, help="NAT-PMP mapping lifetime (default 120 s)")
    ap.add_argument("--send", metavar="IP:PORT", help="send one datagram there")
    ap.add_argument("--payload", default="natlab-probe", help="the datagram --send sends")
    ap.add_argument("--listen", type=float, metavar="SECONDS", help="wait for one non-STUN datagram")
    args = ap.parse_args()
    if not (args.servers or args.natpmp or args.natpmp_map or args.send or args.listen is not None):
        ap.print_usage(sys.stderr)
        return 64

    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((args.bind, args.port))
    local_ip, local_port = sock.getsockname()
    out(f"local {local_ip}:{local_port}")
    pending = []
    status = 0

    gw_name = args.natpmp_map or args.natpmp
    if gw_name:
        gateway = (gw_name, NATPMP_PORT)
        pub = natpmp_public(sock, gateway, args.timeout, pending)
        if pub is None:
            out(f"natpmp public none (no answer from {gw_name}:{NATPMP_PORT})")
            return 1
        if pub[0] == "error":
            out(f"natpmp public error {pub[1]}")
            return 1
        public_ip = pub[1]
        out(f"natpmp public {public_ip}")
        if args.natpmp_map:
            res = natpmp_map_udp(sock, gateway, local_port, args.lifetime, args.timeout, pending)
            if res is None:
                out(f"natpmp map udp {local_port} none (no answer)")
                return 1
            if res[0] == "error":
                out(f"natpmp map udp {local_port} error {res[1]}")
                return 1
            out(f"natpmp map udp {local_port} {public_ip}:{res[1]} {res[2]}")

    for text in args.servers:
        server = hostport(text, 3478)
        mapped = stun(sock, server, args.timeout, pending)
        if mapped is None:
            out(f"stun {server[0]}:{server[1]} none")
            status = 1
        else:
            out(f"stun {server[0]}:{server[1]} {mapped[0]}:{mapped[1]}")

    if args.send:
        dest = hostport(args.send, 0)
        sock.sendto(args.payload.encode(), dest)
        out(f"sent {dest[0]}:{dest[1]}")

    if args.listen is not None:
        got = None
        for data, addr in pending:
            if not is_stun_response(data):
                got = (data, addr)
                break
        deadline = time.monotonic() + args.listen
        while got is None:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            ready, _, _ = select.select([sock], [], [], left)
            if not ready:
                continue
            try:
                data, addr = sock.recvfrom(2048)
            except ConnectionRefusedError:
                continue
            if not is_stun_response(data):
                got = (data, addr)
        if got is None:
            out("recv none")
            return status or 3
        out(f"recv {got[1][0]}:{got[1][1]} {len(got[0])}")
    return status


if __name__ == "__main__":
    sys.exit(main())
