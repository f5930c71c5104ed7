//! Chain-backed admission checks.
