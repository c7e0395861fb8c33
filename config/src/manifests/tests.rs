use super::*;

fn read(text: &str) -> Manifests {
    let mut m = Manifests::default();
    m.add("test.yaml", text);
    m
}

fn errors(m: &Manifests) -> Vec<String> {
    m.errors.iter().map(|e| e.to_string()).collect()
}

#[test]
fn reads_our_kinds_and_metallb_ones_and_skips_others() {
    let m = read(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: a, namespace: ns}\n\
         spec:\n  addresses: [10.0.0.0/24]\n\
         ---\n\
         ---\n\
         # only a comment\n\
         ---\n\
         apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r}\n\
         spec: {myASN: 64512, peerASN: 64500, peerAddress: 10.0.0.1, holdTime: 9s}\n\
         ---\n\
         apiVersion: metallb.io/v1beta1\nkind: L2Advertisement\nmetadata: {name: l2}\n\
         ---\n\
         apiVersion: v1\nkind: Service\nmetadata: {name: s}\nspec: {type: LoadBalancer}\n\
         ---\n\
         apiVersion: v1\nkind: List\nitems:\n- apiVersion: metallb.io/v1beta1\n  kind: Community\n  \
         metadata: {name: c}\n  spec: {communities: [{name: no, value: '65535:65281'}]}\n",
    );
    assert_eq!(errors(&m), Vec::<String>::new());
    assert_eq!(m.inputs.pools.len(), 1);
    assert_eq!(m.inputs.peers[0].spec.hold_time.as_deref(), Some("9s"));
    assert_eq!(
        m.inputs.l2_advertisements.len(),
        1,
        "a missing spec is an empty one"
    );
    // YAML 1.2 booleans: `no` is the string "no".
    assert_eq!(m.inputs.communities[0].spec.communities[0].name, "no");
    assert_eq!(m.skipped_count(), 1);
}

#[test]
fn missing_required_fields_are_reported() {
    let m = read("apiVersion: metallb.io/v1beta1\nkind: IPAddressPool\nmetadata: {name: p}\n");
    assert_eq!(
        errors(&m),
        vec!["test.yaml:1: document 1 (IPAddressPool p): spec.addresses: is required but missing"]
    );
}

#[test]
fn wrong_types_and_unknown_fields_name_file_document_and_object() {
    let m = read(
        "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n\
         ---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: router\n  namespace: ns\n\
         spec:\n  myASN: many\n  peerASN: 1\n  peerAddress: 10.0.0.1\n  holdtime: 9s\n",
    );
    assert_eq!(
        errors(&m),
        vec![
            "test.yaml:5: document 2 (BGPPeer ns/router): spec.holdtime: unknown field; did you mean \
             \"holdTime\"? accepted: bfdProfile, connectTime, disableMP, dualStackAddressFamily, \
             dynamicASN, ebgpMultiHop, enableGracefulRestart, gracefulRestartTime, holdTime, \
             interface, keepaliveTime, localASN, myASN, nodeSelectors, password, passwordSecret, peerASN, \
             peerAddress, peerPort, routerID, sourceAddress, vrf",
            "test.yaml:5: document 2 (BGPPeer ns/router): spec.myASN: expected a whole number, got \
             string \"many\"",
        ]
    );
    assert!(m.inputs.peers.is_empty());
}

