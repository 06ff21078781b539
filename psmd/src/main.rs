//! psmd: the Personal Security Manager daemon. See README.md.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // Before anything is opened: descriptors the spawning application leaked
    // to us have no business in a daemon that holds keys. Only a listening
    // socket passed by socket activation (systemd's psmd.socket) stays.
    let activated = psmd::process::socket_activation();
    psmd::process::close_inherited_fds(activated.unwrap_or(0));
    let mut opts = psmd::Options::parse();
    opts.activated = activated;
    if opts.man {
        use clap::CommandFactory;
        let man = clap_mangen::Man::new(psmd::Options::command()).section("8");
        return match man.render(&mut std::io::stdout()) {
            Ok(()) => ExitCode::SUCCESS,
            Err(_) => ExitCode::FAILURE,
        };
    }
    psmd::logging::init(opts.verbose);
    match psmd::run(opts) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(e.exit_code())
        }
    }
}
