//! The node's ed25519 identity and the files that hold secrets.
//!
//! The secret key is created on first start and kept in
//! `<data-dir>/identity.key` (hex, mode 0600). The peer id is the public key.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use ed25519_dalek::SigningKey;
use hdp_proto::id::PeerId;

pub const IDENTITY_FILE: &str = "identity.key";

/// Loading or creating the identity failed.
#[derive(Debug, thiserror::Error)]
pub enum IdentityError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error(
        "{path} is not a valid identity key (64 hex characters); restore it from a backup or delete it to get a new identity"
    )]
    Invalid { path: PathBuf },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("the system random number generator failed: {0}")]
    Random(getrandom::Error),
}

/// Who this node is.
#[derive(Clone)]
pub struct Identity {
    key: SigningKey,
}

impl std::fmt::Debug for Identity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Identity({})", self.peer_id())
    }
}

impl Identity {
    /// Loads `<data_dir>/identity.key`, creating it on first start.
    pub fn load_or_create(data_dir: &Path) -> Result<Self, IdentityError> {
        let path = data_dir.join(IDENTITY_FILE);
        match fs::read_to_string(&path) {
            Ok(text) => {
                let bytes = decode_hex32(text.trim()).ok_or_else(|| IdentityError::Invalid { path: path.clone() })?;
                Ok(Identity { key: SigningKey::from_bytes(&bytes) })
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let secret = random_bytes().map_err(IdentityError::Random)?;
                write_private_file(&path, &format!("{}\n", encode_hex(&secret)))
                    .map_err(|source| IdentityError::Write { path: path.clone(), source })?;
                Ok(Identity { key: SigningKey::from_bytes(&secret) })
            }
            Err(source) => Err(IdentityError::Read { path, source }),
        }
    }

    pub fn peer_id(&self) -> PeerId {
        PeerId(self.key.verifying_key().to_bytes())
    }

    pub fn signing_key(&self) -> &SigningKey {
        &self.key
    }
}

/// 32 bytes from the operating system's CSPRNG.
pub fn random_bytes() -> Result<[u8; 32], getrandom::Error> {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b)?;
    Ok(b)
}

/// Writes a file readable only by its owner, atomically: a crash leaves either
/// no file or the whole file, never a truncated secret.
pub fn write_private_file(path: &Path, contents: &str) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::OpenOptions::new().write(true).create(true).truncate(true).mode(0o600).open(&tmp)?;
        // The mode above only applies to new files; make sure of it.
        f.set_permissions(fs::Permissions::from_mode(0o600))?;
        f.write_all(contents.as_bytes())?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)
}

pub fn encode_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

pub fn decode_hex32(s: &str) -> Option<[u8; 32]> {
    if s.len() != 64 || !s.is_ascii() {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_persists_with_private_mode() {
        let dir = tempfile::tempdir().unwrap();
        let a = Identity::load_or_create(dir.path()).unwrap();
        let b = Identity::load_or_create(dir.path()).unwrap();
        assert_eq!(a.peer_id(), b.peer_id());
        let mode = fs::metadata(dir.path().join(IDENTITY_FILE)).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }

    #[test]
    fn corrupt_identity_is_an_error_not_a_new_key() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IDENTITY_FILE), "not hex").unwrap();
        assert!(matches!(Identity::load_or_create(dir.path()), Err(IdentityError::Invalid { .. })));
    }

    #[test]
    fn hex_round_trip() {
        let b = [0xabu8; 32];
        assert_eq!(decode_hex32(&encode_hex(&b)), Some(b));
        assert_eq!(decode_hex32("zz"), None);
        assert_eq!(decode_hex32(&"é".repeat(32)), None);
    }
}
