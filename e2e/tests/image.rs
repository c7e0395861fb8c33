//! The shipped OCI image (`scripts/build-image.sh` → target/image/ferrolb-<version>.oci.tar),
//! checked the way a node would run it, without a container runtime: unpacked with umoci, its
//! binaries run from the unpacked root as the image's user (`chroot --userspec`), `validate`
//! over the examples copied in, and a whole lab whose controller and speakers are the image's
//! binaries. Needs root (chroot, the lab); CI builds the image before the tests
//! (scripts/test.sh) and fails here if it is missing. `FERROLB_IMAGE` names another archive.

use ferrolb_e2e::image::{UnpackedImage, default_archive};
use ferrolb_e2e::lab;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The archive to check, or `None` (skip, with the reason printed) outside CI.
fn archive_or_skip(test: &str) -> Option<PathBuf> {
    if !lab::tools_or_skip(test, &["umoci", "chroot", "tar"]) {
        return None;
    }
    let archive = std::env::var_os("FERROLB_IMAGE")
        .map(PathBuf::from)
        .unwrap_or_else(default_archive);
    if archive.is_file() {
        return Some(archive);
    }
    let why = format!(
        "{test}: {} is missing: build it with scripts/build-image.sh",
        archive.display()
    );
    if lab::root::in_ci() {
        panic!("CI is set but the test cannot run: {why}");
    }
    eprintln!("SKIPPED {why}");
    None
}

