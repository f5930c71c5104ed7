//! Integration tests of demls-consensus, in one binary.

mod byzantine;
mod common;
mod convergence;
mod lifecycle;
mod wire_format;
