//! Ethereum identities for demls.
//!
//! A demls member is a secp256k1 key pair (a [`Wallet`]); its member id is the
//! 20-byte Ethereum [`Address`] of that key. Signatures follow EIP-191
//! ("personal message") with a 65-byte `r || s || v` encoding, and the signer
//! is recovered from the signature, so every signed object names its author
//! without carrying a public key.
//!
//! MLS signs with its own (Ed25519) key. A [`WalletBinding`] ties that MLS
//! signature key to the wallet: the wallet signs the MLS public key, and
//! anyone can check the binding offline.

mod address;
mod binding;
mod error;
mod signature;
mod wallet;

pub use address::Address;
pub use binding::WalletBinding;
pub use error::IdentityError;
pub use signature::{EthSignature, eip191_hash, keccak256, recover_personal};
pub use wallet::Wallet;
