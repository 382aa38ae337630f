[harddrive-party-web]
title="harddrive-party web UI"
desc="harddrive-party: web UI and HTTP API"
port_forward="no"
dst.ports="3030/tcp"

[harddrive-party-peers]
title="harddrive-party peers"
desc="harddrive-party: peer connections (QUIC)"
port_forward="yes"
dst.ports="3031/udp"

[harddrive-party-mdns]
title="harddrive-party LAN discovery"
desc="harddrive-party: finding peers on the LAN (mDNS)"
port_forward="no"
dst.ports="5353/udp"
