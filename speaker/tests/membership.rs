//! Gossip membership on loopback addresses (127.0.0.x, one per member): joining, death
//! detection time, graceful leave, and authentication. No root needed.

use ferrolb_speaker::membership::{GossipTimers, Membership, MembershipConfig};
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_member_is_declared_dead_in_under_a_second() {
    let m1 = member("n1", "127.0.0.1", &[], KEY).await;
    let seed = [m1.identity().addr];
    let m2 = member("n2", "127.0.0.2", &seed, KEY).await;
    let mut m3 = member("n3", "127.0.0.3", &seed, KEY).await;
    let all = names(&["n1", "n2", "n3"]);

    let mut times = Vec::new();
    for round in 0..3 {
        for m in [&m1, &m2, &m3] {
            let joined = wait_for(&mut m.alive(), Duration::from_secs(5), |a| *a == all).await;
            assert!(
                joined.is_some(),
                "round {round}: {:?} never saw all three",
                m.identity().node
            );
        }
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
    for m in [&m1, &m2] {
        assert!(
            wait_for(&mut m.alive(), Duration::from_secs(5), |a| *a == both)
                .await
                .is_some()
        );
    }
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
