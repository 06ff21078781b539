//! Logs go to stderr through `tracing`. They never carry request data,
//! passwords or keys: handlers log kinds, ids and sizes only.

pub fn init(verbose: u8) {
    let level = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    // cryptoki logs an error when dropping a session fails to close it,
    // which is what happens to every session of a token that was removed
    // (the token closed them): not an error for psmd.
    let filter = tracing_subscriber::EnvFilter::try_from_env("PSM_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level))
        .add_directive("cryptoki::session=off".parse().expect("a valid directive"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .try_init();
}
