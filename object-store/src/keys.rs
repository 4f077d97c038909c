//! Ed25519 owner keys kept in `<store>/keys/`: `<name>.secret` (mode 0600) and `<name>.pub`,
//! each 64 hex digits and a newline. The store creates the key `default` at init.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use ed25519_dalek::{SigningKey, VerifyingKey};

use crate::error::{Result, StoreError};
use crate::fsutil::{self, hex, unhex, TEMP_PREFIX};

/// The key the store creates at init and uses when none is named.
pub const DEFAULT_KEY: &str = "default";
/// Longest key name.
pub const MAX_KEY_NAME_LEN: usize = 64;

const SECRET_EXT: &str = ".secret";
const PUBLIC_EXT: &str = ".pub";

/// Checks that `name` can name a key: 1 to 64 of `A-Z a-z 0-9 _ - .`, not starting with `.`.
pub fn validate_key_name(name: &str) -> Result<()> {
    let ok = !name.is_empty()
        && name.len() <= MAX_KEY_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"_-.".contains(&c));
    if ok {
        Ok(())
    } else {
        Err(StoreError::InvalidName {
            name: name.into(),
            reason: "key names are 1 to 64 of A-Z a-z 0-9 _ - . and do not start with '.'",
        })
    }
}

/// A key as listed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyEntry {
    /// The key's name.
    pub name: String,
    /// Its public key, or what is wrong with its files.
    pub public: std::result::Result<[u8; 32], String>,
    /// Whether the secret half is present in this store.
    pub has_secret: bool,
}

/// The key directory. Generation must be made under the store's exclusive lock.
#[derive(Clone, Debug)]
pub struct Keys {
    dir: PathBuf,
}

impl Keys {
    /// The keys kept in `dir`.
    pub fn new(dir: PathBuf) -> Self {
        Keys { dir }
    }

    /// The directory holding the key files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Creates a new random key; fails if `name` exists. A generation that a crash cut short
    /// (the secret half written, the public one not) is finished instead: its public half is
    /// derived from the secret and written, and that key returned.
    pub fn generate(&self, name: &str) -> Result<VerifyingKey> {
        validate_key_name(name)?;
        if self.dir.join(format!("{name}{PUBLIC_EXT}")).exists() {
            return Err(StoreError::KeyExists(name.into()));
        }
        if self.dir.join(format!("{name}{SECRET_EXT}")).exists() {
            let pk = self.signing_key(name)?.verifying_key();
            self.write_public(name, &pk)?;
            return Ok(pk);
        }
        let seed: [u8; 32] = fsutil::random_bytes().map_err(StoreError::io(&self.dir))?;
        let sk = SigningKey::from_bytes(&seed);
        let pk = sk.verifying_key();
        // Secret first: a crash between the two leaves a secret the next `generate` finishes,
        // never a public key whose secret was lost.
        fsutil::write_atomic(
            &self.dir,
            &format!("{name}{SECRET_EXT}"),
            format!("{}\n", hex(&seed)).as_bytes(),
            0o600,
        )?;
        self.write_public(name, &pk)?;
        Ok(pk)
    }

    fn write_public(&self, name: &str, pk: &VerifyingKey) -> Result<()> {
        fsutil::write_atomic(
            &self.dir,
            &format!("{name}{PUBLIC_EXT}"),
            format!("{}\n", hex(pk.as_bytes())).as_bytes(),
            0o644,
        )
    }

    /// The signing (secret) key `name`.
    pub fn signing_key(&self, name: &str) -> Result<SigningKey> {
        validate_key_name(name)?;
        let seed = self.read_hex32(name, SECRET_EXT)?;
        Ok(SigningKey::from_bytes(&seed))
    }

    /// The public key `name`.
    pub fn public_key(&self, name: &str) -> Result<VerifyingKey> {
        validate_key_name(name)?;
        let raw = self.read_hex32(name, PUBLIC_EXT)?;
        VerifyingKey::from_bytes(&raw).map_err(|_| StoreError::BadKey {
            name: name.into(),
            problem: "public key is not a valid Ed25519 point".into(),
        })
    }

