//! MetalLB `internal/config/config_test.go` `TestParse`, case by case, in MetalLB's order.

use crate::cases::Verdict::{Invalid, Valid};
use crate::cases::*;

const T: &str = "TestParse";

pub const SECRET: &str = "ferrolb's configuration does not read Secrets: a speaker reads the \
                          password Secret when it opens the session and reports a missing or \
                          malformed one in BGPSessionState and events, so creating the Secret \
                          later needs no configuration change";

const PEER_42: &str = "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4}";

fn test_pool() -> String {
    pool("testPool", "{addresses: [10.20.0.0/16]}")
}

fn two_nodes() -> [String; 2] {
    [node("node1", "{}"), node("node2", "{}")]
}

pub fn cases() -> Vec<Case> {
    let mut out = vec![
        case(T, "empty config", Valid, &[]),
        case(
            T,
            "config using all features",
            Valid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 142, peerAddress: 1.2.3.4, peerPort: 1179, holdTime: 180s, \
                     connectTime: 1s, routerID: 10.20.30.40, sourceAddress: 10.20.30.40, \
                     enableGracefulRestart: true, ebgpMultiHop: true, vrf: foo}",
                ),
                peer(
                    "peer2",
                    "{myASN: 100, peerASN: 200, peerAddress: 2.3.4.5, enableGracefulRestart: false, \
                     ebgpMultiHop: false, connectTime: 1s, nodeSelectors: [{matchLabels: {foo: bar}, \
                     matchExpressions: [{key: bar, operator: In, values: [quux]}]}]}",
                ),
                pool(
                    "pool1",
                    "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false}",
                ),
                pool("pool2", "{addresses: [30.0.0.0/8]}"),
                pool(
                    "pool3",
                    "{addresses: [40.0.0.0/25, 40.0.0.150-40.0.0.200, '40.0.0.210 - 40.0.0.240', \
                     '40.0.0.250 - 40.0.0.250']}",
                ),
                pool("pool4", "{addresses: ['2001:db8::/64']}"),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, communities: [bar], ipAddressPools: [pool1], \
                     peers: [peer1]}",
                ),
                bgp_adv(
                    "adv2",
                    "{aggregationLength: 24, aggregationLengthV6: 64, ipAddressPools: [pool1]}",
                ),
                bgp_adv("adv3", "{ipAddressPools: [pool2]}"),
                l2("l2adv1", "{ipAddressPools: [pool3]}"),
                l2("l2adv2", ""),
                community(
                    "community",
                    "{communities: [{name: bar, value: '64512:1234'}]}",
                ),
            ],
        ),
        case(
            T,
            "ip address pool with namespace selection",
            Valid,
            &[
                pool(
                    "pool1",
                    "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false, \
                     serviceAllocation: {priority: 1, namespaces: [test-ns1]}}",
                ),
                pool(
                    "pool2",
                    "{addresses: [30.0.0.0/8], serviceAllocation: {priority: 2, \
                     namespaceSelectors: [{matchLabels: {team: metallb}}]}}",
                ),
                pool(
                    "pool3",
                    "{addresses: [40.0.0.0/8], serviceAllocation: {priority: 3, \
                     namespaceSelectors: [{matchLabels: {team: red}}]}}",
                ),
                namespace("test-ns1", "{}"),
                namespace("test-ns2", "{team: metallb}"),
            ],
        ),
        case(
            T,
            "ip address pool with duplicate namespace selection",
            Invalid,
            &[
                pool(
                    "pool1",
                    "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false, \
                     serviceAllocation: {priority: 1, namespaces: [test-ns1, test-ns1]}}",
                ),
                namespace("test-ns1", "{}"),
            ],
        ),
        case(
            T,
            "ip address pool with duplicate namespace selectors",
            Invalid,
            &[
                pool(
                    "pool1",
                    "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false, \
                     serviceAllocation: {priority: 1, namespaceSelectors: [{matchLabels: {foo: bar}}, \
                     {matchLabels: {foo: bar}}]}}",
                ),
                namespace("test-ns1", "{foo: bar}"),
            ],
        ),
        case(
            T,
            "ip address pool with service selection",
            Valid,
            &[
                pool(
                    "pool1",
                    "{addresses: [30.0.0.0/8], serviceAllocation: {priority: 2, \
                     serviceSelectors: [{matchLabels: {team: metallb}}]}}",
                ),
                pool(
                    "pool2",
                    "{addresses: [40.0.0.0/8], serviceAllocation: {priority: 3, \
                     serviceSelectors: [{matchLabels: {team: red}}]}}",
                ),
            ],
        ),
        case(
            T,
            "ip address pool with duplicate service selection",
            Invalid,
            &[pool(
                "pool1",
                "{addresses: [30.0.0.0/8], serviceAllocation: {priority: 2, serviceSelectors: \
                 [{matchExpressions: [{key: foo, operator: In, values: [bar, bar]}]}]}}",
            )],
        ),
        case(
            T,
            "ip address pool with namespace and service selection",
            Valid,
            &[
                pool(
                    "pool1",
                    "{addresses: [30.0.0.0/8], serviceAllocation: {priority: 2, namespaces: [test-ns1], \
                     serviceSelectors: [{matchLabels: {testsvc-1: '1'}}]}}",
                ),
                pool(
                    "pool2",
                    "{addresses: [40.0.0.0/8], serviceAllocation: {priority: 3, \
                     namespaceSelectors: [{matchLabels: {team: metallb}}], \
                     serviceSelectors: [{matchLabels: {testsvc-2: '2'}}]}}",
                ),
                namespace("test-ns1", "{}"),
                namespace("test-ns2", "{team: metallb}"),
            ],
        ),
        case(
            T,
            "ip address pool with only priority",
            Valid,
            &[pool(
                "pool1",
                "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false, \
                 serviceAllocation: {priority: 1}}",
            )],
        ),
        case(T, "peer-only", Valid, &[peer("peer1", PEER_42)]),
        case(
            T,
            "invalid peer-address",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.400}",
            )],
        ),
        case(
            T,
            "invalid my-asn",
            Invalid,
            &[peer("peer1", "{peerASN: 42, peerAddress: 1.2.3.4}")],
        ),
        case(
            T,
            "invalid peer-asn",
            Invalid,
            &[peer("peer1", "{myASN: 42, peerAddress: 1.2.3.4}")],
        ),
        case(
            T,
            "invalid ebgp-multihop",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, ebgpMultiHop: true}",
            )],
        ),
        case(
            T,
            "invalid keepalivetime larger than holdtime",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, holdTime: 30s, keepaliveTime: 90s}",
            )],
        ),
        case(
            T,
            "invalid hold time (too short)",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, holdTime: 1s}",
            )],
        ),
        case(
            T,
            "peer with holdtime only",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, holdTime: 180s}",
            )],
        ),
        case(
            T,
            "peer with keepalive only",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, keepaliveTime: 60s}",
            )],
        ),
        case(
            T,
            "peer with zero hold/keepalive timers",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, holdTime: 0s, keepaliveTime: 0s}",
            )],
        ),
        case(
            T,
            "peer without hold/keepalive timers",
            Valid,
            &[peer("peer1", PEER_42)],
        ),
        case(
            T,
            "invalid RouterID",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, routerID: 'oh god how do I BGP'}",
            )],
        ),
        case(
            T,
            "empty node selector (select everything)",
            Valid,
            &[peer("peer1", PEER_42)],
        ),
        case(
            T,
            "invalid expression node selector (missing key)",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, nodeSelectors: [{matchLabels: \
                 {foo: bar}, matchExpressions: [{operator: In, values: [quux]}]}]}",
            )],
        ),
        case(
            T,
            "invalid expression node selector (missing operator)",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, nodeSelectors: [{matchLabels: \
                 {foo: bar}, matchExpressions: [{key: bar, values: [quux]}]}]}",
            )],
        ),
        case(
            T,
            "invalid expression node selector (invalid operator)",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, nodeSelectors: [{matchLabels: \
                 {foo: bar}, matchExpressions: [{key: bar, operator: surrounds, values: [quux]}]}]}",
            )],
        ),
        case(
            T,
            "duplicate values node selector match expression",
            Invalid,
            &[peer(
                "peer",
                "{myASN: 100, peerASN: 200, peerAddress: 2.3.4.5, ebgpMultiHop: false, \
                 nodeSelectors: [{matchLabels: {foo: bar}, matchExpressions: [{key: bar, \
                 operator: In, values: [quux, quux]}]}]}",
            )],
        ),
        case(
            T,
            "duplicate peers",
            Invalid,
            &[peer("peer1", PEER_42), peer("peer2", PEER_42)],
        ),
        case(T, "no pool name", Invalid, &[pool_unnamed("")]),
        case(
            T,
            "address pool with no address",
            Invalid,
            &[pool("pool1", "{}")],
        ),
        case(
            T,
            "address pool with no protocol",
            Invalid,
            &[pool("pool1", "")],
        ),
        case(
            T,
            "invalid pool CIDR",
            Invalid,
            &[pool("pool1", "{addresses: [100.200.300.400/24]}")],
        ),
        case(
            T,
            "invalid pool CIDR prefix length",
            Invalid,
            &[pool("pool1", "{addresses: [1.2.3.0/33]}")],
        ),
        case(
            T,
            "invalid pool CIDR, first address of the range is after the second",
            Invalid,
            &[pool("pool1", "{addresses: [1.2.3.10-1.2.3.1]}")],
        ),
        case(
            T,
            "simple advertisement",
            Valid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bgp_adv("adv3", ""),
            ],
        ),
        case(
            T,
            "advertisement with default BGP settings",
            Valid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bgp_adv("adv3", ""),
            ],
        ),
        case(
            T,
            "bad aggregation length (too long)",
            Invalid,
            &[
                pool("pool1", "{addresses: [1.2.3.10-1.2.3.1]}"),
                bgp_adv("adv1", "{aggregationLength: 34}"),
            ],
        ),
        case(
            T,
            "bad aggregation length (incompatible with CIDR)",
            Invalid,
            &[
                pool("pool1", "{addresses: [10.20.30.40/24, 1.2.3.0/28]}"),
                bgp_adv("adv1", "{aggregationLength: 26}"),
            ],
        ),
    ];
    out.extend(local_pref_cases());
    out.extend(reference_cases());
    out.extend(peer_and_bfd_cases());
    out.extend(selector_cases());
    out
}

