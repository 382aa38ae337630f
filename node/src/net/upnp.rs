//! Asking the home router for a port mapping with UPnP IGD, for routers
//! that do not speak NAT-PMP (many ISP boxes).
//!
//! The three steps, each bounded in time and size: an SSDP search on the
//! LAN ([`SEARCH_TIME`], answers of at most [`MAX_SSDP`] bytes) that only
//! believes a description URL on the answering device's own address; the
//! device description over HTTP ([`MAX_HTTP`] bytes), where the first
//! `WANIPConnection` or `WANPPPConnection` service gives the control URL;
//! then SOAP calls (`GetExternalIPAddress`, `AddPortMapping`,
//! `DeletePortMapping`). The router is on our LAN but still only a peer on
//! the network: every answer is parsed with limits and without panics.
//!
//! Written here rather than taken from a crate: the client is small, needs
//! only tokio's TCP and UDP, and keeps the binary free of an XML library.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// How long the SSDP search listens for answers.
pub const SEARCH_TIME: Duration = Duration::from_secs(2);
/// Largest SSDP answer looked at.
pub const MAX_SSDP: usize = 2048;
/// Largest HTTP response read from the router.
pub const MAX_HTTP: usize = 64 * 1024;
/// Longest one HTTP exchange with the router may take.
pub const HTTP_TIMEOUT: Duration = Duration::from_secs(4);
const SSDP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(239, 255, 255, 250), 1900);
const SERVICES: [&str; 3] = [
    "urn:schemas-upnp-org:service:WANIPConnection:2",
    "urn:schemas-upnp-org:service:WANIPConnection:1",
    "urn:schemas-upnp-org:service:WANPPPConnection:1",
];

/// Why UPnP gave no mapping.
#[derive(Debug, thiserror::Error)]
pub enum UpnpError {
    #[error("no UPnP internet gateway answered")]
    NoGateway,
    #[error("the gateway's description names no WAN connection service")]
    NoService,
    #[error("the gateway answered HTTP {0}")]
    Http(u16),
    #[error("the gateway refused: UPnP error {0}")]
    Refused(u16),
    #[error("malformed answer from the gateway")]
    Malformed,
    #[error("the gateway did not answer in time")]
    Timeout,
    #[error("cannot talk to the gateway: {0}")]
    Io(#[from] std::io::Error),
}

/// A gateway's WAN connection service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gateway {
    pub addr: SocketAddrV4,
    pub control_path: String,
    pub service: String,
}

/// A mapping the gateway granted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mapping {
    pub gateway: Gateway,
    pub external: SocketAddrV4,
    pub internal: SocketAddrV4,
    /// 0: permanent (the router did not take a lease time).
    pub lease: Duration,
}

/// The `M-SEARCH` for internet gateways.
fn search_request() -> String {
    format!(
        "M-SEARCH * HTTP/1.1\r\nHOST: {SSDP}\r\nMAN: \"ssdp:discover\"\r\nMX: 2\r\n\
         ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n\r\n"
    )
}

/// The description URL in an SSDP answer from `from`, if it points at `from`.
pub fn parse_ssdp(answer: &[u8], from: IpAddr) -> Option<(SocketAddrV4, String)> {
    if answer.len() > MAX_SSDP {
        return None;
    }
    let text = std::str::from_utf8(answer).ok()?;
    let location = text.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.trim().eq_ignore_ascii_case("location").then(|| v.trim())
    })?;
    let (addr, path) = split_url(location)?;
    (IpAddr::V4(*addr.ip()) == from).then_some((addr, path))
}

/// `http://IP:PORT/path` → (address, path). Host names are refused: the
/// gateway is addressed by IP.
pub fn split_url(url: &str) -> Option<(SocketAddrV4, String)> {
    let rest = url.strip_prefix("http://")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr = match host.parse::<SocketAddrV4>() {
        Ok(a) => a,
        Err(_) => SocketAddrV4::new(host.parse().ok()?, 80),
    };
    Some((addr, path.to_owned()))
}

/// The text between `<tag>` and `</tag>` (the first, after `from`), namespace
/// prefixes on the tag allowed.
fn element<'a>(xml: &'a str, tag: &str, from: usize) -> Option<(&'a str, usize)> {
    let mut i = from;
    loop {
        let open = i + xml.get(i..)?.find('<')?;
        let close = open + xml.get(open..)?.find('>')?;
        let name = &xml[open + 1..close];
        let local = name.split_whitespace().next().unwrap_or("").rsplit(':').next().unwrap_or("");
        if local == tag && !name.starts_with('/') {
            let body_start = close + 1;
            let end_rel = xml.get(body_start..)?.find("</")?;
            return Some((xml[body_start..body_start + end_rel].trim(), body_start + end_rel));
        }
        i = close + 1;
    }
}

