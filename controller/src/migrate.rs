//! `ferrolb-controller migrate`: reads MetalLB manifests and writes their `ferrolb.io`
//! equivalents, with every difference in behaviour that applies to them (the rewriting itself
//! is [`ferrolb_config::manifests::migrate`]; this reads and writes the files).

use crate::validate::{ReadError, collect_files};
use ferrolb_config::manifests::migrate::{Migration, migrate};
use std::path::{Path, PathBuf};

/// Where the report and the objects go.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Outcome {
    /// The migrated objects as YAML (printed when there is no output file).
    pub yaml: String,
    /// Report lines.
    pub lines: Vec<String>,
    /// Everything carried over with its meaning, and the result is valid.
    pub ok: bool,
}

impl Outcome {
    /// Process exit code: 0 when `ok`, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        if self.ok { 0 } else { 1 }
    }

    /// The report as printed, one line each.
    pub fn report(&self) -> String {
        let mut out = self.lines.join("\n");
        out.push('\n');
        out
    }
}

/// Reads every file of `paths` (files as given, `*.yaml`/`*.yml` directly inside directories)
/// and migrates them together. With `output`, the objects are written there (also when some
/// cannot be carried over as they are, so they can be fixed in place).
pub fn run(paths: &[PathBuf], output: Option<&Path>) -> Outcome {
    let (files, read_errors) = collect_files(paths);
    let mut lines: Vec<String> = read_errors.iter().map(|e| format!("error: {e}")).collect();
    let mut texts = Vec::with_capacity(files.len());
    for file in &files {
        match std::fs::read_to_string(file) {
            Ok(text) => texts.push((file.display().to_string(), text)),
            Err(source) => lines.push(format!(
                "error: {}",
                ReadError::Io {
                    path: file.display().to_string(),
                    source
                }
            )),
        }
    }
    if files.is_empty() && lines.is_empty() {
        lines.push(
            "error: no manifest files found (directories are searched for *.yaml and *.yml)"
                .to_string(),
        );
        return Outcome {
            lines,
            ..Outcome::default()
        };
    }
    let unreadable = !lines.is_empty();
    let Migration {
        yaml,
        lines: report,
        ok,
        ..
    } = migrate(&texts);
    lines.extend(report);
    let mut ok = ok && !unreadable;
    if let Some(path) = output {
        match std::fs::write(path, &yaml) {
            Ok(()) => lines.push(format!("wrote {}", path.display())),
            Err(e) => {
                lines.push(format!("error: {}: cannot write: {e}", path.display()));
                ok = false;
            }
        }
    }
    Outcome { yaml, lines, ok }
}
