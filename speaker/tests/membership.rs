//! Gossip membership on loopback addresses (127.0.0.x, one per member): joining, death
//! detection time, graceful leave, and authentication. No root needed.

use ferrolb_speaker::membership::{GossipTimers, Membership, MembershipConfig};
use ferrolb_speaker_core::layer2::carrier::LinkReport;
use ferrolb_speaker_core::membership::heartbeat::HeartbeatTimers;
use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::sync::watch;
use tokio::time::Instant;

const KEY: &[u8] = b"test-shared-key-from-a-secret";

async fn member(name: &str, ip: &str, seeds: &[SocketAddr], key: &[u8]) -> Membership {
    Membership::start(MembershipConfig {
        node_name: name.into(),
        bind: format!("{ip}:0").parse().expect("addr"),
        advertise: None,
        seeds: seeds.to_vec(),
        key: key.to_vec(),
        timers: GossipTimers::default(),
        heartbeat: Some(HeartbeatTimers::default()),
    })
    .await
    .expect("membership starts")
}

fn names(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// Waits until `rx` satisfies `pred`, up to `limit`; returns the time it took.
async fn wait_for(
    rx: &mut watch::Receiver<BTreeSet<String>>,
    limit: Duration,
    pred: impl Fn(&BTreeSet<String>) -> bool,
) -> Option<Duration> {
    let start = Instant::now();
    let done = tokio::time::timeout(limit, async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    done.ok().map(|()| start.elapsed())
}

/// Waits until every one of `members` sees exactly `expected` alive (5 s at most).
async fn wait_all_see(members: &[&Membership], expected: &BTreeSet<String>, when: &str) {
    for m in members {
        let joined = wait_for(&mut m.alive(), Duration::from_secs(5), |a| a == expected).await;
        assert!(
            joined.is_some(),
            "{when}: {} never saw {expected:?}",
            m.identity().node
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_is_declared_dead_in_under_a_second() {
    let m1 = member("n1", "127.0.0.1", &[], KEY).await;
    let seed = [m1.identity().addr];
    let m2 = member("n2", "127.0.0.2", &seed, KEY).await;
    let mut m3 = member("n3", "127.0.0.3", &seed, KEY).await;
    let all = names(&["n1", "n2", "n3"]);

    let mut times = Vec::new();
    for round in 0..3 {
        wait_all_see(&[&m1, &m2, &m3], &all, &format!("round {round}")).await;
        // Let the cluster settle (no pending suspicion from the join) before the kill.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let (mut a1, mut a2) = (m1.alive(), m2.alive());
        // "Kill" n3: its task stops without a word, as a crashed speaker would.
        let killed = Instant::now();
        drop(m3);
        let gone = |a: &BTreeSet<String>| !a.contains("n3");
        let (t1, t2) = tokio::join!(
            wait_for(&mut a1, Duration::from_secs(5), gone),
            wait_for(&mut a2, Duration::from_secs(5), gone)
        );
        let (t1, t2) = (t1.expect("n1 detects"), t2.expect("n2 detects"));
        println!(
            "round {round}: n3 declared dead by n1 after {:?}, by n2 after {:?} (kill at {:?})",
            t1,
            t2,
            killed.elapsed()
        );
        times.push(t1.max(t2));
        assert_eq!(*m1.alive().borrow(), names(&["n1", "n2"]));
        let view = m1.view();
        assert!(view.enabled);
        assert!(view.members.iter().any(|m| m.node == "n3" && !m.alive));
        // Restart n3 on the same address: it rejoins with a newer identity.
        m3 = member("n3", "127.0.0.3", &seed, KEY).await;
    }
    let worst = times.iter().max().copied().unwrap_or_default();
    println!("death detection times: {times:?}, worst {worst:?}");
    assert!(worst < Duration::from_secs(1), "detection took {worst:?}");
    drop(m3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_leave_is_seen_at_once() {
    let m1 = member("n1", "127.0.0.4", &[], KEY).await;
    let m2 = member("n2", "127.0.0.5", &[m1.identity().addr], KEY).await;
    let both = names(&["n1", "n2"]);
    let mut a1 = m1.alive();
    // Both sides must know each other: a member that knows nobody has no one to tell.
    wait_all_see(&[&m1, &m2], &both, "joining").await;
    let start = Instant::now();
    m2.leave().await;
    let t = wait_for(&mut a1, Duration::from_secs(5), |a| !a.contains("n2"))
        .await
        .expect("leave seen");
    println!("graceful leave seen after {:?}", start.elapsed().max(t));
    assert!(t < Duration::from_millis(300), "{t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn member_with_wrong_key_is_never_admitted() {
    let m1 = member("n1", "127.0.0.6", &[], KEY).await;
    let m2 = member("n2", "127.0.0.7", &[m1.identity().addr], KEY).await;
    let both = names(&["n1", "n2"]);
    assert!(
        wait_for(&mut m1.alive(), Duration::from_secs(5), |a| *a == both)
            .await
            .is_some()
    );
    // The intruder knows the seeds but not the key; it is also listed as a seed of n1, so n1
    // talks to it too (its datagrams are then the intruder's to reject).
    let intruder = member(
        "intruder",
        "127.0.0.8",
        &[m1.identity().addr, m2.identity().addr],
        b"wrong-key",
    )
    .await;
    m1.set_seeds(vec![intruder.identity().addr]);
    let admitted = wait_for(&mut m1.alive(), Duration::from_millis(1500), |a| {
        a.contains("intruder")
    })
    .await;
    assert_eq!(admitted, None, "the intruder was admitted");
    assert_eq!(*m2.alive().borrow(), both);
    assert_eq!(*intruder.alive().borrow(), names(&["intruder"]));
    println!(
        "auth failures: n1 {}, n2 {}, intruder {}",
        m1.auth_failures(),
        m2.auth_failures(),
        intruder.auth_failures()
    );
    assert!(m1.auth_failures() > 0);
    assert!(intruder.auth_failures() > 0);
    assert!(m1.view().members.iter().all(|m| m.node != "intruder"));
}

/// The owner → successor heartbeats: the successor that watches a crashed owner drops it from
/// its alive set before the gossip does, while a speaker that does not watch it still relies on
/// the gossip; the gossip's confirmation then takes over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watching_successor_presumes_a_crashed_owner_down_before_the_gossip() {
    let mut owner = member("n1", "127.0.0.9", &[], KEY).await;
    let seed = [owner.identity().addr];
    let successor = member("n2", "127.0.0.10", &seed, KEY).await;
    let bystander = member("n3", "127.0.0.11", &seed, KEY).await;
    let all = names(&["n1", "n2", "n3"]);
    for round in 0..3 {
        let members = [&owner, &successor, &bystander];
        wait_all_see(&members, &all, &format!("round {round}")).await;
        successor.set_watched(names(&["n1"]));
        // Let the request reach the owner and its first beat come back (one round trip on
        // loopback), and any suspicion from the join settle.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let presumed_before = successor
            .counters()
            .heartbeat_presumed_down
            .load(std::sync::atomic::Ordering::Relaxed);
        let (mut fast, mut slow) = (successor.alive(), bystander.alive());
        let killed = Instant::now();
        drop(owner);
        let gone = |a: &BTreeSet<String>| !a.contains("n1");
        let t_fast = wait_for(&mut fast, Duration::from_secs(5), gone)
            .await
            .expect("the successor drops the owner");
        // At that moment the bystander, which only has the gossip, must still see it alive.
        let bystander_still_sees_it = bystander.alive().borrow().contains("n1");
        let t_slow = wait_for(&mut slow, Duration::from_secs(5), gone)
            .await
            .expect("the gossip declares the owner down");
        println!(
            "round {round}: owner dropped by its successor after {t_fast:?} (heartbeats), by the bystander after {t_slow:?} (gossip); kill at {:?}",
            killed.elapsed()
        );
        assert!(
            bystander_still_sees_it,
            "the successor must learn before the gossip: {t_fast:?} vs {t_slow:?}"
        );
        assert_eq!(
            successor
                .counters()
                .heartbeat_presumed_down
                .load(std::sync::atomic::Ordering::Relaxed),
            presumed_before + 1
        );
        // The gossip confirmed: no revocation, and the successor's view agrees with it.
        assert_eq!(*successor.alive().borrow(), names(&["n2", "n3"]));
        assert_eq!(
            successor
                .counters()
                .heartbeat_revoked
                .load(std::sync::atomic::Ordering::Relaxed),
            0
        );
        // Restart the owner (on a new port): it joins through the successor.
        owner = member("n1", "127.0.0.9", &[successor.identity().addr], KEY).await;
    }
    drop(owner);
}

/// A reclaim request (sent by a successor that gave our addresses back) is acted on only when
/// it carries the shared key and comes from a member's gossip address.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reclaim_requests_need_the_key_and_a_member_address() {
    use ferrolb_speaker_core::membership::auth::{Authenticator, Channel};
    use ferrolb_speaker_core::membership::heartbeat::Message;
    let m1 = member("n1", "127.0.0.12", &[], KEY).await;
    let m2 = member("n2", "127.0.0.13", &[m1.identity().addr], KEY).await;
    let both = names(&["n1", "n2"]);
    wait_all_see(&[&m1, &m2], &both, "joining").await;
    let mut reclaims = m1.reclaims();
    let payload = Message::Reclaim("n2".into()).encode();
    let genuine = Authenticator::new(KEY)
        .expect("key")
        .seal_on(Channel::Heartbeat, &payload);
    let forged = Authenticator::new(b"wrong-key")
        .expect("key")
        .seal_on(Channel::Heartbeat, &payload);
    let outsider = tokio::net::UdpSocket::bind("127.0.0.14:0")
        .await
        .expect("bind");
    let to = m1.identity().addr;
    for datagram in [&forged, &genuine] {
        outsider.send_to(datagram, to).await.expect("send");
    }
    let seen = tokio::time::timeout(Duration::from_millis(300), reclaims.changed()).await;
    assert!(seen.is_err(), "a reclaim from a non-member was acted on");
    assert!(m1.auth_failures() > 0);
    // The same genuine datagram from n2's gossip address: n2's speaker stops (without a word)
    // and its address is taken over at once, while n1 still counts it a member.
    let n2_addr = m2.identity().addr;
    drop(m2);
    let deadline = Instant::now() + Duration::from_millis(100);
    let socket = loop {
        match tokio::net::UdpSocket::bind(n2_addr).await {
            Ok(s) => break s,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            Err(e) => panic!("binding {n2_addr}: {e}"),
        }
    };
    socket.send_to(&genuine, to).await.expect("send");
    tokio::time::timeout(Duration::from_secs(2), reclaims.changed())
        .await
        .expect("the member's reclaim arrives")
        .expect("membership running");
    assert_eq!(*reclaims.borrow(), 1);
}

/// Waits until `m`'s links reports satisfy `pred` (5 s at most); returns the time it took.
async fn wait_links(
    m: &Membership,
    pred: impl Fn(&std::collections::BTreeMap<String, Vec<LinkReport>>) -> bool,
) -> Option<Duration> {
    let mut rx = m.links();
    let start = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if pred(&rx.borrow_and_update()) {
                return;
            }
            if rx.changed().await.is_err() {
                return;
            }
        }
    })
    .await
    .ok()
    .map(|()| start.elapsed())
}

fn eth0(carrier: bool) -> Vec<LinkReport> {
    vec![LinkReport {
        name: "eth0".into(),
        carrier,
        automatic: true,
    }]
}

/// A speaker's carrier report reaches the others at once when it changes, and one that joins
/// later gets it too; nothing is reported before the first report.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn carrier_reports_reach_every_member() {
    let m1 = member("n1", "127.0.0.1", &[], KEY).await;
    let seed = [m1.identity().addr];
    let m2 = member("n2", "127.0.0.2", &seed, KEY).await;
    wait_all_see(&[&m1, &m2], &names(&["n1", "n2"]), "join").await;
    assert!(
        m2.links().borrow().is_empty(),
        "no report before the first set_links"
    );
    m1.set_links(eth0(true));
    m2.set_links(eth0(true));
    let seen = wait_links(&m2, |l| l.get("n1") == Some(&eth0(true))).await;
    assert!(seen.is_some(), "n2 never got n1's report");
    assert_eq!(m2.links().borrow().get("n2"), Some(&eth0(true)), "its own");

    let lost = Instant::now();
    m1.set_links(eth0(false));
    wait_links(&m2, |l| l.get("n1") == Some(&eth0(false)))
        .await
        .expect("n2 learns that n1 lost carrier");
    let took = lost.elapsed();
    println!("carrier loss reported in {took:?}");
    assert!(took < Duration::from_millis(200), "took {took:?}");

    // A member joining later learns both reports without any change.
    let m3 = member("n3", "127.0.0.3", &seed, KEY).await;
    let all = wait_links(&m3, |l| {
        l.get("n1") == Some(&eth0(false)) && l.get("n2") == Some(&eth0(true))
    })
    .await;
    assert!(all.is_some(), "n3 never got the others' reports");
    // n3 has reported nothing itself, so it has no entry.
    assert!(!m3.links().borrow().contains_key("n3"));
}