fn local_pref_cases() -> Vec<Case> {
    let pool1 = || pool("pool1", "{addresses: [10.20.30.40/24]}");
    vec![
        case(
            T,
            "different local pref - same peers and nodes",
            Invalid,
            &[
                &two_nodes()[..],
                &[
                    pool1(),
                    bgp_adv("adv1", "{localPref: 100}"),
                    bgp_adv("adv2", "{localPref: 200}"),
                ],
            ]
            .concat(),
        ),
        case(
            T,
            "different local pref - different ipv4 aggregation length",
            Valid,
            &[
                &two_nodes()[..],
                &[
                    pool1(),
                    bgp_adv("adv1", "{localPref: 100, aggregationLength: 24}"),
                    bgp_adv("adv2", "{localPref: 200}"),
                ],
            ]
            .concat(),
        ),
        case(
            T,
            "different local pref - different aggregation lengths",
            Valid,
            &[
                &two_nodes()[..],
                &[
                    pool1(),
                    bgp_adv(
                        "adv1",
                        "{localPref: 100, aggregationLength: 24, aggregationLengthV6: 120}",
                    ),
                    bgp_adv("adv2", "{localPref: 200}"),
                ],
            ]
            .concat(),
        ),
        case(
            T,
            "different local pref - same peers & different nodes",
            Valid,
            &[
                node("node1", "{node: node1}"),
                node("node2", "{node: node2}"),
                pool1(),
                bgp_adv(
                    "adv1",
                    "{localPref: 100, nodeSelectors: [{matchLabels: {node: node1}}]}",
                ),
                bgp_adv(
                    "adv2",
                    "{localPref: 200, nodeSelectors: [{matchLabels: {node: node2}}]}",
                ),
            ],
        ),
        case(
            T,
            "different local pref - different peers & same nodes",
            Valid,
            &[
                &two_nodes()[..],
                &[
                    pool1(),
                    bgp_adv("adv1", "{localPref: 100, peers: [peer1]}"),
                    bgp_adv("adv2", "{localPref: 200, peers: [peer2]}"),
                ],
            ]
            .concat(),
        ),
        case(
            T,
            "aggregation length by range",
            Valid,
            &[
                pool("pool1", "{addresses: [3.3.3.2-3.3.3.254]}"),
                bgp_adv("adv1", "{aggregationLength: 26}"),
            ],
        ),
        case(
            T,
            "aggregation length by range, too wide",
            Invalid,
            &[
                pool("pool1", "{addresses: [3.3.3.2-3.3.3.254]}"),
                bgp_adv("adv1", "{aggregationLength: 24}"),
            ],
        ),
    ]
}