/// The control URL path and service type of the first WAN connection
/// service in a device description.
pub fn parse_description(xml: &str) -> Option<(String, String)> {
    let mut at = 0;
    while let Some((service, end)) = element(xml, "serviceType", at) {
        if SERVICES.contains(&service) {
            let (control, _) = element(xml, "controlURL", end)?;
            let path = match split_url(control) {
                Some((_, p)) => p,
                None if control.starts_with('/') => control.to_owned(),
                None => format!("/{control}"),
            };
            return Some((path, service.to_owned()));
        }
        at = end;
    }
    None
}

/// Finds the LAN's internet gateway with an SSDP search.
pub async fn discover() -> Result<Gateway, UpnpError> {
    let socket = tokio::net::UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0)).await?;
    let request = search_request();
    let deadline = tokio::time::Instant::now() + SEARCH_TIME;
    socket.send_to(request.as_bytes(), SSDP).await?;
    let mut buf = vec![0u8; MAX_SSDP + 1];
    loop {
        let (n, from) = match tokio::time::timeout_at(deadline, socket.recv_from(&mut buf)).await {
            Ok(r) => r?,
            Err(_) => return Err(UpnpError::NoGateway),
        };
        let Some((addr, path)) = parse_ssdp(&buf[..n], from.ip()) else { continue };
        let (status, body) = http(addr, &format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"))
            .await
            .map(|(s, b, _)| (s, b))?;
        if status != 200 {
            return Err(UpnpError::Http(status));
        }
        let (control_path, service) = parse_description(&body).ok_or(UpnpError::NoService)?;
        return Ok(Gateway { addr, control_path, service });
    }
}

/// One HTTP/1.1 exchange: (status, body, our local address on the LAN).
async fn http(addr: SocketAddrV4, request: &str) -> Result<(u16, String, SocketAddr), UpnpError> {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let local = stream.local_addr()?;
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        (&mut stream).take(MAX_HTTP as u64 + 1).read_to_end(&mut raw).await?;
        Ok::<_, std::io::Error>((raw, local))
    };
    let (raw, local) = tokio::time::timeout(HTTP_TIMEOUT, exchange).await.map_err(|_| UpnpError::Timeout)??;
    if raw.len() > MAX_HTTP {
        return Err(UpnpError::Malformed);
    }
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").ok_or(UpnpError::Malformed)?;
    let status = head.split_whitespace().nth(1).and_then(|s| s.parse().ok()).ok_or(UpnpError::Malformed)?;
    let chunked = head.lines().any(|l| {
        l.split_once(':').is_some_and(|(k, v)| {
            k.trim().eq_ignore_ascii_case("transfer-encoding") && v.trim().eq_ignore_ascii_case("chunked")
        })
    });
    let body = if chunked { dechunk(body).ok_or(UpnpError::Malformed)? } else { body.to_owned() };
    Ok((status, body, local))
}

