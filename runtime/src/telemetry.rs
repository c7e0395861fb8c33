//! Logging, the command line shell and the Prometheus text format, the same for both binaries.

use clap::{FromArgMatches, Subcommand};
use prometheus_client::registry::Registry;

/// Logs to stderr at the level `RUST_LOG` sets (`info` without it). Call once, at start.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt().with_env_filter(filter).init();
}

// A binary's command line: one subcommand of `C`, with `--help` and `--version`. No doc
// comment: clap would take it for the binary's `about`.
#[derive(Debug, clap::Parser)]
struct Cli<C: Subcommand> {
    #[command(subcommand)]
    command: C,
}

/// Parses the process arguments into a subcommand of `C`, as binary `name` (in usage lines),
/// `version` (`--version`) and `about` (`--help`). Exits with clap's message and code on
/// `--help`, `--version` and errors.
pub fn parse_command<C: Subcommand>(
    name: &'static str,
    version: &'static str,
    about: &'static str,
) -> C {
    let cmd = <Cli<C> as clap::CommandFactory>::command()
        .name(name)
        .version(version)
        .about(about);
    let matches = cmd.get_matches();
    match Cli::<C>::from_arg_matches(&matches) {
        Ok(cli) => cli.command,
        Err(e) => e.exit(),
    }
}

/// The metrics of `registry` in the Prometheus text format.
pub fn encode_metrics(registry: &Registry) -> String {
    let mut out = String::new();
    // Writing into a String cannot fail.
    let _ = prometheus_client::encoding::text::encode(&mut out, registry);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use prometheus_client::metrics::gauge::Gauge;

    #[test]
    fn encodes_with_the_registry_prefix() {
        let mut r = Registry::with_prefix("ferrolb_test");
        let g = Gauge::<i64>::default();
        r.register("up", "1 when up", g.clone());
        g.set(1);
        let text = encode_metrics(&r);
        assert!(text.contains("ferrolb_test_up 1"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
