//! `ferrolb-controller validate`: checks manifest files offline, as the controller would, and
//! reports every problem at once.
//!
//! The binary only prints [`Report::render`] and exits with [`Report::exit_code`]; everything
//! else is here so it can be tested without a process.

use ferrolb_config::manifests::Manifests;
use ferrolb_config::{Config, IpFamily};
use std::path::{Path, PathBuf};

/// A path that could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// Reading a file or listing a directory failed.
    #[error("{path}: cannot read: {source}")]
    Io {
        /// The path as given or found in a directory.
        path: String,
        /// Why.
        source: std::io::Error,
    },
}

/// The outcome of a validation: lines to print, and whether the configuration is valid.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `error: …`, `warning: …` and `note: …` lines, then the `ok: …` summary when valid.
    pub lines: Vec<String>,
    /// No errors.
    pub ok: bool,
}

impl Report {
    /// The report as printed, one line each.
    pub fn render(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }

    /// Process exit code: 0 when valid, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.ok { 0 } else { 1 }
    }
}

/// Files to read for `paths`: files as given, and the `*.yaml`/`*.yml` files directly inside
/// each directory, sorted by name.
pub fn collect_files(paths: &[PathBuf]) -> (Vec<PathBuf>, Vec<ReadError>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for path in paths {
        if !path.is_dir() {
            files.push(path.clone());
            continue;
        }
        let entries = match std::fs::read_dir(path) {
            Ok(e) => e,
            Err(source) => {
                errors.push(ReadError::Io {
                    path: path.display().to_string(),
                    source,
                });
                continue;
            }
        };
        let mut found: Vec<PathBuf> = entries
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| p.is_file() && is_yaml(p))
            .collect();
        found.sort();
        files.extend(found);
    }
    (files, errors)
}

fn is_yaml(p: &Path) -> bool {
    matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml"))
}

/// Reads every file of `paths` (see [`collect_files`]), builds one configuration from all of
/// them together and reports.
pub fn validate(paths: &[PathBuf]) -> Report {
    let (files, read_errors) = collect_files(paths);
    let mut lines: Vec<String> = read_errors.iter().map(|e| format!("error: {e}")).collect();
    let mut texts = Vec::with_capacity(files.len());
    let mut unreadable = !read_errors.is_empty();
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push((file.display().to_string(), text)),
            Err(source) => {
                lines.push(format!(
                    "error: {}",
                    ReadError::Io {
                        path: file.display().to_string(),
                        source
                    }
                ));
                unreadable = true;
            }
        }
    }
    if files.is_empty() && !unreadable {
        lines.push(
            "error: no manifest files found (directories are searched for *.yaml and *.yml)"
                .to_string(),
        );
        return Report { lines, ok: false };
    }
    let report = check(&texts, unreadable);
    lines.extend(report.lines);
    Report {
        lines,
        ok: report.ok,
    }
}

/// Checks manifests already read, as (file name, contents) pairs: the part of [`validate`]
/// after the files are read, so tests can run exactly what the command runs.
pub fn validate_texts(texts: &[(String, String)]) -> Report {
    check(texts, false)
}

/// Reads `texts` and, unless some file could not be read (`unreadable`) or some document is
/// wrong, builds and reports the configuration.
fn check(texts: &[(String, String)], unreadable: bool) -> Report {
    let mut manifests = Manifests::default();
    for (file, text) in texts {
        manifests.add(file, text);
    }
    let mut lines: Vec<String> = manifests
        .errors
        .iter()
        .map(|e| format!("error: {e}"))
        .collect();
    if !manifests.errors.is_empty() || unreadable {
        // Objects that could not be read would show up as dangling references; checking the
        // rest now would report problems that are not there.
        lines.push(
            "note: configuration checks (overlaps, references, …) run once every document reads cleanly"
                .to_string(),
        );
        return Report { lines, ok: false };
    }
    let built = Config::build_report(&manifests.inputs);
    lines.extend(built.errors.iter().map(|e| format!("error: {e}")));
    lines.extend(built.warnings.iter().map(|w| format!("warning: {w}")));
    match built.config {
        Some(config) => {
            lines.push(summary(&config, manifests.skipped_count()));
            Report { lines, ok: true }
        }
        None => Report { lines, ok: false },
    }
}

