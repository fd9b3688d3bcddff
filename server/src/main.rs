//! `marain`: parses arguments and hands over to [`marain_server::run`].

use std::process::ExitCode;

use clap::Parser;

/// mimalloc: the content API and `marain legacy run` allocate many small
/// values per row; glibc's allocator took a quarter of a legacy run's time.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = marain_server::cli::Cli::parse();
    marain_server::run(cli, marain_server::shutdown_signal()).await
}