fn reference_cases() -> Vec<Case> {
    let adv_communities = |values: &str| {
        [
            test_pool(),
            bgp_adv(
                "testAdv",
                &format!("{{communities: [{values}], ipAddressPools: [testPool]}}"),
            ),
        ]
    };
    let community_cr = |value: &str| {
        [community(
            "community",
            &format!("{{communities: [{{name: bar, value: '{value}'}}]}}"),
        )]
    };
    vec![
        case(
            T,
            "duplicate ip address pools - in L2 adv",
            Invalid,
            &[
                test_pool(),
                l2("testAdv", "{ipAddressPools: [testPool, testPool]}"),
            ],
        ),
        case(
            T,
            "duplicate ip address pools - in BGP adv",
            Invalid,
            &[
                test_pool(),
                bgp_adv("testAdv", "{ipAddressPools: [testPool, testPool]}"),
            ],
        ),
        case(
            T,
            "duplicate peers - in BGP adv",
            Invalid,
            &[
                test_pool(),
                peer("peer1", PEER_42),
                bgp_adv(
                    "testAdv",
                    "{ipAddressPools: [testPool], peers: [peer1, peer1]}",
                ),
            ],
        ),
        case(
            T,
            "bad community literal (wrong format) - in BGP adv",
            Invalid,
            &adv_communities("'1234'"),
        ),
        case(
            T,
            "bad community literal (asn part doesn't fit) - in BGP adv",
            Invalid,
            &adv_communities("'99999999:1'"),
        ),
        case(
            T,
            "bad community literal (community# part doesn't fit) - in BGP adv",
            Invalid,
            &adv_communities("'1:99999999'"),
        ),
        case(
            T,
            "bad community ref (unknown ref) - in BGP adv",
            Invalid,
            &adv_communities("community"),
        ),
        case(
            T,
            "duplicate community literal - in BGP adv",
            Invalid,
            &adv_communities("'1234:5678', '1234:5678'"),
        ),
        case(
            T,
            "bad community literal (wrong format) - in the community CR",
            Invalid,
            &community_cr("1234"),
        ),
        case(
            T,
            "bad community literal (asn part doesn't fit) - in the community CR",
            Invalid,
            &community_cr("99999999:1"),
        ),
        case(
            T,
            "bad community literal (community# part doesn't fit) - in the community CR",
            Invalid,
            &community_cr("1:99999999"),
        ),
        case(
            T,
            "duplicate communities definition (in 2 different crs)",
            Invalid,
            &[
                community(
                    "community1",
                    "{communities: [{name: bar, value: '1234:5678'}]}",
                ),
                community(
                    "community2",
                    "{communities: [{name: bar, value: '1234:5678'}]}",
                ),
            ],
        ),
        case(
            T,
            "duplicate communities definition (in the same cr)",
            Invalid,
            &[community(
                "community",
                "{communities: [{name: bar, value: '1234:5678'}, {name: bar, value: '1234:5678'}]}",
            )],
        ),
        case(
            T,
            "duplicate pool definition",
            Invalid,
            &[
                pool("pool1", "{}"),
                pool("pool2", "{}"),
                pool("pool1", "{}"),
            ],
        ),
        case(
            T,
            "duplicate CIDRs",
            Invalid,
            &[
                pool("pool1", "{addresses: [' 10.0.0.0/8']}"),
                pool("pool2", "{addresses: [' 10.0.0.0/8']}"),
            ],
        ),
        case(
            T,
            "overlapping CIDRs",
            Invalid,
            &[
                pool("pool1", "{addresses: [' 10.0.0.0/8']}"),
                pool("pool2", "{addresses: [10.0.0.0/16]}"),
            ],
        ),
    ]
}

