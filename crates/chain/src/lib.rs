//! Admission checks against a live Ethereum chain.
//!
//! A [`ChainChecker`] answers the sans-IO [`demls_policy::CheckRequest`]s of the protocol
//! engine: it reads the chain id, the block, and the balance or ownership the group's
//! [`demls_policy::AdmissionPolicy`] needs from a JSON-RPC endpoint (with alloy), then decides
//! with [`demls_policy::evaluate`]. It fails closed: whatever goes wrong, nobody is admitted,
//! and the answer is [`demls_policy::Verdict::Unavailable`] after the bounded retries of a
//! [`RetryPolicy`].
//!
//! ```no_run
//! use demls_chain::{ChainChecker, RetryPolicy};
//! use demls_policy::{AdmissionPolicy, BlockRef, CheckRequest, Gate, Requirement, U256, Verdict};
//!
//! # async fn example() -> Result<(), Box<dyn std::error::Error>> {
//! let checker = ChainChecker::new("http://127.0.0.1:8545", 1, RetryPolicy::default())?;
//! let policy = AdmissionPolicy::Gated(Gate {
//!     chain_id: 1,
//!     block: BlockRef::Latest,
//!     requirement: Requirement::MinEth { min_wei: U256::parse_units("0.1", 18)? },
//! });
//! let subject = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266".parse()?;
//! match checker.check(&CheckRequest { policy, subject }).await {
//!     Verdict::Admit => println!("admitted"),
//!     Verdict::Refuse(why) => println!("refused: {why}"),
//!     Verdict::Unavailable(why) => println!("try again later: {why}"),
//! }
//! # Ok(())
//! # }
//! ```

mod checker;
mod retry;

pub use checker::{ChainChecker, ChainError};
pub use retry::RetryPolicy;
