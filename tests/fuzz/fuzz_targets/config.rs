//! Text as `config.toml`: merged over defaults into a configuration or
//! refused with an error, every field's validator included.
#![no_main]

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use clap::Parser;
use hdp_node::cli::{Cli, Command, StartArgs};
use hdp_node::config::{Config, parse_rate};
use libfuzzer_sys::fuzz_target;

fn args() -> &'static StartArgs {
    static ARGS: OnceLock<StartArgs> = OnceLock::new();
    ARGS.get_or_init(|| match Cli::parse_from(["hdp", "start"]).command {
        Command::Start(a) => a,
        _ => panic!("`hdp start` parses to a start command"),
    })
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = Config::merge(args(), PathBuf::from("/nonexistent/hdp"), Some(&text), Path::new("config.toml"));
    let _ = parse_rate(&text);
});
