use thiserror::Error;

/// Everything that can go wrong with keys, signatures and bindings.
#[derive(Debug, Error, PartialEq, Eq)]
pub enum IdentityError {
    /// A hex string did not decode, or had the wrong length.
    #[error("invalid hex: {0}")]
    InvalidHex(String),
    /// The bytes are not a valid secp256k1 private key.
    #[error("invalid secp256k1 private key")]
    InvalidPrivateKey,
    /// A signature is not 65 bytes, has a bad recovery byte, or has zero r/s.
    #[error("malformed signature")]
    MalformedSignature,
    /// A signature whose `s` is in the upper half of the curve order (malleable).
    #[error("signature s value is not normalised (high-s)")]
    HighS,
    /// No public key could be recovered from the signature.
    #[error("signer could not be recovered from the signature")]
    RecoveryFailed,
    /// A binding's encoding has the wrong length.
    #[error("malformed wallet binding ({0} bytes)")]
    MalformedBinding(usize),
    /// A binding's signature was made by another address than the one it claims.
    #[error("wallet binding claims {claimed} but was signed by {actual}")]
    BindingMismatch {
        /// The address written in the binding.
        claimed: crate::Address,
        /// The address recovered from the binding's signature.
        actual: crate::Address,
    },
    /// Reading or writing a key file failed.
    #[error("key file: {0}")]
    KeyFile(String),
}
