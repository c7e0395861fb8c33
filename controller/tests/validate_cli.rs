//! Runs the built `ferrolb-controller validate` like a user would.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(args: &[&Path]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"));
    cmd.arg("validate");
    for a in args {
        cmd.arg("-f").arg(a);
    }
    cmd.output().expect("ferrolb-controller runs")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "ferrolb-validate-cli-{name}-{}",
            std::process::id()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }

    fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.0.join(name);
        std::fs::write(&path, text).expect("write temp file");
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn deploy_examples_are_valid() {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let out = run(&[&examples]);
    let text = stdout(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{text}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(text.lines().count(), 1, "{text}");
    assert!(
        text.starts_with(
            "ok: 3 pools (IPv4: 552 addresses, IPv6: 296 addresses), 1 L2 advertisements, 2 BGP \
             advertisements, 2 BGP peers, 1 BFD profiles"
        ),
        "{text}"
    );
}

const THREE_ERRORS: &str = "\
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: first
  namespace: ferrolb-system
spec:
  addresses:
    - 10.0.0.0/24
---
apiVersion: ferrolb.io/v1beta1
kind: IPAddressPool
metadata:
  name: second
  namespace: ferrolb-system
spec:
  addresses:
    - 10.0.0.128-10.0.1.10
    - 192.168.1.0/33
---
apiVersion: metallb.io/v1beta1
kind: L2Advertisement
metadata:
  name: lan
  namespace: ferrolb-system
spec:
  ipAddressPools:
    - first
    - first
";

#[test]
fn every_error_is_reported_with_object_and_field() {
    let dir = TempDir::new("three");
    let file = dir.write("three.yaml", THREE_ERRORS);
    let out = run(&[&file]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    let has = |prefix: &str, part: &str| {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(prefix) && l.contains(part)),
            "no {prefix:?}…{part:?} in:\n{text}"
        );
    };
    has(
        "error: IPAddressPool ferrolb-system/second: spec.addresses[0]: ",
        "overlaps \"10.0.0.0/24\" (spec.addresses[0]) of IPAddressPool ferrolb-system/first in 10.0.0.128/25",
    );
    has(
        "error: IPAddressPool ferrolb-system/second: spec.addresses[1]: ",
        "prefix length \"33\" is not a number from 0 to 32",
    );
    has(
        "error: L2Advertisement ferrolb-system/lan: spec.ipAddressPools[1]: ",
        "\"first\" is listed twice (also spec.ipAddressPools[0])",
    );
}

#[test]
fn bad_yaml_names_file_and_line() {
    let dir = TempDir::new("bad-yaml");
    let file = dir.write(
        "bad.yaml",
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: x\nspec:\n  \
         addresses: [10.0.0.0/24\n  autoAssign: false\n",
    );
    let out = run(&[&file]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected = format!("error: {}:7:", file.display());
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with(&expected) && l.contains("invalid YAML")),
        "{text}"
    );
}

#[test]
fn wrong_field_names_file_document_and_object() {
    let dir = TempDir::new("wrong-field");
    let file = dir.write(
        "peer.yaml",
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: x}\n---\napiVersion: ferrolb.io/v1beta1\n\
         kind: BGPPeer\nmetadata: {name: router, namespace: ns}\nspec:\n  myASN: 64512\n  \
         peerASN: 64500\n  peerAddress: 10.0.0.1\n  holdtime: 9s\n",
    );
    let out = run(&[&file]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(1), "{text}");
    let expected = format!(
        "error: {}:5: document 2 (BGPPeer ns/router): spec.holdtime: unknown field; did you mean \"holdTime\"?",
        file.display()
    );
    assert!(
        text.lines()
            .next()
            .is_some_and(|l| l.starts_with(&expected)),
        "{text}"
    );
}
