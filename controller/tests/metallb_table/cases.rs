//! The shape of a replayed MetalLB case, and builders for the manifests it is written as.

/// Whether a configuration is accepted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Valid,
    /// Rejected.
    Invalid,
}

/// One case of a MetalLB test table.
pub struct Case {
    /// MetalLB's test function.
    pub test: &'static str,
    /// MetalLB's description of the case.
    pub name: &'static str,
    /// MetalLB's verdict.
    pub metallb: Verdict,
    /// The case as `metallb.io` manifests.
    pub yaml: String,
    /// Why ferrolb deliberately decides otherwise, when it does.
    pub differs: Option<&'static str>,
}

impl Case {
    /// Marks a deliberate difference.
    pub fn differs(mut self, reason: &'static str) -> Self {
        self.differs = Some(reason);
        self
    }
}

/// A case of `test` named `name` on which MetalLB decides `metallb`.
pub fn case(test: &'static str, name: &'static str, metallb: Verdict, docs: &[String]) -> Case {
    Case {
        test,
        name,
        metallb,
        yaml: docs.join("---\n"),
        differs: None,
    }
}

const NS: &str = "metallb-system";

/// One object; `spec` is a YAML flow mapping (`{…}`) or empty for no spec.
fn object(api_version: &str, kind: &str, metadata: &str, spec: &str) -> String {
    let mut doc = format!("apiVersion: {api_version}\nkind: {kind}\nmetadata: {metadata}\n");
    if !spec.is_empty() {
        doc.push_str(&format!("spec: {spec}\n"));
    }
    doc
}

fn meta(name: &str) -> String {
    format!("{{name: {name}, namespace: {NS}}}")
}

fn meta_labels(name: &str, labels: &str) -> String {
    format!("{{name: {name}, namespace: {NS}, labels: {labels}}}")
}

/// A `metallb.io/v1beta1` IPAddressPool.
pub fn pool(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta1", "IPAddressPool", &meta(name), spec)
}

/// An IPAddressPool with labels (a flow mapping).
pub fn pool_labels(name: &str, labels: &str, spec: &str) -> String {
    object(
        "metallb.io/v1beta1",
        "IPAddressPool",
        &meta_labels(name, labels),
        spec,
    )
}

/// An IPAddressPool without a name.
pub fn pool_unnamed(spec: &str) -> String {
    object(
        "metallb.io/v1beta1",
        "IPAddressPool",
        &format!("{{namespace: {NS}}}"),
        spec,
    )
}

/// A `metallb.io/v1beta2` BGPPeer.
pub fn peer(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta2", "BGPPeer", &meta(name), spec)
}

/// A `metallb.io/v1beta1` L2Advertisement.
pub fn l2(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta1", "L2Advertisement", &meta(name), spec)
}

/// A `metallb.io/v1beta1` BGPAdvertisement.
pub fn bgp_adv(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta1", "BGPAdvertisement", &meta(name), spec)
}

/// A `metallb.io/v1beta1` BFDProfile.
pub fn bfd(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta1", "BFDProfile", &meta(name), spec)
}

/// A `metallb.io/v1beta1` Community.
pub fn community(name: &str, spec: &str) -> String {
    object("metallb.io/v1beta1", "Community", &meta(name), spec)
}

/// A Node with labels (a flow mapping, `{}` for none).
pub fn node(name: &str, labels: &str) -> String {
    object(
        "v1",
        "Node",
        &format!("{{name: {name}, labels: {labels}}}"),
        "",
    )
}

/// A Namespace with labels (a flow mapping, `{}` for none).
pub fn namespace(name: &str, labels: &str) -> String {
    object(
        "v1",
        "Namespace",
        &format!("{{name: {name}, labels: {labels}}}"),
        "",
    )
}

/// A Secret of `type` with `data` (a flow mapping of base64 values).
pub fn secret(name: &str, namespace: &str, type_: &str, data: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata: {{name: {name}, namespace: {namespace}}}\n\
         type: {type_}\ndata: {data}\n"
    )
}
