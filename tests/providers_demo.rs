//! `paystate dev`'s sample orders (`paystate::demo::drive_all`): one order through each of
//! the five providers against a wired sandbox, every step taken by the real engine, adapter
//! workers, callbacks and gateway, the customer played through the sandbox control API.

mod support;

use paystate_events::{Provider, Status};
use std::time::{Duration, Instant};
use support::providers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dev_drives_a_sample_order_through_each_provider() {
    let ps = ProviderStack::start().await;
    let started = Instant::now();
    let orders = paystate::demo::drive_all(
        &ps.client,
        &ps.sandbox,
        &ps.journal,
        Duration::from_secs(20),
    )
    .await
    .expect("every sample order completes");
    eprintln!("five sample orders in {:?}", started.elapsed());
    let providers: Vec<Provider> = orders.iter().map(|(p, _)| *p).collect();
    assert_eq!(
        providers,
        [
            Provider::Plural,
            Provider::Flitt,
            Provider::Plexy,
            Provider::Paykassma,
            Provider::Exchanger
        ]
    );
    for (p, o) in &orders {
        let s = ps
            .journal
            .load(o)
            .await
            .expect("load")
            .state
            .expect("order");
        let want = match p {
            Provider::Paykassma | Provider::Exchanger => (Status::Done, 0),
            _ => (Status::Captured, 2_500),
        };
        assert_eq!((s.status, s.refunded.0), want, "{p} {o}");
        assert_eq!(s.provider, *p);
        assert!(
            s.discrepancies.is_empty(),
            "{p} {o}: {:#?}",
            s.discrepancies
        );
    }
}
