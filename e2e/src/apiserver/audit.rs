//! An audit log of authorization decisions, one JSON object a line, as kube-apiserver's
//! `--audit-log-path` records who asked to do what: the least-privilege test reads it to tell
//! which rule of an RBAC manifest each request of a component needed, and which requests a
//! missing rule denied.

use std::fs::File;
use std::io::{LineWriter, Write};
use std::path::Path;
use std::sync::Mutex;

use serde::{Deserialize, Serialize};

use super::auth::attributes::Attributes;
use super::auth::user::UserInfo;

/// One decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    pub user: String,
    pub groups: Vec<String>,
    pub verb: String,
    /// Empty for a non-resource request.
    pub api_group: String,
    pub resource: String,
    pub subresource: String,
    pub namespace: String,
    pub name: String,
    /// The path of a non-resource request.
    pub path: String,
    pub resource_request: bool,
    pub allowed: bool,
}

impl AuditRecord {
    pub fn new(user: &UserInfo, attrs: &Attributes, allowed: bool) -> AuditRecord {
        AuditRecord {
            user: user.name.clone(),
            groups: user.groups.clone(),
            verb: attrs.verb.clone(),
            api_group: attrs.api_group.clone(),
            resource: attrs.resource.clone(),
            subresource: attrs.subresource.clone(),
            namespace: attrs.namespace.clone(),
            name: attrs.name.clone(),
            path: attrs.path.clone(),
            resource_request: attrs.resource_request,
            allowed,
        }
    }

    /// The request as the authorizer sees it, to ask a rule about it again.
    pub fn attributes(&self) -> Attributes {
        Attributes {
            verb: self.verb.clone(),
            resource_request: self.resource_request,
            path: self.path.clone(),
            api_group: self.api_group.clone(),
            namespace: self.namespace.clone(),
            resource: self.resource.clone(),
            subresource: self.subresource.clone(),
            name: self.name.clone(),
            ..Attributes::default()
        }
    }
}

/// The file decisions are appended to (created if missing).
pub struct AuditLog {
    file: Mutex<LineWriter<File>>,
}

impl AuditLog {
    pub fn open(path: &Path) -> std::io::Result<AuditLog> {
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)?;
        Ok(AuditLog {
            file: Mutex::new(LineWriter::new(file)),
        })
    }

    /// Appends one decision; a log that cannot be written is reported, never fatal to the
    /// request.
    pub fn record(&self, record: &AuditRecord) {
        let Ok(mut line) = serde_json::to_string(record) else {
            return;
        };
        line.push('\n');
        let mut file = match self.file.lock() {
            Ok(f) => f,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Err(e) = file.write_all(line.as_bytes()) {
            tracing::warn!(error = %e, "writing the audit log failed");
        }
    }
}

/// Every record of an audit log file (lines that do not parse are skipped: a line may be cut
/// by a server stopped mid-write).
pub fn read(path: &Path) -> std::io::Result<Vec<AuditRecord>> {
    let text = std::fs::read_to_string(path)?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_the_file() -> std::io::Result<()> {
        let dir = std::env::temp_dir().join(format!("ferrolb-audit-{}", std::process::id()));
        std::fs::create_dir_all(&dir)?;
        let path = dir.join("audit.jsonl");
        let log = AuditLog::open(&path)?;
        let user = UserInfo {
            name: "system:serviceaccount:ferrolb-system:speaker".into(),
            groups: vec!["system:serviceaccounts".into()],
            ..UserInfo::anonymous()
        };
        let attrs = Attributes::resource("patch", "", "services", "default")
            .named("web")
            .subresource("status");
        log.record(&AuditRecord::new(&user, &attrs, false));
        log.record(&AuditRecord::new(
            &user,
            &Attributes::non_resource("get", "/version"),
            true,
        ));
        let records = read(&path)?;
        std::fs::remove_dir_all(&dir)?;
        assert_eq!(records.len(), 2);
        assert_eq!(records[0].attributes(), attrs);
        assert!(!records[0].allowed);
        assert_eq!(records[1].path, "/version");
        assert!(records[1].allowed && !records[1].resource_request);
        Ok(())
    }
}