#[test]
fn bad_yaml_reports_file_and_line() {
    let m = read(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAddressPool\nspec:\n  addresses: [10.0.0.0/24\n  x: y\n",
    );
    assert_eq!(m.errors.len(), 1);
    let ManifestError::Yaml { file, line, .. } = &m.errors[0] else {
        panic!("{:?}", m.errors)
    };
    assert_eq!((file.as_str(), *line), ("test.yaml", 5));
    assert!(
        errors(&m)[0].starts_with("test.yaml:5:"),
        "{:?}",
        errors(&m)
    );
}

#[test]
fn unsupported_api_version_of_our_kind() {
    let m = read(
        "apiVersion: ferrolb.io/v2\nkind: IPAddressPool\nmetadata: {name: a}\nspec: {addresses: []}\n",
    );
    assert_eq!(
        errors(&m),
        vec![
            "test.yaml:1: document 1 (IPAddressPool a): apiVersion: \"ferrolb.io/v2\" is not \
             supported; accepted: ferrolb.io/v1beta1, metallb.io/v1beta1, metallb.io/v1beta2"
        ]
    );
}

#[test]
fn non_object_documents_are_reported() {
    let m = read("- a\n- b\n");
    assert_eq!(
        errors(&m),
        vec![
            "test.yaml:1: document 1: not a Kubernetes object (expected a mapping with apiVersion, \
             kind, metadata and spec)"
        ]
    );
}

#[test]
fn misspelled_kinds_of_our_groups_are_errors() {
    let m = read(
        "apiVersion: ferrolb.io/v1beta1\nkind: IPAdressPool\nmetadata: {name: a}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: BGPPeers\nmetadata: {name: b}\n---\n\
         apiVersion: metallb.io/v1beta1\nkind: ServiceL2Status\nmetadata: {name: c}\n",
    );
    assert_eq!(
        errors(&m),
        vec![
            "test.yaml:1: document 1 (IPAdressPool a): kind: \"IPAdressPool\" is not a kind ferrolb \
             reads; did you mean IPAddressPool? accepted: IPAddressPool, L2Advertisement, \
             BGPAdvertisement, BGPPeer, BFDProfile, Community",
            "test.yaml:5: document 2 (BGPPeers b): kind: \"BGPPeers\" is not a kind ferrolb reads; \
             did you mean BGPPeer? accepted: IPAddressPool, L2Advertisement, BGPAdvertisement, \
             BGPPeer, BFDProfile, Community",
        ]
    );
    assert_eq!(
        m.skipped_count(),
        1,
        "MetalLB's own status kinds are skipped"
    );
}

/// MetalLB's unnumbered peers are read as ferrolb.io's; their zero values mean "unset" as in
/// MetalLB's Go types.
#[test]
fn metallb_unnumbered_peers_are_read() {
    let m = read(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r, namespace: ns}\n\
         spec: {myASN: 1, peerASN: 2, peerAddress: '', vrf: '', localASN: 0, interface: eth0}\n",
    );
    assert_eq!(errors(&m), Vec::<String>::new());
    let spec = &m.inputs.peers[0].spec;
    assert_eq!(
        (spec.interface.as_deref(), spec.peer_address.as_str()),
        (Some("eth0"), "")
    );
}

/// MetalLB's `vrf` and `localASN` are read as ferrolb.io's.
#[test]
fn metallb_vrf_and_local_asn_are_carried_over() {
    let m = read(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: r, namespace: ns}\n\
         spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1, vrf: red, localASN: 65010}\n",
    );
    assert_eq!(errors(&m), Vec::<String>::new());
    let spec = &m.inputs.peers[0].spec;
    assert_eq!(
        (spec.vrf.as_deref(), spec.local_asn),
        (Some("red"), Some(65010))
    );
}

/// A BGPPeer of either group has single-family sessions unless dualStackAddressFamily is
/// true, as in MetalLB.
#[test]
fn metallb_peers_keep_their_address_families() {
    let m = read(
        "apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: a}\n\
         spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.1}\n---\n\
         apiVersion: metallb.io/v1beta2\nkind: BGPPeer\nmetadata: {name: b}\n\
         spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.2, dualStackAddressFamily: true}\n---\n\
         apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata: {name: c}\n\
         spec: {myASN: 1, peerASN: 2, peerAddress: 10.0.0.3}\n",
    );
    assert_eq!(errors(&m), Vec::<String>::new());
    let dual: Vec<bool> = m
        .inputs
        .peers
        .iter()
        .map(|p| p.spec.dual_stack_address_family)
        .collect();
    assert_eq!(dual, vec![false, true, false]);
}
