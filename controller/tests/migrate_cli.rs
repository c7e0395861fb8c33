//! Runs the built `ferrolb-controller migrate` on a directory of MetalLB manifests
//! (tests/data/metallb) like a user would, then checks its output with `validate`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn controller(args: &[&std::ffi::OsStr]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ferrolb-controller"))
        .args(args)
        .output()
        .expect("ferrolb-controller runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/metallb")
}

/// A fresh directory for one test, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let dir =
            std::env::temp_dir().join(format!("ferrolb-migrate-cli-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create temp dir");
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn a_metallb_directory_migrates_to_a_valid_ferrolb_configuration() {
    let dir = TempDir::new("sample");
    let out_file = dir.0.join("ferrolb.yaml");
    let out = controller(&[
        "migrate".as_ref(),
        "-f".as_ref(),
        sample().as_os_str(),
        "-o".as_ref(),
        out_file.as_os_str(),
    ]);
    let report = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{report}{}", text(&out.stderr));
    let lines: Vec<&str> = report.lines().collect();
    let has = |prefix: &str, part: &str| {
        assert!(
            lines
                .iter()
                .any(|l| l.starts_with(prefix) && l.contains(part)),
            "no {prefix:?}…{part:?} in:\n{report}"
        );
    };
    has("note: objects keep their namespace (metallb-system)", "");
    has(
        "skipped: ",
        "v1 Secret metallb-system/tor-password: not MetalLB configuration",
    );
    has(
        "skipped: ",
        "metallb.io/v1beta1 ServiceL2Status metallb-system/l2-abcde: MetalLB's own status",
    );
    assert_eq!(
        lines.iter().rev().nth(1).copied(),
        Some(
            "migrated: 1 BFDProfile, 1 BGPAdvertisement, 2 BGPPeer, 1 Community, 2 \
             IPAddressPool, 1 L2Advertisement"
        ),
        "{report}"
    );
    assert_eq!(
        lines.last().copied(),
        Some(format!("wrote {}", out_file.display()).as_str())
    );

    // The output is ferrolb.io only, with the right kinds and names.
    let yaml = std::fs::read_to_string(&out_file).expect("output written");
    assert!(!yaml.contains("metallb.io"), "{yaml}");
    // dualStackAddressFamily means the same in both groups: carried over as written.
    assert!(yaml.contains("dualStackAddressFamily: true"), "{yaml}");
    let kinds: Vec<String> = yaml
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(String::from)
        .collect();
    assert_eq!(
        kinds,
        vec![
            "BGPPeer",
            "BGPPeer",
            "BFDProfile",
            "Community",
            "BGPAdvertisement",
            "L2Advertisement",
            "IPAddressPool",
            "IPAddressPool"
        ]
    );
    assert_eq!(
        yaml.lines()
            .filter(|l| *l == "apiVersion: ferrolb.io/v1beta1")
            .count(),
        8
    );

    // `validate` accepts it and counts what was migrated.
    let checked = controller(&["validate".as_ref(), "-f".as_ref(), out_file.as_os_str()]);
    let summary = text(&checked.stdout);
    assert_eq!(checked.status.code(), Some(0), "{summary}\n{yaml}");
    assert!(
        summary.lines().last().is_some_and(|l| l.starts_with(
            "ok: 2 pools (IPv4: 283 addresses, IPv6: 256 addresses), 1 L2 advertisements, 1 BGP \
             advertisements, 2 BGP peers, 1 BFD profiles"
        )),
        "{summary}"
    );
}

#[test]
fn without_output_the_objects_go_to_stdout_and_the_report_to_stderr() {
    let out = controller(&[
        "migrate".as_ref(),
        "-f".as_ref(),
        sample().join("l2.yaml").as_os_str(),
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with("apiVersion: ferrolb.io/v1beta1\nkind: L2Advertisement\n")
    );
    assert!(text(&out.stderr).ends_with("migrated: 1 L2Advertisement\n"));
}

#[test]
fn an_object_ferrolb_rejects_fails_and_is_kept_in_the_output() {
    let dir = TempDir::new("interface");
    let input = dir.0.join("peer.yaml");
    std::fs::write(
        &input,
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor, namespace: \
         metallb-system}\nspec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, \
         interface: eth0}\n",
    )
    .expect("write input");
    let out = controller(&["migrate".as_ref(), "-f".as_ref(), input.as_os_str()]);
    assert_eq!(out.status.code(), Some(1));
    let report = text(&out.stderr);
    assert!(
        report.lines().any(|l| l.starts_with("error: ")
            && l.contains(
                "BGPPeer metallb-system/tor: spec.interface: is set together with peerAddress"
            )),
        "{report}"
    );
    assert!(text(&out.stdout).contains("interface: eth0"));
}

/// MetalLB's unnumbered peers move over as written.
#[test]
fn an_unnumbered_peer_moves_over() {
    let dir = TempDir::new("unnumbered");
    let input = dir.0.join("peer.yaml");
    std::fs::write(
        &input,
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: tor, namespace: \
         metallb-system}\nspec: {myASN: 64512, peerASN: 64500, interface: eth0}\n",
    )
    .expect("write input");
    let out = controller(&["migrate".as_ref(), "-f".as_ref(), input.as_os_str()]);
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("interface: eth0"));
}