fn summary(config: &Config, skipped: usize) -> String {
    let size = |family| {
        config
            .pools
            .values()
            .fold(0u128, |acc, p| acc.saturating_add(p.size(family)))
    };
    let mut line = format!(
        "ok: {} pools (IPv4: {} addresses, IPv6: {} addresses), {} L2 advertisements, {} BGP \
         advertisements, {} BGP peers, {} BFD profiles",
        config.pools.len(),
        size(IpFamily::V4),
        size(IpFamily::V6),
        config.l2_advertisements.len(),
        config.bgp_advertisements.len(),
        config.peers.len(),
        config.bfd_profiles.len(),
    );
    if skipped > 0 {
        line.push_str(&format!("; {skipped} objects of other kinds skipped"));
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).expect("write test file");
        path
    }

    fn temp_dir(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ferrolb-validate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        dir
    }

    const POOL: &str = "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: ns}\nspec:\n  addresses: [10.0.0.0/24, 'fd00::/120']\n";

    #[test]
    fn directories_are_read_sorted_and_together() {
        let dir = temp_dir("dir");
        write(
            &dir,
            "b.yaml",
            "apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2, namespace: ns}\nspec: {ipAddressPools: [a]}\n",
        );
        write(&dir, "a.yml", POOL);
        write(&dir, "notes.txt", "not yaml: [");
        let (files, errors) = collect_files(std::slice::from_ref(&dir));
        assert!(errors.is_empty());
        let names: Vec<_> = files
            .iter()
            .filter_map(|f| f.file_name()?.to_str().map(String::from))
            .collect();
        assert_eq!(names, vec!["a.yml", "b.yaml"]);
        let report = validate(std::slice::from_ref(&dir));
        assert_eq!(report.exit_code(), 0, "{}", report.render());
        assert_eq!(
            report.lines,
            vec![
                "ok: 1 pools (IPv4: 256 addresses, IPv6: 256 addresses), 1 L2 advertisements, 0 BGP \
                 advertisements, 0 BGP peers, 0 BFD profiles"
            ]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn config_errors_are_prefixed_and_fail() {
        let dir = temp_dir("errors");
        let file = write(
            &dir,
            "x.yaml",
            &format!("{POOL}---\n{}", POOL.replace("name: a", "name: b")),
        );
        let report = validate(&[file]);
        assert_eq!(report.exit_code(), 1);
        assert_eq!(report.lines.len(), 2, "{}", report.render());
        assert!(
            report
                .lines
                .iter()
                .all(|l| l.starts_with("error: IPAddressPool ns/b: spec.addresses[")),
            "{}",
            report.render()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn warnings_are_printed_with_errors_and_alone() {
        let dir = temp_dir("warnings");
        let peer = "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: r, namespace: ns}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1}\n---\napiVersion: ferrolb.io/v1beta1\nkind: BGPAdvertisement\nmetadata: {name: adv, namespace: ns}\nspec: {localPref: 100}\n";
        let warning =
            "warning: BGPAdvertisement ns/adv: spec.localPref: localPref 100 has no effect";
        let good = write(&dir, "good.yaml", &format!("{POOL}---\n{peer}"));
        let report = validate(&[good]);
        assert_eq!(report.exit_code(), 0, "{}", report.render());
        assert!(report.lines[0].starts_with(warning), "{}", report.render());
        assert!(
            report.lines[1].starts_with("ok: 1 pools"),
            "{}",
            report.render()
        );
        let bad = write(
            &dir,
            "bad.yaml",
            &format!(
                "{}---\n{peer}",
                POOL.replace("10.0.0.0/24", "' 10.0.0.0/24'")
            ),
        );
        let report = validate(&[bad]);
        assert_eq!(report.exit_code(), 1, "{}", report.render());
        assert!(
            report.lines[0].starts_with("error: IPAddressPool ns/a: spec.addresses[0]"),
            "{}",
            report.render()
        );
        assert!(report.lines[1].starts_with(warning), "{}", report.render());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_file_is_an_error() {
        let report = validate(&[PathBuf::from("/nonexistent/ferrolb.yaml")]);
        assert_eq!(report.exit_code(), 1);
        assert!(
            report.lines[0].starts_with("error: /nonexistent/ferrolb.yaml: cannot read:"),
            "{:?}",
            report.lines
        );
    }
}