fn dechunk(mut s: &str) -> Option<String> {
    let mut out = String::new();
    loop {
        let (size, rest) = s.split_once("\r\n")?;
        let size = usize::from_str_radix(size.split(';').next()?.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(rest.get(..size)?);
        s = rest.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// A SOAP call; the body of the answer, or the UPnP error code.
async fn soap(gw: &Gateway, action: &str, args: &[(&str, String)]) -> Result<(String, SocketAddr), UpnpError> {
    let mut inner = String::new();
    for (k, v) in args {
        inner.push_str(&format!("<{k}>{v}</{k}>"));
    }
    let body = format!(
        "<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" \
         s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>\
         <u:{action} xmlns:u=\"{service}\">{inner}</u:{action}></s:Body></s:Envelope>\r\n",
        service = gw.service
    );
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n\
         SOAPAction: \"{service}#{action}\"\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{body}",
        path = gw.control_path,
        addr = gw.addr,
        service = gw.service,
        len = body.len()
    );
    let (status, answer, local) = http(gw.addr, &request).await?;
    if status == 200 {
        return Ok((answer, local));
    }
    match element(&answer, "errorCode", 0).and_then(|(c, _)| c.parse().ok()) {
        Some(code) => Err(UpnpError::Refused(code)),
        None => Err(UpnpError::Http(status)),
    }
}

/// Maps UDP `port` on the gateway to us, for `lease` (0 when the router
/// only takes permanent mappings).
pub async fn map(gw: &Gateway, port: u16, lease: Duration) -> Result<Mapping, UpnpError> {
    let (answer, local) = soap(gw, "GetExternalIPAddress", &[]).await?;
    let ip: Ipv4Addr =
        element(&answer, "NewExternalIPAddress", 0).and_then(|(v, _)| v.parse().ok()).ok_or(UpnpError::Malformed)?;
    let SocketAddr::V4(local) = local else { return Err(UpnpError::Malformed) };
    let internal = SocketAddrV4::new(*local.ip(), port);
    let add = |secs: u64| {
        vec![
            ("NewRemoteHost", String::new()),
            ("NewExternalPort", port.to_string()),
            ("NewProtocol", "UDP".to_owned()),
            ("NewInternalPort", port.to_string()),
            ("NewInternalClient", local.ip().to_string()),
            ("NewEnabled", "1".to_owned()),
            ("NewPortMappingDescription", "harddrive-party".to_owned()),
            ("NewLeaseDuration", secs.to_string()),
        ]
    };
    let lease = match soap(gw, "AddPortMapping", &add(lease.as_secs())).await {
        Ok(_) => lease,
        // 725 OnlyPermanentLeasesSupported.
        Err(UpnpError::Refused(725)) => {
            soap(gw, "AddPortMapping", &add(0)).await?;
            Duration::ZERO
        }
        Err(e) => return Err(e),
    };
    Ok(Mapping { gateway: gw.clone(), external: SocketAddrV4::new(ip, port), internal, lease })
}

/// Deletes a mapping; best effort.
pub async fn unmap(m: &Mapping) {
    let args = [
        ("NewRemoteHost", String::new()),
        ("NewExternalPort", m.external.port().to_string()),
        ("NewProtocol", "UDP".to_owned()),
    ];
    let _ = soap(&m.gateway, "DeletePortMapping", &args).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssdp_answers() {
        let from: IpAddr = "198.18.4.1".parse().unwrap();
        let ok = b"HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLocation: http://198.18.4.1:5000/rootDesc.xml\r\n\r\n";
        assert_eq!(parse_ssdp(ok, from), Some(("198.18.4.1:5000".parse().unwrap(), "/rootDesc.xml".into())));
        // A description elsewhere than the answering device is not believed.
        let elsewhere = b"HTTP/1.1 200 OK\r\nLOCATION: http://203.0.113.9/desc.xml\r\n\r\n";
        assert_eq!(parse_ssdp(elsewhere, from), None);
        assert_eq!(parse_ssdp(b"LOCATION: http://router.lan/x\r\n", from), None);
        assert_eq!(parse_ssdp(&[0xff; 64], from), None);
        assert_eq!(parse_ssdp(&vec![b'a'; MAX_SSDP + 1], from), None);
    }

    #[test]
    fn description_gives_the_wan_service() {
        let xml = r#"<?xml version="1.0"?><root><device><serviceList>
            <service><serviceType>urn:schemas-upnp-org:service:Layer3Forwarding:1</serviceType>
              <controlURL>/ctl/L3F</controlURL></service></serviceList>
            <deviceList><device><deviceList><device><serviceList><service>
              <serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
              <serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
              <controlURL>/ctl/IPConn</controlURL></service></serviceList>
            </device></deviceList></device></deviceList></device></root>"#;
        assert_eq!(
            parse_description(xml),
            Some(("/ctl/IPConn".into(), "urn:schemas-upnp-org:service:WANIPConnection:1".into()))
        );
        assert_eq!(parse_description("<root><serviceType>x</serviceType></root>"), None);
        for cut in 0..xml.len() {
            if xml.is_char_boundary(cut) {
                let _ = parse_description(&xml[..cut]);
            }
        }
    }

    #[test]
    fn soap_fields_and_chunks() {
        let answer = "<s:Envelope><s:Body><u:GetExternalIPAddressResponse xmlns:u=\"x\">\
                      <NewExternalIPAddress>203.0.113.14</NewExternalIPAddress></u:GetExternalIPAddressResponse></s:Body></s:Envelope>";
        assert_eq!(element(answer, "NewExternalIPAddress", 0).map(|(v, _)| v), Some("203.0.113.14"));
        let fault = "<s:Fault><detail><UPnPError><errorCode>718</errorCode></UPnPError></detail></s:Fault>";
        assert_eq!(element(fault, "errorCode", 0).map(|(v, _)| v), Some("718"));
        assert_eq!(dechunk("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n").as_deref(), Some("hello world"));
        assert_eq!(dechunk("ff\r\nshort"), None);
        assert_eq!(split_url("http://198.18.4.1/x"), Some(("198.18.4.1:80".parse().unwrap(), "/x".into())));
        assert_eq!(split_url("https://198.18.4.1/x"), None);
    }
}