/// Runs `/bin_in_image args` chrooted into `rootfs` as `user` ("uid:gid", or "" for root).
fn run_in_image(rootfs: &Path, user: &str, argv: &[&str]) -> (bool, String, String) {
    // Resolved here: the child's environment is cleared (the image has nothing to offer a
    // PATH lookup anyway).
    let chroot = std::env::var_os("PATH")
        .and_then(|p| {
            std::env::split_paths(&p)
                .map(|d| d.join("chroot"))
                .find(|c| c.is_file())
        })
        .expect("chroot on PATH");
    let mut cmd = Command::new(chroot);
    if !user.is_empty() {
        cmd.arg(format!("--userspec={user}")).arg("--groups=");
    }
    let out = cmd
        .arg(rootfs)
        .args(argv)
        .env_clear()
        .output()
        .expect("running chroot");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn needs_shared_libraries(binary: &Path) -> bool {
    let out = Command::new("readelf")
        .arg("-d")
        .arg(binary)
        .output()
        .expect("running readelf");
    String::from_utf8_lossy(&out.stdout).contains("(NEEDED)")
}

#[test]
fn the_image_holds_two_static_binaries_that_run_as_its_user() {
    let Some(archive) = archive_or_skip("image_contents") else {
        return;
    };
    let image = UnpackedImage::unpack(&archive, &std::env::temp_dir()).expect("unpack");
    let version = env!("CARGO_PKG_VERSION");
    eprintln!(
        "image {} manifest {}: {:.2} MB compressed layers, archive {:.2} MB",
        image.reference,
        image.manifest_digest,
        image.compressed_layer_bytes as f64 / 1e6,
        std::fs::metadata(&archive).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
    );
    assert_eq!(image.reference, version, "the archive's tag");
    let c = &image.config;
    assert_eq!(c.user, "65532:65532", "{c:?}");
    assert_eq!(c.entrypoint, ["/ferrolb-controller"], "{c:?}");
    assert_eq!(c.cmd, ["run"], "{c:?}");
    for (label, want) in [
        ("org.opencontainers.image.version", Some(version)),
        ("org.opencontainers.image.licenses", Some("Apache-2.0")),
        ("org.opencontainers.image.source", None),
        ("org.opencontainers.image.revision", None),
    ] {
        let got = c.labels.get(label).map(String::as_str);
        assert!(got.is_some_and(|g| !g.is_empty()), "label {label}: {c:?}");
        if let Some(w) = want {
            assert_eq!(got, Some(w), "label {label}");
        }
    }
    assert!(
        image.compressed_layer_bytes < 20_000_000,
        "image is {} bytes compressed; the target is under 20 MB",
        image.compressed_layer_bytes
    );

    // Nothing but the two binaries, both statically linked.
    let mut entries: Vec<String> = std::fs::read_dir(image.rootfs())
        .expect("rootfs")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect();
    entries.sort();
    assert_eq!(entries, ["ferrolb-controller", "ferrolb-speaker"]);
    for bin in ["/ferrolb-controller", "/ferrolb-speaker"] {
        assert!(
            !needs_shared_libraries(&image.path(bin)),
            "{bin} needs shared libraries"
        );
    }

    let rootfs = image.rootfs();
    for (bin, user) in [
        ("/ferrolb-controller", c.user.as_str()),
        ("/ferrolb-speaker", ""),
    ] {
        let (ok, out, err) = run_in_image(&rootfs, user, &[bin, "--version"]);
        assert!(ok, "{bin} --version: {err}");
        let name = bin.trim_start_matches('/');
        assert_eq!(out.trim(), format!("{name} {version}"), "{bin} --version");
    }

    // `validate` over every example, read from inside the image's root.
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples");
    let inside = rootfs.join("examples");
    std::fs::create_dir_all(&inside).expect("mkdir examples");
    let mut names = Vec::new();
    for e in std::fs::read_dir(&examples).expect("deploy/examples") {
        let p = e.expect("entry").path();
        if p.extension().is_some_and(|x| x == "yaml") {
            let name = p.file_name().expect("name").to_string_lossy().into_owned();
            std::fs::copy(&p, inside.join(&name)).expect("copy example");
            names.push(name);
        }
    }
    assert!(names.len() >= 5, "examples: {names:?}");
    let (ok, out, err) = run_in_image(
        &rootfs,
        &c.user,
        &["/ferrolb-controller", "validate", "-f", "/examples"],
    );
    assert!(ok, "validate -f /examples in the image:\n{out}\n{err}");
    // The same verdict as the workspace's binary gives on deploy/examples.
    assert!(
        out.starts_with("ok: 3 pools") && out.contains("BGP peers"),
        "validate -f /examples in the image:\n{out}"
    );
    // And a broken manifest is reported from inside the image too.
    std::fs::write(
        inside.join("broken.yaml"),
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata:\n  name: bad\n  namespace: ferrolb-system\nspec:\n  addresses: [\"10.200.0.300/24\"]\n",
    )
    .expect("write broken.yaml");
    let (ok, out, err) = run_in_image(
        &rootfs,
        &c.user,
        &[
            "/ferrolb-controller",
            "validate",
            "-f",
            "/examples/broken.yaml",
        ],
    );
    assert!(!ok, "a broken pool must fail validation:\n{out}\n{err}");
    assert!(
        format!("{out}{err}").contains("bad"),
        "the error names the object:\n{out}\n{err}"
    );
}

#[test]
fn the_lab_runs_on_the_image_binaries() {
    let Some(archive) = archive_or_skip("lab_from_image") else {
        return;
    };
    if !lab::tools_or_skip("lab_from_image", &["ip", "bird", "birdc", "setpriv"]) {
        return;
    }
    let out = Command::new(env!("CARGO_BIN_EXE_ferrolb-e2e"))
        .args(["lab", "--once", "--json", "--from-image"])
        .arg(&archive)
        .output()
        .expect("running ferrolb-e2e lab --from-image");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let r: Value = serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{stdout}\n--- stderr:\n{stderr}"));
    assert_eq!(r["ok"], true, "lab from the image: {:#}", r["failures"]);
    assert_eq!(out.status.code(), Some(0));
    let image = r["image"].as_str().expect("the report names the image");
    assert!(
        image.starts_with(env!("CARGO_PKG_VERSION")) && image.contains("sha256:"),
        "{image}"
    );
    assert_eq!(r["leftoverNamespaces"], serde_json::json!([]), "{r:#}");
    assert_eq!(r["leftoverPids"], serde_json::json!([]), "{r:#}");
    // The processes really were the image's: the lab prints the binaries it starts.
    assert!(
        stderr.contains("/bundle/rootfs/ferrolb-controller")
            && stderr.contains("/bundle/rootfs/ferrolb-speaker"),
        "the lab names the image's binaries it runs:\n{stderr}"
    );
}
