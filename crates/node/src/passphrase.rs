//! The passphrase that protects a node's keys at rest.

use zeroize::Zeroizing;

/// The environment variable read before prompting.
pub const ENV: &str = "DEMLS_PASSPHRASE";

/// Why no passphrase could be had.
#[derive(Debug, thiserror::Error)]
pub enum PassphraseError {
    /// No terminal to prompt on, and no environment variable.
    #[error("no passphrase: set {ENV} or run in a terminal ({0})")]
    NoTerminal(std::io::Error),
    /// The two entries differ.
    #[error("the passphrases do not match")]
    Mismatch,
    /// Empty.
    #[error("the passphrase is empty")]
    Empty,
}

/// The passphrase from `DEMLS_PASSPHRASE`, or asked on the terminal (twice when `new`).
pub fn obtain(new: bool) -> Result<Zeroizing<String>, PassphraseError> {
    if let Ok(value) = std::env::var(ENV) {
        return non_empty(Zeroizing::new(value));
    }
    let prompt = if new {
        "new passphrase for this node's keys: "
    } else {
        "passphrase: "
    };
    let first =
        Zeroizing::new(rpassword::prompt_password(prompt).map_err(PassphraseError::NoTerminal)?);
    if new {
        let again = Zeroizing::new(
            rpassword::prompt_password("again: ").map_err(PassphraseError::NoTerminal)?,
        );
        if again != first {
            return Err(PassphraseError::Mismatch);
        }
    }
    non_empty(first)
}

fn non_empty(value: Zeroizing<String>) -> Result<Zeroizing<String>, PassphraseError> {
    if value.is_empty() {
        Err(PassphraseError::Empty)
    } else {
        Ok(value)
    }
}