fn peer_and_bfd_cases() -> Vec<Case> {
    let with_secret = "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, passwordSecret: {name: \
                       bgpsecret, namespace: metallb-system}}";
    let echo_profile = "{receiveInterval: 50, transmitInterval: 51, detectMultiplier: 52, \
                        echoInterval: 54, echoMode: true, passiveMode: true, minimumTtl: 55}";
    vec![
        case(
            T,
            "Session with default BFD Profile",
            Valid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, bfdProfile: default}",
                ),
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bfd("default", ""),
                bgp_adv("adv3", ""),
            ],
        ),
        case(
            T,
            "BGP Peer with both password and secret ref set",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, password: nopass, passwordSecret: \
                 {name: nosecret, namespace: metallb-system}}",
            )],
        ),
        case(
            T,
            "BGP Peer with invalid secret type",
            Invalid,
            &[
                peer("peer1", with_secret),
                secret("bgpsecret", "metallb-system", "Opaque", "{}"),
            ],
        )
        .differs(SECRET),
        case(
            T,
            "BGP Peer without password set in the secret",
            Invalid,
            &[
                peer("peer1", with_secret),
                secret(
                    "bgpsecret",
                    "metallb-system",
                    "kubernetes.io/basic-auth",
                    "{}",
                ),
            ],
        )
        .differs(SECRET),
        case(
            T,
            "BGP Peer with a valid secret",
            Valid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 42, peerPort: 179, peerAddress: 1.2.3.4, passwordSecret: \
                     {name: bgpsecret, namespace: metallb-system}}",
                ),
                secret(
                    "bgpsecret",
                    "metallb-system",
                    "kubernetes.io/basic-auth",
                    "{password: bm9wYXNz}",
                ),
            ],
        ),
        case(
            T,
            "BGP Peer with unavailable secret ref",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, passwordSecret: {name: nosecret, \
                 namespace: metallb-system}}",
            )],
        )
        .differs(SECRET),
        case(
            T,
            "BGP Peer with secret ref and frrk8s secret passthrough skips resolution even when secret exists",
            Valid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 42, peerPort: 179, peerAddress: 1.2.3.4, passwordSecret: \
                     {name: bgpsecret, namespace: frr-k8s-external}}",
                ),
                secret(
                    "bgpsecret",
                    "metallb-system",
                    "kubernetes.io/basic-auth",
                    "{password: c2hvdWxkbm90cmVzb2x2ZQ==}",
                ),
            ],
        ),
        case(
            T,
            "BGP Peer with secret ref and frrk8s secret passthrough",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, peerPort: 179, peerAddress: 1.2.3.4, passwordSecret: \
                 {name: bgpsecret, namespace: frr-k8s-external}}",
            )],
        ),
        case(
            T,
            "Peer with non existing BFD Profile",
            Invalid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 42, peerAddress: 1.2.3.4, bfdProfile: default}",
                ),
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bgp_adv("adv3", ""),
            ],
        ),
        case(
            T,
            "Multiple BFD Profiles with the same name",
            Invalid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bfd("default", ""),
                bfd("foo", ""),
                bfd("foo", ""),
            ],
        ),
        case(
            T,
            "Session with nondefault BFD Profile",
            Valid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bfd("nondefault", echo_profile),
                bgp_adv("adv3", ""),
            ],
        ),
        case(
            T,
            "BFD Profile with too low receive interval",
            Invalid,
            &[bfd("default", "{receiveInterval: 2}")],
        ),
        case(
            T,
            "BFD Profile with too high receive interval",
            Invalid,
            &[bfd("default", "{receiveInterval: 90000}")],
        ),
        case(
            T,
            "Session with ipv6 and bfd echo mode",
            Invalid,
            &[
                pool("pool1", "{addresses: ['fc00:f853:0ccd:e793::/64']}"),
                bfd("nondefault", echo_profile),
                bgp_adv("adv3", ""),
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 142, peerAddress: 1.2.3.4, peerPort: 1179, holdTime: 180s, \
                     routerID: 10.20.30.40, sourceAddress: 10.20.30.40, ebgpMultiHop: true, \
                     bfdProfile: nondefault}",
                ),
            ],
        ),
        case(
            T,
            "Session with ipv4 and bfd echo mode",
            Valid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                bfd("with-echo", "{echoMode: true}"),
                bgp_adv("adv", ""),
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 142, peerAddress: 1.2.3.4, peerPort: 1179, bfdProfile: with-echo}",
                ),
            ],
        ),
        case(
            T,
            "config IPAddressPool with large communities CR",
            Valid,
            &[
                peer(
                    "peer1",
                    "{myASN: 42, peerASN: 142, peerAddress: 1.2.3.4, peerPort: 1179, holdTime: 180s, \
                     routerID: 10.20.30.40, sourceAddress: 10.20.30.40, ebgpMultiHop: true, vrf: foo}",
                ),
                pool(
                    "pool1",
                    "{addresses: [10.20.0.0/16, 10.50.0.0/24], avoidBuggyIPs: true, autoAssign: false}",
                ),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, communities: [bar], ipAddressPools: [pool1], \
                     peers: [peer1]}",
                ),
                bgp_adv(
                    "adv2",
                    "{aggregationLength: 24, aggregationLengthV6: 64, ipAddressPools: [pool1]}",
                ),
                bgp_adv("adv3", "{ipAddressPools: [pool2]}"),
                community(
                    "community",
                    "{communities: [{name: bar, value: 'large:123:64512:1234'}]}",
                ),
            ],
        ),
    ]
}

