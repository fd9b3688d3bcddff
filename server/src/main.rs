//! `marain`: parses arguments and hands over to [`marain_server::run`].

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = marain_server::cli::Cli::parse();
    marain_server::run(cli, marain_server::shutdown_signal()).await
}
