//! The pinned client tools (kubectl 1.35 and 1.29, helm 4, kubernetes-validate) that
//! `scripts/install-tools.sh` unpacks into one fixed directory. Tests and the lab take them
//! from there, never from whatever happens to be on PATH, and print the versions they use.

use std::path::PathBuf;
use std::process::Command;

/// Where `scripts/install-tools.sh` installs unless `FERROLB_TOOLS_DIR` says otherwise.
pub const DEFAULT_TOOLS_DIR: &str = "/opt/ferrolb-tools";

/// One pinned tool: its file name in `bin/` and the version it must report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tool {
    /// kubectl v1.35.2, the newest client we support.
    Kubectl,
    /// kubectl v1.29.4, the oldest client we support.
    Kubectl129,
    /// helm v4.1.4.
    Helm,
    /// kubernetes-validate (PyPI) in the tools venv.
    KubernetesValidate,
}

impl Tool {
    pub fn file_name(self) -> &'static str {
        match self {
            Tool::Kubectl => "kubectl",
            Tool::Kubectl129 => "kubectl-1.29",
            Tool::Helm => "helm",
            Tool::KubernetesValidate => "kubernetes-validate",
        }
    }

    /// The version string the binary must print.
    pub fn pinned_version(self) -> &'static str {
        match self {
            Tool::Kubectl => "v1.35.2",
            Tool::Kubectl129 => "v1.29.4",
            Tool::Helm => "v4.1.4",
            Tool::KubernetesValidate => "1.35.0",
        }
    }
}

pub fn tools_dir() -> PathBuf {
    std::env::var_os("FERROLB_TOOLS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TOOLS_DIR))
}

/// The directory to put first on PATH so child processes find the pinned kubectl and helm.
pub fn bin_dir() -> PathBuf {
    tools_dir().join("bin")
}

/// The path of a pinned tool (whether or not it is installed).
pub fn path(tool: Tool) -> PathBuf {
    match tool {
        Tool::KubernetesValidate => tools_dir().join("venv").join("bin").join(tool.file_name()),
        _ => bin_dir().join(tool.file_name()),
    }
}

/// What the tool prints about its own version (first line), or why it could not be run.
pub fn version_line(tool: Tool) -> Result<String, String> {
    let bin = path(tool);
    let args: &[&str] = match tool {
        Tool::Kubectl | Tool::Kubectl129 => &["version", "--client"],
        Tool::Helm => &["version", "--short"],
        Tool::KubernetesValidate => &["--version"],
    };
    let out = Command::new(&bin)
        .args(args)
        .output()
        .map_err(|e| format!("{}: {e}", bin.display()))?;
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().next().unwrap_or("").trim().to_string();
    if !out.status.success() || !line.contains(tool.pinned_version()) {
        return Err(format!(
            "{} printed {line:?}, expected {} (run scripts/install-tools.sh)",
            bin.display(),
            tool.pinned_version()
        ));
    }
    Ok(line)
}

/// The pinned tool for a test, after printing its version; `None` (skip, with the reason
/// printed) when it is missing outside CI; a panic when it is missing in CI, where every
/// test must run.
pub fn for_test(tool: Tool, test: &str) -> Option<PathBuf> {
    use std::io::Write;
    match version_line(tool) {
        Ok(line) => {
            let _ = writeln!(
                std::io::stderr(),
                "{test}: using {} ({line})",
                tool.file_name()
            );
            Some(path(tool))
        }
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("{test}: {why}; CI is set, so this test must run")
        }
        Err(why) => {
            // The real stderr, not the captured one, so the skip shows in a plain `cargo test`.
            let _ = writeln!(
                std::io::stderr(),
                "SKIPPED {test}: {why} (set CI=1 to make this a failure)"
            );
            None
        }
    }
}
