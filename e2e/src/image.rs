//! The shipped OCI image, opened without a container runtime: `scripts/build-image.sh`
//! writes an OCI archive; [`UnpackedImage::unpack`] extracts its layout and lets `umoci`
//! lay out the root filesystem, so tests and the lab run the very binaries users pull.
//! (Containers cannot be started on these machines; the image's binaries run from the
//! unpacked root, as the image's user where the image says so.)

use anyhow::{Context, anyhow, bail};
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The archive `scripts/build-image.sh` writes for this version of the workspace.
pub fn default_archive() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("target")
        .join("image")
        .join(format!("ferrolb-{}.oci.tar", env!("CARGO_PKG_VERSION")))
}

/// What the image's configuration says about how to run it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageConfig {
    /// `config.User` (e.g. `65532:65532`); empty means root.
    pub user: String,
    pub entrypoint: Vec<String>,
    pub cmd: Vec<String>,
    pub labels: BTreeMap<String, String>,
}

impl ImageConfig {
    /// The numeric uid and gid of [`ImageConfig::user`] (a scratch image has no passwd file,
    /// so only numeric users can be resolved); `None` for root.
    pub fn uid_gid(&self) -> anyhow::Result<Option<(u32, u32)>> {
        if self.user.is_empty() {
            return Ok(None);
        }
        let (u, g) = self
            .user
            .split_once(':')
            .unwrap_or((&self.user, &self.user));
        let uid: u32 = u
            .parse()
            .with_context(|| format!("image user {:?} is not numeric", self.user))?;
        let gid: u32 = g
            .parse()
            .with_context(|| format!("image group {:?} is not numeric", self.user))?;
        Ok(Some((uid, gid)))
    }
}

/// An image unpacked into a private directory, removed on drop.
#[derive(Debug)]
pub struct UnpackedImage {
    dir: PathBuf,
    /// `sha256:…` of the manifest the archive's index names.
    pub manifest_digest: String,
    /// The tag inside the archive (`org.opencontainers.image.ref.name`).
    pub reference: String,
    pub config: ImageConfig,
    /// Compressed size of the layers (what a registry stores and a node pulls), in bytes.
    pub compressed_layer_bytes: u64,
}

impl UnpackedImage {
    /// Unpacks `archive` (an OCI archive) under a new directory inside `parent`.
    pub fn unpack(archive: &Path, parent: &Path) -> anyhow::Result<UnpackedImage> {
        if !archive.is_file() {
            bail!(
                "{} does not exist: build the image first with scripts/build-image.sh",
                archive.display()
            );
        }
        let dir = parent.join(format!("ferrolb-image-{}", std::process::id()));
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .with_context(|| format!("removing the old {}", dir.display()))?;
        }
        let layout = dir.join("layout");
        std::fs::create_dir_all(&layout)
            .with_context(|| format!("creating {}", layout.display()))?;
        // From here on `image` removes `dir` on every error path.
        let mut image = UnpackedImage {
            dir,
            manifest_digest: String::new(),
            reference: String::new(),
            config: ImageConfig {
                user: String::new(),
                entrypoint: Vec::new(),
                cmd: Vec::new(),
                labels: BTreeMap::new(),
            },
            compressed_layer_bytes: 0,
        };
        run(Command::new("tar")
            .arg("-xf")
            .arg(archive)
            .arg("-C")
            .arg(&layout))?;
        let index = read_json(&layout.join("index.json"))?;
        let manifest_ref = index["manifests"]
            .get(0)
            .ok_or_else(|| anyhow!("{}: index.json lists no manifest", archive.display()))?;
        image.manifest_digest = str_field(manifest_ref, "digest")?.to_string();
        image.reference = manifest_ref["annotations"]["org.opencontainers.image.ref.name"]
            .as_str()
            .ok_or_else(|| anyhow!("{}: the manifest has no ref.name", archive.display()))?
            .to_string();
        let manifest = read_json(&blob(&layout, &image.manifest_digest)?)?;
        let config_digest = str_field(&manifest["config"], "digest")?;
        let config = read_json(&blob(&layout, config_digest)?)?;
        image.config = image_config(&config["config"]);
        image.compressed_layer_bytes = manifest["layers"]
            .as_array()
            .map(|ls| ls.iter().filter_map(|l| l["size"].as_u64()).sum())
            .unwrap_or(0);
        run(Command::new("umoci")
            .arg("unpack")
            .arg("--image")
            .arg(format!("{}:{}", layout.display(), image.reference))
            .arg(image.dir.join("bundle")))?;
        Ok(image)
    }

    /// The image's root filesystem.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.join("bundle").join("rootfs")
    }

    /// A file of the image by its absolute path inside the image (`/ferrolb-speaker`).
    pub fn path(&self, in_image: &str) -> PathBuf {
        self.rootfs().join(in_image.trim_start_matches('/'))
    }
}

impl Drop for UnpackedImage {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            tracing::warn!(dir = %self.dir.display(), "removing the unpacked image: {e}");
        }
    }
}

fn run(cmd: &mut Command) -> anyhow::Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("running {cmd:?} (scripts/install-test-deps.sh installs it)"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    Ok(())
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("parsing {}", path.display()))
}

fn str_field<'a>(v: &'a Value, field: &str) -> anyhow::Result<&'a str> {
    v[field]
        .as_str()
        .ok_or_else(|| anyhow!("OCI document without {field}: {v}"))
}

/// The blob file of `digest` (`sha256:…`) in an OCI layout.
fn blob(layout: &Path, digest: &str) -> anyhow::Result<PathBuf> {
    let (algo, hex) = digest
        .split_once(':')
        .ok_or_else(|| anyhow!("malformed digest {digest:?}"))?;
    if algo != "sha256" || hex.len() != 64 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        bail!("unexpected digest {digest:?}");
    }
    Ok(layout.join("blobs").join(algo).join(hex))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

fn image_config(c: &Value) -> ImageConfig {
    ImageConfig {
        user: c["User"].as_str().unwrap_or("").to_string(),
        entrypoint: strings(&c["Entrypoint"]),
        cmd: strings(&c["Cmd"]),
        labels: c["Labels"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                    .collect()
            })
            .unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numeric_users_resolve_and_names_do_not() {
        let mut c = image_config(&serde_json::json!({"User": "65532:65533"}));
        assert_eq!(c.uid_gid().ok().flatten(), Some((65532, 65533)));
        c.user = "65532".into();
        assert_eq!(c.uid_gid().ok().flatten(), Some((65532, 65532)));
        c.user = String::new();
        assert_eq!(c.uid_gid().ok().flatten(), None);
        c.user = "nonroot".into();
        assert!(c.uid_gid().is_err());
    }

    #[test]
    fn blob_paths_accept_only_sha256_digests() {
        let l = Path::new("/x");
        let hex = "a".repeat(64);
        assert_eq!(
            blob(l, &format!("sha256:{hex}")).ok(),
            Some(PathBuf::from(format!("/x/blobs/sha256/{hex}")))
        );
        assert!(blob(l, "sha256:../../etc/passwd").is_err());
        assert!(blob(l, &format!("sha512:{hex}")).is_err());
        assert!(blob(l, "nodigest").is_err());
    }
}
