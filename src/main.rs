use std::process::ExitCode;

use clap::Parser;
use tidewatch::cli::Cli;
use tidewatch::commands::{self, Exit};
use tidewatch::error_chain::error_chain;
use tidewatch::logging;

fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(&cli.log_level, cli.log_format);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tidewatch: cannot start the async runtime: {e}");
            return Exit::Failures.into();
        }
    };
    match runtime.block_on(commands::run(cli)) {
        Ok(exit) => exit.into(),
        Err(failure) => {
            eprintln!("tidewatch: {}", error_chain(&failure));
            failure.exit().into()
        }
    }
}
