//! Body of the `apiserver_request` fuzz target (`fuzz/`): the parts of a request the in-memory
//! API server reads from a client's bytes — label and field selectors, patch bodies, protobuf
//! envelopes — through their public entry points in [`crate::apiserver`]. The fuzz target
//! calls it, and the test below replays every seed and crash reproducer of
//! `fuzz/seeds/apiserver_request/` through it on stable Rust, so a regression fails
//! `cargo test`.
//!
//! Not for production code paths: the panics are the point.

use crate::apiserver::patch::{apply, json_patch, merge_patch, strategic_merge};
use crate::apiserver::protobuf::{decode_delete_options, decode_object};
use crate::apiserver::selectors::{FieldSelector, LabelSelector};
use serde_json::{Value, json};

/// The object selectors are matched against and patches applied to.
fn service() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": "web",
            "namespace": "default",
            "labels": {"app": "web", "tier": "frontend"},
            "annotations": {"ferrolb.io/address-pool": "small"},
        },
        "spec": {
            "type": "LoadBalancer",
            "ports": [{"name": "http", "port": 80, "protocol": "TCP"}],
            "selector": {"app": "web"},
        },
        "status": {"loadBalancer": {"ingress": [{"ip": "10.200.0.10"}]}},
    })
}

/// The first byte of `data` (modulo 4) selects what the rest is: 0 a label selector, 1 a
/// field selector preceded by the kind and a newline, 2 a patch body (applied as a merge,
/// JSON, strategic merge and apply patch), 3 a protobuf body (as an object and as
/// DeleteOptions). Invariants: no panic; a parsed selector matches without panicking and an
/// empty one matches everything; a merge patch leaves an object; a decoded protobuf object is
/// a JSON object carrying an apiVersion and a kind.
pub fn apiserver_request(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    match mode % 4 {
        0 => label_selector(&String::from_utf8_lossy(rest)),
        1 => field_selector(&String::from_utf8_lossy(rest)),
        2 => patch(rest),
        _ => protobuf(rest),
    }
}

fn label_selector(text: &str) {
    if let Ok(selector) = LabelSelector::parse(text) {
        let matched = selector.matches(&service());
        // Whitespace as Kubernetes' selector lexer knows it.
        if text.trim_matches([' ', '\t', '\r', '\n']).is_empty() {
            assert!(matched, "an empty label selector matches everything");
        }
        let _ = selector.matches(&json!({}));
    }
}

fn field_selector(text: &str) {
    let (kind, selector) = text.split_once('\n').unwrap_or(("Service", text));
    if let Ok(selector) = FieldSelector::parse(selector, kind) {
        let _ = selector.matches(&service());
        let _ = selector.matches(&json!({"metadata": 7}));
    }
}

fn patch(body: &[u8]) {
    let Ok(patch) = serde_json::from_slice::<Value>(body) else {
        return;
    };
    let mut merged = service();
    if merge_patch(&mut merged, &patch).is_ok() {
        assert!(merged.is_object() || !patch.is_object());
    }
    let _ = json_patch(&mut service(), &patch);
    let _ = strategic_merge("Service", &mut service(), &patch);
    let _ = apply("Service", &mut service(), &patch);
}

fn protobuf(body: &[u8]) {
    if let Ok(obj) = decode_object(body, ("v1", "Service")) {
        assert!(obj.is_object());
        assert!(obj.get("apiVersion").is_some_and(Value::is_string));
        assert!(obj.get("kind").is_some_and(Value::is_string));
    }
    let _ = decode_delete_options(body);
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    /// Every file of `fuzz/seeds/apiserver_request/` runs through the body without a panic.
    #[test]
    fn apiserver_request_seeds_replay() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/apiserver_request");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .map(|entry| entry.expect("seed directory entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "{}: no seeds", dir.display());
        for path in files {
            let bytes = std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            let outcome = std::panic::catch_unwind(|| super::apiserver_request(&bytes));
            assert!(outcome.is_ok(), "seed {} fails", path.display());
        }
    }

    /// The protobuf seeds are real envelopes the server accepts, not noise.
    #[test]
    fn protobuf_seeds_decode() {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fuzz/seeds/apiserver_request");
        let seed = |name: &str| std::fs::read(dir.join(name)).expect("seed");
        let svc = crate::apiserver::protobuf::decode_object(
            &seed("protobuf-service")[1..],
            ("v1", "Service"),
        )
        .expect("the Service seed decodes");
        assert_eq!(svc["metadata"]["name"], "web");
        assert_eq!(svc["spec"]["ports"][0]["port"], 80);
        let untyped = crate::apiserver::protobuf::decode_object(
            &seed("protobuf-untyped")[1..],
            ("v1", "Service"),
        )
        .expect("the untyped seed decodes with the path's kind");
        assert_eq!(untyped["kind"], "Service");
        crate::apiserver::protobuf::decode_delete_options(&seed("protobuf-delete-options")[1..])
            .expect("the DeleteOptions seed decodes");
    }
}
