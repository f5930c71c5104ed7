//! demls: a node of decentralized MLS group messaging over Waku, the CLI that drives it,
//! the demo and the benchmarks.
//!
//! The `demls` binary is [`main`]. An embedder or a test starts a node in its own process
//! with [`runtime::start`] and drives it through the [`runtime::NodeHandle`] it returns
//! (the control API, [`api`], serves the same handle over HTTP).

pub mod api;
mod bench;
mod cli;
mod config;
mod demo;
mod metrics;
mod node;
mod passphrase;
pub mod runtime;
mod story;
mod ticket;
mod topics;

use std::io::IsTerminal as _;

use clap::parser::ValueSource;
use clap::{CommandFactory as _, FromArgMatches as _, Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// Decentralized MLS group messaging.
#[derive(Parser)]
#[command(name = "demls", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a whole group in one process and show it working: joins, votes, commits, chat, a removal.
    Demo(demo::DemoArgs),
    /// Measure: batch commits, application messages, admissions on the simulated network.
    Bench(bench::BenchArgs),
    /// Run a node: a peer on the Waku network with its state on disk and a local control API.
    Node(node::NodeArgs),
    #[command(flatten)]
    Client(cli::ClientCommand),
}

fn init_logs(filter: EnvFilter) {
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

/// The `demls` command: parses the command line and runs what it names.
pub fn main() -> std::process::ExitCode {
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    // The node's options given on the command line or through their environment variables:
    // those win over its config file.
    let given: std::collections::HashSet<String> = matches
        .subcommand_matches("node")
        .map(|node| {
            node.ids()
                .filter(|id| {
                    matches!(
                        node.value_source(id.as_str()),
                        Some(ValueSource::CommandLine | ValueSource::EnvVariable)
                    )
                })
                .map(|id| id.as_str().to_owned())
                .collect()
        })
        .unwrap_or_default();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Demo(args) => {
            init_logs(EnvFilter::from_env("DEMLS_LOG"));
            demo::run(&args)
        }
        Command::Bench(args) => {
            init_logs(EnvFilter::from_env("DEMLS_LOG"));
            bench::run(&args)
        }
        Command::Node(mut args) => match config::apply(&mut args, &given) {
            Err(e) => Err(e.into()),
            Ok(file) => match EnvFilter::try_new(&args.log) {
                Ok(filter) => {
                    init_logs(filter);
                    if let Some(file) = file {
                        tracing::info!(file = %file.display(), "config file read");
                    }
                    node::run(args)
                }
                Err(e) => Err(format!("--log {}: {e}", args.log).into()),
            },
        },
        Command::Client(command) => cli::run(command).map_err(Into::into),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::ExitCode::FAILURE
        }
    }
}
