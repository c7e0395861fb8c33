//! What the lab deploys: the examples of `deploy/examples/` and a handful of Services, each
//! with what we expect of it (reachable from which client, or unservable and why).

use crate::cluster::Cluster;
use anyhow::Context;

const CRDS: &str = include_str!("../../../deploy/crds.yaml");
const L2_EXAMPLE: &str = include_str!("../../../deploy/examples/l2.yaml");
const BGP_EXAMPLE: &str = include_str!("../../../deploy/examples/bgp.yaml");
const DUAL_STACK_EXAMPLE: &str = include_str!("../../../deploy/examples/dual-stack.yaml");
const SHARED_IP_EXAMPLE: &str = include_str!("../../../deploy/examples/shared-ip.yaml");
const ETP_LOCAL_EXAMPLE: &str = include_str!("../../../deploy/examples/etp-local.yaml");

/// The address the unservable Service asks for: inside the lab, outside every pool.
pub const UNSERVABLE_IP: &str = "10.200.99.99";
/// The address the "specific IP" Service asks for (in lan-pool).
pub const FIXED_IP: &str = "10.200.0.220";
/// The node (1-based) that runs the only endpoint of the `externalTrafficPolicy: Local` Service.
pub const LOCAL_ENDPOINT_NODE: usize = 2;

/// Which parts of the lab to run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Scenario {
    /// Layer 2 Services, reached from the LAN client, and the failover demo.
    L2,
    /// BGP Services, reached from the upstream client through the router (BIRD).
    Bgp,
    /// Both.
    All,
    /// Swapping MetalLB for ferrolb: MetalLB's CRDs, `metallb.io` objects and Services with
    /// MetalLB's annotations and addresses are in place before ferrolb starts (layer 2 and BGP
    /// Services); no address may move and the clients' outage is measured.
    Metallb,
}

impl Scenario {
    /// The scenario has layer 2 Services.
    pub fn l2(self) -> bool {
        matches!(self, Scenario::L2 | Scenario::All | Scenario::Metallb)
    }

    /// The scenario has BGP Services (and so the router and the upstream client).
    pub fn bgp(self) -> bool {
        matches!(self, Scenario::Bgp | Scenario::All | Scenario::Metallb)
    }
}

/// How a Service's addresses are meant to be announced.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
pub enum Mode {
    L2,
    #[serde(rename = "BGP")]
    Bgp,
}

impl std::fmt::Display for Mode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Mode::L2 => "L2",
            Mode::Bgp => "BGP",
        })
    }
}

/// What must be true of a Service for the lab to call it green.
#[derive(Clone, Debug)]
pub enum Expect {
    /// Gets `count` addresses (exactly `ips` when given), reachable from the mode's client;
    /// answered by node `answered_by` (1-based) when given.
    Reachable {
        count: usize,
        ips: Vec<&'static str>,
        answered_by: Option<usize>,
    },
    /// Gets no address and the controller says why (an AllocationFailed event).
    Unservable,
}

/// One Service of the lab.
#[derive(Clone, Debug)]
pub struct SvcSpec {
    pub name: &'static str,
    /// None for a Service that is not meant to be announced at all.
    pub mode: Option<Mode>,
    pub expect: Expect,
    /// One line on what the Service shows.
    pub note: &'static str,
}

/// The Services of `scenario`, in table order.
pub fn services(scenario: Scenario) -> Vec<SvcSpec> {
    if scenario == Scenario::Metallb {
        return super::metallb::services();
    }
    let reach = |count, ips: &[&'static str], answered_by| Expect::Reachable {
        count,
        ips: ips.to_vec(),
        answered_by,
    };
    let mut v = Vec::new();
    if scenario.l2() {
        v.extend([
            SvcSpec {
                name: "web",
                mode: Some(Mode::L2),
                expect: reach(2, &[], None),
                note: "dual-stack from lan-pool",
            },
            SvcSpec {
                name: "web-local",
                mode: Some(Mode::L2),
                expect: reach(1, &[], Some(LOCAL_ENDPOINT_NODE)),
                note: "externalTrafficPolicy Local, endpoint on node2 only",
            },
            SvcSpec {
                name: "dns-tcp",
                mode: Some(Mode::L2),
                expect: reach(1, &["10.200.0.210"], None),
                note: "shares its IP with dns-udp (key dns)",
            },
            SvcSpec {
                name: "dns-udp",
                mode: Some(Mode::L2),
                expect: reach(1, &["10.200.0.210"], None),
                note: "shares its IP with dns-tcp (key dns)",
            },
            SvcSpec {
                name: "web-fixed",
                mode: Some(Mode::L2),
                expect: reach(1, &[FIXED_IP], None),
                note: "requests 10.200.0.220",
            },
        ]);
    }
    if scenario.bgp() {
        v.extend([
            SvcSpec {
                name: "api",
                mode: Some(Mode::Bgp),
                expect: reach(1, &[], None),
                note: "from bgp-pool",
            },
            SvcSpec {
                name: "web-dual",
                mode: Some(Mode::Bgp),
                expect: reach(2, &[], None),
                note: "RequireDualStack from dual-stack-pool",
            },
        ]);
    }
    v.push(SvcSpec {
        name: "unservable",
        mode: None,
        expect: Expect::Unservable,
        note: "requests 10.200.99.99, outside every pool",
    });
    v
}