fn selector_cases() -> Vec<Case> {
    let pool1 = || pool_labels("pool1", "{test: pool1}", "{addresses: [10.20.0.0/16]}");
    let nodes = || {
        [
            node("first", "{first: 'true'}"),
            node("second", "{second: 'true'}"),
        ]
    };
    let plain_pool1 = || pool("pool1", "{addresses: [10.20.0.0/16]}");
    vec![
        case(
            T,
            "use ip pool selectors",
            Valid,
            &[
                pool1(),
                pool_labels("pool2", "{test: pool2}", "{addresses: [30.0.0.0/16]}"),
                l2(
                    "l2adv1",
                    "{ipAddressPoolSelectors: [{matchLabels: {test: pool1}}]}",
                ),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, ipAddressPoolSelectors: \
                     [{matchLabels: {test: pool1}}]}",
                ),
                bgp_adv(
                    "adv2",
                    "{aggregationLength: 32, localPref: 200, ipAddressPoolSelectors: \
                     [{matchLabels: {test: pool2}}]}",
                ),
            ],
        ),
        case(
            T,
            "specify interfaces",
            Valid,
            &[
                pool1(),
                l2(
                    "l2adv1",
                    "{ipAddressPoolSelectors: [{matchLabels: {test: pool1}}], interfaces: [eth0]}",
                ),
            ],
        ),
        case(
            T,
            "use duplicate match labels in ip pool selectors - in BGP adv",
            Invalid,
            &[
                pool1(),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, ipAddressPoolSelectors: \
                     [{matchLabels: {test: pool1}}, {matchLabels: {test: pool1}}]}",
                ),
            ],
        ),
        case(
            T,
            "use duplicate match expression in ip pool selector - in BGP adv",
            Invalid,
            &[
                pool1(),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, ipAddressPoolSelectors: \
                     [{matchExpressions: [{key: test, operator: In, values: [pool1, pool1]}]}]}",
                ),
            ],
        ),
        case(
            T,
            "use duplicate ip pool selectors - in L2 adv",
            Invalid,
            &[
                pool1(),
                l2(
                    "adv1",
                    "{ipAddressPoolSelectors: [{matchLabels: {test: pool1}}, {matchLabels: \
                     {test: pool1}}]}",
                ),
            ],
        ),
        case(
            T,
            "use non existent label for ip pool selectors",
            Valid,
            &[
                pool1(),
                pool_labels("pool2", "{test: pool2}", "{addresses: [30.0.0.0/16]}"),
                l2(
                    "l2adv1",
                    "{ipAddressPoolSelectors: [{matchLabels: {test: do-not-select-pool}}]}",
                ),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, ipAddressPoolSelectors: \
                     [{matchLabels: {test: do-not-select-pool}}]}",
                ),
                bgp_adv(
                    "adv2",
                    "{aggregationLength: 32, localPref: 200, ipAddressPoolSelectors: \
                     [{matchLabels: {test: do-not-select-pool}}]}",
                ),
            ],
        ),
        case(
            T,
            "use node selectors",
            Valid,
            &[
                &[
                    plain_pool1(),
                    pool("pool2", "{addresses: [30.0.0.0/16]}"),
                    bgp_adv(
                        "adv1",
                        "{ipAddressPools: [pool1], nodeSelectors: [{matchLabels: {second: 'true'}}]}",
                    ),
                    bgp_adv(
                        "adv2",
                        "{ipAddressPools: [pool2], nodeSelectors: [{matchLabels: {first: 'true'}}]}",
                    ),
                    l2(
                        "l2adv1",
                        "{nodeSelectors: [{matchLabels: {first: 'true'}}], ipAddressPools: [pool1]}",
                    ),
                ][..],
                &nodes()[..],
            ]
            .concat(),
        ),
        case(
            T,
            "use duplicate match labels in node selectors",
            Invalid,
            &[
                &[
                    plain_pool1(),
                    bgp_adv(
                        "adv1",
                        "{ipAddressPools: [pool1], nodeSelectors: [{matchLabels: {second: 'true'}}, \
                         {matchLabels: {second: 'true'}}]}",
                    ),
                    l2(
                        "l2adv1",
                        "{nodeSelectors: [{matchLabels: {first: 'true'}}, {matchLabels: {first: \
                         'true'}}], ipAddressPools: [pool1]}",
                    ),
                ][..],
                &nodes()[..],
            ]
            .concat(),
        ),
        case(
            T,
            "use duplicate match expression values in node selector",
            Invalid,
            &[
                &[
                    plain_pool1(),
                    bgp_adv(
                        "adv1",
                        "{ipAddressPools: [pool1], nodeSelectors: [{matchExpressions: [{key: \
                         kubernetes.io/hostname, operator: In, values: [first, second]}, {key: \
                         kubernetes.io/hostname, operator: In, values: [second, first]}]}]}",
                    ),
                    l2(
                        "l2adv1",
                        "{nodeSelectors: [{matchExpressions: [{key: kubernetes.io/hostname, \
                         operator: In, values: [first]}]}], ipAddressPools: [pool1]}",
                    ),
                ][..],
                &nodes()[..],
            ]
            .concat(),
        ),
        case(
            T,
            "no nodes means all nodes",
            Valid,
            &[
                &[plain_pool1(), bgp_adv("adv1", ""), l2("l2adv1", "")][..],
                &nodes()[..],
            ]
            .concat(),
        ),
        case(
            T,
            "advertisement with peer selector",
            Valid,
            &[
                pool("pool1", "{addresses: [1.2.3.0/24]}"),
                peer("peer1", PEER_42),
                bgp_adv(
                    "adv1",
                    "{aggregationLength: 32, localPref: 100, ipAddressPools: [pool1], peers: [peer1]}",
                ),
            ],
        ),
        case(
            T,
            "peer with dynamic asn",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, dynamicASN: internal, peerAddress: 1.2.3.4}",
            )],
        ),
        case(
            T,
            "peer without asn or dynamic asn",
            Invalid,
            &[peer("peer1", "{myASN: 42, peerASN: 0}")],
        ),
        case(
            T,
            "peer with both asn and dynamic asn",
            Invalid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 42, dynamicASN: internal}",
            )],
        ),
        case(
            T,
            "unnumbered peer without address with interface ok",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, dynamicASN: internal, interface: net0}",
            )],
        ),
        case(
            T,
            "unnumbered peer without address without interface nok",
            Invalid,
            &[peer("invalid", "{myASN: 42, dynamicASN: internal}")],
        ),
        case(
            T,
            "unnumbered peer with address with interface nok",
            Invalid,
            &[peer(
                "invalid",
                "{peerAddress: 1.2.3.4, interface: net0, myASN: 42, dynamicASN: internal}",
            )],
        ),
        case(
            T,
            "peer with DisableMP field",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 42, peerASN: 142, peerAddress: 1.2.3.4, disableMP: true}",
            )],
        ),
        case(
            T,
            "peer with localASN field",
            Valid,
            &[peer(
                "peer1",
                "{myASN: 100, peerASN: 200, peerAddress: 1.2.3.4, localASN: 65410}",
            )],
        ),
    ]
}
