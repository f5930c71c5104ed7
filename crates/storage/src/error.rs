//! Why a storage operation failed.

use std::path::PathBuf;

/// Every way opening, reading or writing the store can fail. Rows that do not
/// decode are reported as [`StorageError::Corrupt`], never as a panic.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// SQLite refused an operation.
    #[error("database: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The data directory or database file could not be prepared.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What went wrong.
        source: std::io::Error,
    },
    /// The passphrase does not open this data directory's databases.
    #[error("wrong passphrase: it does not decrypt this data directory's databases")]
    WrongPassphrase,
    /// The salt file that makes the databases' keys is gone, but an encrypted database is
    /// there: without the file the database cannot be decrypted.
    #[error("{path} is missing: the encrypted databases beside it cannot be decrypted without it")]
    SaltMissing {
        /// Where the salt file should be.
        path: PathBuf,
    },
    /// The database was written by a newer demls.
    #[error("database schema version {found} is newer than the {supported} this demls supports")]
    UnsupportedSchema {
        /// The database's `user_version`.
        found: i64,
        /// The newest version this build knows.
        supported: i64,
    },
    /// A stored row that does not decode (damaged file, manual edits, wrong key).
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// Which row or field.
        what: String,
        /// Why it does not decode.
        reason: String,
    },
    /// A value too large for its column (e.g. a time beyond the year 292 million).
    #[error("{0} does not fit in the database")]
    OutOfRange(&'static str),
    /// The operating system's random source failed.
    #[error("random source: {0}")]
    Random(String),
    /// An archive query continues after a message the archive does not hold.
    #[error("the cursor is not a message of the archive")]
    UnknownCursor,
}

impl StorageError {
    /// A [`StorageError::Corrupt`] for `what`.
    pub(crate) fn corrupt(what: impl Into<String>, reason: impl ToString) -> Self {
        Self::Corrupt {
            what: what.into(),
            reason: reason.to_string(),
        }
    }
}