/// The lab's own Services and objects (beyond the examples), as YAML.
fn lab_objects(scenario: Scenario, local_node: &str) -> String {
    let svc = |name: &str, annotations: &str, extra_spec: &str| {
        format!(
            "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: default\n  \
             annotations: {{{annotations}}}\nspec:\n  type: LoadBalancer\n  selector: {{app: {name}}}\n  \
             ports: [{{name: http, port: 80}}]\n{extra_spec}---\n"
        )
    };
    let mut y = String::new();
    if scenario.l2() {
        // The pool by name: with the dual-stack example applied, its pool (priority 10) would
        // otherwise win and `web` would be a BGP Service.
        y += &svc(
            "web",
            "ferrolb.io/address-pool: lan-pool",
            "  ipFamilyPolicy: PreferDualStack\n  ipFamilies: [IPv4, IPv6]\n",
        );
        y += &svc(
            "web-fixed",
            &format!("ferrolb.io/loadBalancerIPs: {FIXED_IP}"),
            "",
        );
        // No kube-controller-manager in the lab: the endpoint of the Local Service is ours,
        // under the name the lab's EndpointSlice stand-in uses, so this one replaces the
        // every-node slice it may have created first (or keeps it from creating one).
        y += &format!(
            "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: {slice}\n  \
             namespace: default\n  labels: {{kubernetes.io/service-name: web-local}}\naddressType: IPv4\n\
             endpoints:\n  - addresses: [10.244.2.10]\n    nodeName: {local_node}\n    \
             conditions: {{ready: true, serving: true, terminating: false}}\n\
             ports: [{{name: http, port: 8080, protocol: TCP}}]\n---\n",
            slice = crate::endpoints::slice_name("web-local"),
        );
    }
    if scenario.bgp() {
        y += &svc("api", "ferrolb.io/address-pool: bgp-pool", "");
        // The example peers over IPv4 only; BIRD's IPv6 sessions (fd00:200::1) carry the IPv6
        // routes of the dual-stack Service.
        y += "apiVersion: ferrolb.io/v1beta1\nkind: BGPPeer\nmetadata:\n  name: router-v6\n  \
              namespace: ferrolb-system\nspec:\n  myASN: 64512\n  peerASN: 64500\n  \
              peerAddress: fd00:200::1\n  holdTime: 9s\n  passwordSecret: {name: router-password, \
              namespace: ferrolb-system}\n---\n";
    }
    y += &svc(
        "unservable",
        &format!("ferrolb.io/loadBalancerIPs: {UNSERVABLE_IP}"),
        "",
    );
    y
}

/// Applies the CRDs (again: harmless, the cluster installed them), the examples of the
/// scenario and the lab's Services; returns `kind/name` of everything applied.
pub fn apply(c: &Cluster, scenario: Scenario) -> anyhow::Result<Vec<String>> {
    let mut applied = c.apply_yaml(CRDS).context("applying deploy/crds.yaml")?;
    let mut docs: Vec<(&str, &str)> = Vec::new();
    if scenario.l2() {
        docs.extend([
            ("deploy/examples/l2.yaml", L2_EXAMPLE),
            ("deploy/examples/shared-ip.yaml", SHARED_IP_EXAMPLE),
            ("deploy/examples/etp-local.yaml", ETP_LOCAL_EXAMPLE),
        ]);
    }
    if scenario.bgp() {
        docs.extend([
            ("deploy/examples/bgp.yaml", BGP_EXAMPLE),
            ("deploy/examples/dual-stack.yaml", DUAL_STACK_EXAMPLE),
        ]);
    }
    for (path, text) in docs {
        applied.extend(
            c.apply_yaml(text)
                .with_context(|| format!("applying {path}"))?,
        );
    }
    let local_node = c.lab.node(LOCAL_ENDPOINT_NODE).name().to_string();
    applied.extend(
        c.apply_yaml(&lab_objects(scenario, &local_node))
            .context("applying the lab's Services")?,
    );
    Ok(applied)
}
