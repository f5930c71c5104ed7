//! The `demls` command: a node, the CLI that drives it, and the demo.

mod api;
mod bench;
mod cli;
mod demo;
mod metrics;
mod node;
mod passphrase;
mod runtime;
mod story;
mod ticket;
mod topics;

use std::io::IsTerminal as _;

use clap::{Parser, Subcommand};
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

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let result: Result<(), Box<dyn std::error::Error>> = match cli.command {
        Command::Demo(args) => {
            init_logs(EnvFilter::from_env("DEMLS_LOG"));
            demo::run(&args)
        }
        Command::Bench(args) => {
            init_logs(EnvFilter::from_env("DEMLS_LOG"));
            bench::run(&args)
        }
        Command::Node(args) => match EnvFilter::try_new(&args.log) {
            Ok(filter) => {
                init_logs(filter);
                node::run(args)
            }
            Err(e) => Err(format!("--log {}: {e}", args.log).into()),
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