    /// Every key, sorted by name; damaged keys are described in their entry.
    pub fn list(&self) -> Result<Vec<KeyEntry>> {
        let mut names = std::collections::BTreeSet::new();
        for ent in fs::read_dir(&self.dir).map_err(StoreError::io(&self.dir))? {
            let ent = ent.map_err(StoreError::io(&self.dir))?;
            let Ok(file) = ent.file_name().into_string() else {
                continue;
            };
            if file.starts_with(TEMP_PREFIX) {
                continue;
            }
            if let Some(n) = file
                .strip_suffix(PUBLIC_EXT)
                .or_else(|| file.strip_suffix(SECRET_EXT))
            {
                if validate_key_name(n).is_ok() {
                    names.insert(n.to_string());
                }
            }
        }
        Ok(names.into_iter().map(|name| self.entry(name)).collect())
    }

    /// Describes one key, checking that its halves agree and the secret is private.
    fn entry(&self, name: String) -> KeyEntry {
        let secret_path = self.dir.join(format!("{name}{SECRET_EXT}"));
        let has_secret = secret_path.exists();
        let why = |e: StoreError| match e {
            StoreError::BadKey { problem, .. } => problem,
            StoreError::NoSuchKey(_) => "public key file missing".to_string(),
            other => other.to_string(),
        };
        let public = (|| {
            let pk = self.public_key(&name).map_err(why)?;
            if has_secret {
                let sk = self.signing_key(&name).map_err(why)?;
                if sk.verifying_key() != pk {
                    return Err("secret and public halves do not match".to_string());
                }
                let mode = fs::metadata(&secret_path)
                    .map_err(|e| e.to_string())?
                    .permissions()
                    .mode();
                if mode & 0o077 != 0 {
                    return Err(format!(
                        "secret file is readable by others (mode {:o})",
                        mode & 0o777
                    ));
                }
            }
            Ok(pk.to_bytes())
        })();
        KeyEntry {
            name,
            public,
            has_secret,
        }
    }

    fn read_hex32(&self, name: &str, ext: &str) -> Result<[u8; 32]> {
        let path = self.dir.join(format!("{name}{ext}"));
        let text = match fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(StoreError::NoSuchKey(name.into()))
            }
            Err(e) => return Err(StoreError::Io { path, error: e }),
        };
        unhex::<32>(text.trim_end()).ok_or_else(|| StoreError::BadKey {
            name: name.into(),
            problem: format!("{} does not hold 64 hex digits", path.display()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::{Signer, Verifier};

    #[test]
    fn generated_key_signs_and_survives_reload() {
        let d = tempfile::tempdir().unwrap();
        let keys = Keys::new(d.path().to_path_buf());
        let pk = keys.generate("alice").unwrap();
        assert!(matches!(
            keys.generate("alice"),
            Err(StoreError::KeyExists(_))
        ));
        let reloaded = Keys::new(d.path().to_path_buf());
        assert_eq!(reloaded.public_key("alice").unwrap(), pk);
        let sig = reloaded.signing_key("alice").unwrap().sign(b"msg");
        pk.verify(b"msg", &sig).unwrap();
        let mode = fs::metadata(d.path().join("alice.secret"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let listed = reloaded.list().unwrap();
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].public, Ok(pk.to_bytes()));
        assert!(matches!(
            keys.signing_key("bob"),
            Err(StoreError::NoSuchKey(_))
        ));
        assert!(keys.generate("../x").is_err());
    }

    #[test]
    fn a_key_cut_short_before_its_public_half_is_finished_by_the_next_generate() {
        let d = tempfile::tempdir().unwrap();
        let keys = Keys::new(d.path().to_path_buf());
        let pk = keys.generate("a").unwrap();
        fs::remove_file(d.path().join("a.pub")).unwrap();
        assert!(keys.list().unwrap()[0].public.is_err());
        assert_eq!(keys.generate("a").unwrap(), pk, "the same key, finished");
        assert_eq!(keys.list().unwrap()[0].public, Ok(pk.to_bytes()));
        assert!(matches!(keys.generate("a"), Err(StoreError::KeyExists(_))));
    }

    #[test]
    fn mismatched_halves_are_reported() {
        let d = tempfile::tempdir().unwrap();
        let keys = Keys::new(d.path().to_path_buf());
        keys.generate("a").unwrap();
        keys.generate("b").unwrap();
        fs::copy(d.path().join("b.pub"), d.path().join("a.pub")).unwrap();
        let listed = keys.list().unwrap();
        assert!(listed[0]
            .public
            .as_ref()
            .unwrap_err()
            .contains("do not match"));
        assert!(listed[1].public.is_ok());
    }
}
