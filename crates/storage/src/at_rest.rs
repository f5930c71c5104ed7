//! Whole-database encryption at rest: every page of `demls.db` and `archive.sqlite` (and of
//! their write-ahead logs) is encrypted by SQLCipher (AES-256-CBC, HMAC-SHA512 per page), so
//! that a copy of the data directory shows only how large the databases are.
//!
//! The SQLCipher keys are raw 256-bit keys made with scrypt from the passphrase and a random
//! salt kept in the salt file [`SALT_FILE`], outside the databases (a database cannot hold the
//! salt that decrypts it). One scrypt run gives both databases' keys and a verifier that tells
//! a wrong passphrase from a damaged database. SQLCipher's own passphrase derivation
//! (PBKDF2-HMAC-SHA512) is not used: scrypt is memory-hard, its parameters are already the
//! store's, and one derivation serves both files where SQLCipher would run one per file.
//!
//! A database written by an earlier demls in plaintext is encrypted the first time it is
//! opened with the right passphrase: exported into a new encrypted file that replaces it.

use std::fs;
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, ErrorCode, params};
use zeroize::Zeroizing;

use crate::StorageError;
use crate::archive::ARCHIVE_FILE;
use crate::crypto::{KdfParams, SALT_LEN, random};
use crate::store::{DB_FILE, io_error};

/// The salt file in the data directory: the scrypt parameters and salt that make the databases'
/// keys, and the verifier of the passphrase. Without it the databases cannot be decrypted.
pub const SALT_FILE: &str = "demls.salt";

/// The first line of a salt file, naming its format.
const SALT_FORMAT: &str = "demls-salt 1";

/// The first 16 bytes of a plaintext SQLite database. SQLCipher puts a random salt there
/// instead.
const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

const KEY_LEN: usize = 32;

/// A raw SQLCipher key (AES-256) of one database file.
pub(crate) struct DbKey(Zeroizing<[u8; KEY_LEN]>);

impl DbKey {
    /// The key as `PRAGMA key` and `ATTACH … KEY` take a raw key, `x'<64 hex digits>'`:
    /// SQLCipher then uses it as is, without deriving a key of its own.
    fn literal(&self) -> Zeroizing<String> {
        let mut digits = Zeroizing::new([0u8; 2 * KEY_LEN]);
        // Cannot fail: the buffer is exactly twice the key's length.
        let _ = hex::encode_to_slice(self.0.as_ref(), digits.as_mut());
        let mut literal = Zeroizing::new(String::with_capacity(3 + 2 * KEY_LEN));
        literal.push_str("x'");
        literal.extend(digits.iter().map(|&d| char::from(d)));
        literal.push('\'');
        literal
    }
}

/// The keys of one data directory's databases.
pub(crate) struct DataKeys {
    /// The key of `demls.db`.
    pub(crate) store: DbKey,
    /// The key of `archive.sqlite`.
    pub(crate) archive: DbKey,
}

/// A salt file's contents.
struct SaltFile {
    params: KdfParams,
    salt: [u8; SALT_LEN],
    verifier: [u8; KEY_LEN],
}

impl SaltFile {
    fn encode(&self) -> String {
        format!(
            "{SALT_FORMAT}\n{}\n{}\n{}\n",
            self.params.encode(),
            hex::encode(self.salt),
            hex::encode(self.verifier)
        )
    }

    fn decode(text: &str) -> Result<SaltFile, StorageError> {
        let bad = |reason: &str| StorageError::corrupt(SALT_FILE, reason);
        let mut lines = text.lines();
        if lines.next() != Some(SALT_FORMAT) {
            return Err(bad("unknown format"));
        }
        let mut next = || lines.next().ok_or_else(|| bad("missing line"));
        let params = KdfParams::decode(next()?)?;
        let mut salt = [0u8; SALT_LEN];
        hex::decode_to_slice(next()?, &mut salt).map_err(|_| bad("salt"))?;
        let mut verifier = [0u8; KEY_LEN];
        hex::decode_to_slice(next()?, &mut verifier).map_err(|_| bad("verifier"))?;
        Ok(SaltFile {
            params,
            salt,
            verifier,
        })
    }

