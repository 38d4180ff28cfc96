//! `serve.hash_identities`: identity values replaced by keyed hashes at the edge, before an
//! event is logged, counted or shown, with the key kept in the data directory.

use std::io::Write;
use std::path::Path;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The key file's name in the data directory.
pub const KEY_FILE: &str = "identity.key";

/// Prefix of a hashed value: `h:` and 32 hex digits.
const PREFIX: &str = "h:";

/// Why the key cannot be read or made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("cannot read or create the identity key {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("the identity key {0} is not 32 bytes; restore it from a backup (without it, known identities would become new persons)")]
    Length(String),
    #[error("no source of randomness for a new identity key: {0}")]
    Random(#[source] getrandom::Error),
}

/// The key identity values are hashed under.
#[derive(Clone)]
pub struct IdentityKey([u8; 32]);

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(..)")
    }
}

impl IdentityKey {
    /// The key in `dir`, made (32 random bytes, readable by the owner only) if there is none.
    pub fn in_dir(dir: &Path) -> Result<IdentityKey, KeyError> {
        let path = dir.join(KEY_FILE);
        let io = |source| KeyError::Io {
            path: path.display().to_string(),
            source,
        };
        match std::fs::read(&path) {
            Ok(bytes) => {
                let key: [u8; 32] = bytes
                    .try_into()
                    .map_err(|_| KeyError::Length(path.display().to_string()))?;
                Ok(IdentityKey(key))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = IdentityKey::random()?;
                std::fs::create_dir_all(dir).map_err(io)?;
                let mut options = std::fs::OpenOptions::new();
                options.write(true).create_new(true);
                #[cfg(unix)]
                std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
                let mut f = options.open(&path).map_err(io)?;
                f.write_all(&key.0).map_err(io)?;
                f.sync_all().map_err(io)?;
                Ok(key)
            }
            Err(e) => Err(io(e)),
        }
    }

    /// A fresh key (used when nothing is kept on disk).
    pub fn random() -> Result<IdentityKey, KeyError> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(KeyError::Random)?;
        Ok(IdentityKey(key))
    }

    /// The hashed form of an identity value: `h:` and the first 16 bytes of
    /// HMAC-SHA256(key, type, 0x1f, value) in hex. A value already in that form is kept.
    pub fn hash(&self, kind: &str, value: &str) -> String {
        if is_hashed(value) {
            return value.to_string();
        }
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(kind.as_bytes());
        mac.update(&[0x1f]);
        mac.update(value.as_bytes());
        let digest = mac.finalize().into_bytes();
        let mut out = String::with_capacity(PREFIX.len() + 32);
        out.push_str(PREFIX);
        for b in &digest[..16] {
            out.push_str(&format!("{b:02x}"));
        }
        out
    }

    /// The event's JSON text with every string value of its `ids` hashed; `None` when it is
    /// not a JSON object (ingest rejects it then, and its text must not be kept).
    pub fn rewrite(&self, event: &[u8]) -> Option<Vec<u8>> {
        let mut v: serde_json::Value = serde_json::from_slice(event).ok()?;
        let obj = v.as_object_mut()?;
        if let Some(ids) = obj.get_mut("ids").and_then(|i| i.as_object_mut()) {
            for (kind, value) in ids.iter_mut() {
                if let Some(text) = value.as_str() {
                    *value = self.hash(kind, text).into();
                }
            }
        }
        serde_json::to_vec(&v).ok()
    }
}

/// Whether a value is already a hash made by [`IdentityKey::hash`].
fn is_hashed(value: &str) -> bool {
    value.len() == PREFIX.len() + 32
        && value.starts_with(PREFIX)
        && value[PREFIX.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_hashed_and_the_rest_is_kept() {
        let key = IdentityKey([7; 32]);
        let line =
            br#"{"id":"e1","ts":1,"event":"page_view","ids":{"phone":"13912345678","uid":"u1"}}"#;
        let out = String::from_utf8(key.rewrite(line).unwrap()).unwrap();
        assert!(
            !out.contains("13912345678") && !out.contains("\"u1\""),
            "{out}"
        );
        assert!(out.contains(&key.hash("phone", "13912345678")));
        assert!(out.contains("\"id\":\"e1\""));
        // The same value under another type, or another key, hashes differently; a hash is kept.
        assert_ne!(key.hash("phone", "1"), key.hash("uid", "1"));
        assert_ne!(
            key.hash("phone", "1"),
            IdentityKey([8; 32]).hash("phone", "1")
        );
        let h = key.hash("phone", "1");
        assert_eq!(key.hash("phone", &h), h);
        assert!(key.rewrite(b"{oops").is_none());
    }
}
