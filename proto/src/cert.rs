//! Finding the ed25519 key in a peer's X.509 certificate.
//!
//! A node's TLS certificate is self-signed with its identity key; only the
//! key matters. This is a minimal, bounded DER walk to the certificate's
//! SubjectPublicKeyInfo, which must be `id-Ed25519` (OID 1.3.101.112) with a
//! 32-byte key. It never panics on hostile input: every length is checked
//! against what is left.

/// Largest certificate accepted, in bytes.
pub const MAX_CERT_LEN: usize = 16 * 1024;

/// DER of `AlgorithmIdentifier { id-Ed25519 }` (RFC 8410).
const ED25519_ALG_ID: &[u8] = &[0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70];

/// Why no key could be taken from a certificate.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertError {
    #[error("certificate larger than {MAX_CERT_LEN} bytes")]
    TooLarge,
    #[error("malformed certificate: {0}")]
    Malformed(&'static str),
    #[error("the certificate's key is not an ed25519 key")]
    NotEd25519,
}

/// One DER element: tag and contents.
fn read_tlv(input: &[u8]) -> Result<(u8, &[u8], &[u8]), CertError> {
    let (&tag, rest) = input.split_first().ok_or(CertError::Malformed("truncated tag"))?;
    let (&first, rest) = rest.split_first().ok_or(CertError::Malformed("truncated length"))?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 3 {
            return Err(CertError::Malformed("unsupported length form"));
        }
        let bytes = rest.get(..n).ok_or(CertError::Malformed("truncated length"))?;
        let len = bytes.iter().fold(0usize, |acc, &b| (acc << 8) | b as usize);
        (len, &rest[n..])
    };
    if len > rest.len() {
        return Err(CertError::Malformed("length past the end"));
    }
    Ok((tag, &rest[..len], &rest[len..]))
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &'static str) -> Result<(&'a [u8], &'a [u8]), CertError> {
    let (t, body, rest) = read_tlv(input)?;
    if t != tag {
        return Err(CertError::Malformed(what));
    }
    Ok((body, rest))
}

/// The ed25519 public key of a DER certificate.
pub fn ed25519_key_from_cert(der: &[u8]) -> Result<[u8; 32], CertError> {
    if der.len() > MAX_CERT_LEN {
        return Err(CertError::TooLarge);
    }
    let (cert, _) = expect(der, 0x30, "certificate is not a SEQUENCE")?;
    let (tbs, _) = expect(cert, 0x30, "tbsCertificate is not a SEQUENCE")?;
    let mut rest = tbs;
    // Optional explicit [0] version.
    if rest.first() == Some(&0xa0) {
        rest = read_tlv(rest)?.2;
    }
    rest = expect(rest, 0x02, "serial number is not an INTEGER")?.1;
    rest = expect(rest, 0x30, "signature algorithm is not a SEQUENCE")?.1;
    rest = expect(rest, 0x30, "issuer is not a SEQUENCE")?.1;
    rest = expect(rest, 0x30, "validity is not a SEQUENCE")?.1;
    rest = expect(rest, 0x30, "subject is not a SEQUENCE")?.1;
    let (spki, _) = expect(rest, 0x30, "subjectPublicKeyInfo is not a SEQUENCE")?;
    let alg_len = spki.len().checked_sub(read_tlv(spki)?.2.len()).ok_or(CertError::Malformed("spki"))?;
    if &spki[..alg_len] != ED25519_ALG_ID {
        return Err(CertError::NotEd25519);
    }
    let (bits, tail) = expect(&spki[alg_len..], 0x03, "public key is not a BIT STRING")?;
    if !tail.is_empty() {
        return Err(CertError::Malformed("bytes after the public key"));
    }
    match bits {
        [0, key @ ..] if key.len() == 32 => {
            let mut out = [0u8; 32];
            out.copy_from_slice(key);
            Ok(out)
        }
        _ => Err(CertError::NotEd25519),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal certificate around `key`, shaped like rcgen's output.
    fn cert_with(key: &[u8; 32], alg: &[u8]) -> Vec<u8> {
        fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
            let mut v = vec![tag];
            if body.len() < 0x80 {
                v.push(body.len() as u8);
            } else {
                v.extend_from_slice(&[0x82, (body.len() >> 8) as u8, body.len() as u8]);
            }
            v.extend_from_slice(body);
            v
        }
        let mut bits = vec![0u8];
        bits.extend_from_slice(key);
        let spki = tlv(0x30, &[alg, &tlv(0x03, &bits)].concat());
        let name = tlv(0x30, &tlv(0x31, &tlv(0x30, &[tlv(0x06, &[0x55, 4, 3]), tlv(0x0c, b"hdp")].concat())));
        let tbs = tlv(
            0x30,
            &[
                tlv(0xa0, &tlv(0x02, &[2])),
                tlv(0x02, &[1, 2, 3]),
                ED25519_ALG_ID.to_vec(),
                name.clone(),
                tlv(0x30, &[tlv(0x17, b"750101000000Z"), tlv(0x18, b"40960101000000Z")].concat()),
                name,
                spki,
                tlv(0xa3, &[0u8; 200]),
            ]
            .concat(),
        );
        tlv(0x30, &[tbs, ED25519_ALG_ID.to_vec(), tlv(0x03, &[0u8; 65])].concat())
    }

    #[test]
    fn finds_the_key() {
        let key = [7u8; 32];
        assert_eq!(ed25519_key_from_cert(&cert_with(&key, ED25519_ALG_ID)), Ok(key));
    }

    #[test]
    fn refuses_other_keys_and_garbage() {
        let p256 = [
            0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d,
            0x03, 0x01, 0x07,
        ];
        assert_eq!(ed25519_key_from_cert(&cert_with(&[7u8; 32], &p256)), Err(CertError::NotEd25519));
        let good = cert_with(&[7u8; 32], ED25519_ALG_ID);
        for cut in 0..good.len() {
            assert!(ed25519_key_from_cert(&good[..cut]).is_err());
        }
        for i in 0..good.len() {
            let mut bad = good.clone();
            bad[i] ^= 0xff;
            let _ = ed25519_key_from_cert(&bad);
        }
        assert_eq!(ed25519_key_from_cert(&vec![0x30; MAX_CERT_LEN + 1]), Err(CertError::TooLarge));
        assert!(ed25519_key_from_cert(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_err());
    }
}
