//! psmd: the Personal Security Manager daemon. See README.md.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything is opened: descriptors the spawning application leaked
    // to us have no business in a daemon that holds keys.
    psmd::process::close_inherited_fds();
    let opts = psmd::Options::parse();
    psmd::logging::init(opts.verbose);
    match psmd::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