    /// scrypt of the passphrase, split into the two keys and the verifier.
    fn derive(&self, passphrase: &str) -> Result<(DataKeys, [u8; KEY_LEN]), StorageError> {
        let mut out = Zeroizing::new([0u8; 3 * KEY_LEN]);
        self.params.stretch(passphrase, &self.salt, out.as_mut())?;
        let part = |i: usize| {
            let mut key = Zeroizing::new([0u8; KEY_LEN]);
            key.copy_from_slice(&out[i * KEY_LEN..(i + 1) * KEY_LEN]);
            key
        };
        let keys = DataKeys {
            store: DbKey(part(0)),
            archive: DbKey(part(1)),
        };
        Ok((keys, *part(2)))
    }
}

impl DataKeys {
    /// The keys of the databases in `dir`, from the salt file; a passphrase that does not
    /// match its verifier is [`StorageError::WrongPassphrase`]. Without a salt file, one is
    /// made for `passphrase`, unless an encrypted database is already there
    /// ([`StorageError::SaltMissing`]).
    pub(crate) fn unlock(dir: &Path, passphrase: &str) -> Result<DataKeys, StorageError> {
        let path = dir.join(SALT_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return DataKeys::create(dir, &path, passphrase);
            }
            Err(e) => return Err(io_error(&path)(e)),
        };
        let salt_file = SaltFile::decode(&text)?;
        let (keys, verifier) = salt_file.derive(passphrase)?;
        // Constant time, so that timing does not tell how much of a guess was right.
        let differ = verifier
            .iter()
            .zip(salt_file.verifier)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if differ != 0 {
            return Err(StorageError::WrongPassphrase);
        }
        Ok(keys)
    }

    fn create(dir: &Path, path: &Path, passphrase: &str) -> Result<DataKeys, StorageError> {
        for file in [DB_FILE, ARCHIVE_FILE] {
            if probe(&dir.join(file))? == Content::Encrypted {
                return Err(StorageError::SaltMissing {
                    path: path.to_owned(),
                });
            }
        }
        let mut salt_file = SaltFile {
            params: KdfParams::DEFAULT,
            salt: random()?,
            verifier: [0; KEY_LEN],
        };
        let (keys, verifier) = salt_file.derive(passphrase)?;
        salt_file.verifier = verifier;
        // Written aside and renamed, so that a crash never leaves half a salt file.
        let staging = with_suffix(path, ".new");
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&staging)
            .map_err(io_error(&staging))?;
        file.write_all(salt_file.encode().as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(io_error(&staging))?;
        fs::rename(&staging, path).map_err(io_error(path))?;
        sync_dir(dir)?;
        Ok(keys)
    }
}

/// What a database file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Content {
    /// Nothing yet.
    New,
    /// A plaintext SQLite database, as written by a demls before encryption at rest.
    Plaintext,
    /// Anything else: an encrypted database (or one too damaged to tell).
    Encrypted,
}

/// Tells from the first bytes of the file whether it is a plaintext database. (The first page
/// is in the file from the start: switching a new database to write-ahead logging writes it.)
pub(crate) fn probe(path: &Path) -> Result<Content, StorageError> {
    let mut head = Vec::with_capacity(SQLITE_MAGIC.len());
    match fs::File::open(path) {
        Ok(file) => file
            .take(SQLITE_MAGIC.len() as u64)
            .read_to_end(&mut head)
            .map_err(io_error(path))?,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => 0,
        Err(e) => return Err(io_error(path)(e)),
    };
    Ok(if head.is_empty() {
        Content::New
    } else if head == SQLITE_MAGIC {
        Content::Plaintext
    } else {
        Content::Encrypted
    })
}

/// Opens `path` with `key`, SQLCipher's first statement, then reads the schema to check that
/// the key decrypts the file (SQLCipher only notices a wrong key when it reads a page). The key
/// was checked against the salt file's verifier before, so a file it does not decrypt is
/// damaged or belongs to another data directory.
pub(crate) fn open_keyed(path: &Path, key: &DbKey) -> Result<Connection, StorageError> {
    let conn = Connection::open(path)?;
    let pragma = Zeroizing::new(format!("PRAGMA key = \"{}\";", key.literal().as_str()));
    conn.execute_batch(&pragma)?;
    match conn.query_row("SELECT count(*) FROM sqlite_master", [], |r| {
        r.get::<_, i64>(0)
    }) {
        Ok(_) => Ok(conn),
        Err(e) if e.sqlite_error_code() == Some(ErrorCode::NotADatabase) => {
            Err(StorageError::corrupt(
                path.display().to_string(),
                format!(
                    "it does not decrypt with the key of {SALT_FILE}: damaged, or the salt \
                     file belongs to another data directory"
                ),
            ))
        }
        Err(e) => Err(e.into()),
    }
}

/// Encrypts the plaintext database `path` with `key`: exported page by page into a new file
/// beside it, which then replaces it in one rename. A crash before the rename leaves the
/// plaintext database as it was (and the half-made file is replaced on the next try); after
/// it, the encrypted one. The plaintext file's bytes are then overwritten with zeros, which is
/// best effort: a copy-on-write file system or an SSD's wear levelling may keep old blocks.
pub(crate) fn encrypt_plaintext(path: &Path, key: &DbKey) -> Result<(), StorageError> {
    let staging = with_suffix(path, ".encrypting");
    for stale in [staging.clone(), with_suffix(&staging, "-journal")] {
        match fs::remove_file(&stale) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(io_error(&stale)(e));
            }
            _ => {}
        }
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&staging)
        .map_err(io_error(&staging))?;
    let staging_name = staging.to_str().ok_or_else(|| {
        io_error(&staging)(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            "the path is not UTF-8",
        ))
    })?;
    {
        let plain = Connection::open(path)?;
        plain.busy_timeout(std::time::Duration::from_secs(5))?;
        // Folds the write-ahead log into the file and deletes it, so that no plaintext log
        // outlives the migration or is replayed onto the encrypted file.
        let journal: String =
            plain.pragma_update_and_check(None, "journal_mode", "DELETE", |r| r.get(0))?;
        if !journal.eq_ignore_ascii_case("delete") {
            return Err(StorageError::corrupt("journal mode", journal));
        }
        let version: i64 = plain.pragma_query_value(None, "user_version", |r| r.get(0))?;
        plain.execute(
            "ATTACH DATABASE ?1 AS encrypted KEY ?2",
            params![staging_name, key.literal().as_str()],
        )?;
        plain.query_row("SELECT sqlcipher_export('encrypted')", [], |_| Ok(()))?;
        plain.pragma_update(Some("encrypted"), "user_version", version)?;
        plain.execute("DETACH DATABASE encrypted", [])?;
    }
    fs::File::open(&staging)
        .and_then(|f| f.sync_all())
        .map_err(io_error(&staging))?;
    let mut old = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(io_error(path))?;
    fs::rename(&staging, path).map_err(io_error(path))?;
    if let Some(dir) = path.parent() {
        sync_dir(dir)?;
    }
    scrub(&mut old).map_err(io_error(path))
}

/// Overwrites a file (here: one already replaced by a rename) with zeros.
fn scrub(file: &mut fs::File) -> std::io::Result<()> {
    let mut left = file.metadata()?.len();
    let zeros = [0u8; 64 * 1024];
    while left > 0 {
        let n = usize::try_from(left).map_or(zeros.len(), |l| l.min(zeros.len()));
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_data()
}

fn sync_dir(dir: &Path) -> Result<(), StorageError> {
    fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_error(dir))
}

/// `path` with `suffix` appended to its file name.
fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn salt_files_round_trip_and_refuse_garbage() {
        let salt_file = SaltFile {
            params: KdfParams::DEFAULT,
            salt: [7; SALT_LEN],
            verifier: [9; KEY_LEN],
        };
        let decoded = SaltFile::decode(&salt_file.encode()).unwrap();
        assert_eq!(
            (decoded.params, decoded.salt, decoded.verifier),
            (salt_file.params, salt_file.salt, salt_file.verifier)
        );
        for bad in [
            "",
            "demls-salt 2\nscrypt:15:8:1\n",
            "demls-salt 1\nscrypt:60:8:1\n00\n00\n",
            "demls-salt 1\nscrypt:15:8:1\nzz\n",
        ] {
            assert!(
                matches!(SaltFile::decode(bad), Err(StorageError::Corrupt { .. })),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn raw_key_literals_are_what_sqlcipher_takes() {
        let literal = DbKey(Zeroizing::new([0xab; KEY_LEN])).literal();
        assert_eq!(literal.len(), 67);
        assert!(literal.starts_with("x'abab") && literal.ends_with("ab'"));
    }
}
