//! The provider-side metrics, recorded by a whole in-process stack (engine, workers,
//! reconciler, gateway) against the Flitt sandbox over real HTTP and a real nats-server:
//! a callback is counted by provider and verdict, provider calls are timed by provider and
//! operation, the reconciler's probes and flags are counted; no label carries an order id.
//!
//! This binary installs the process-wide recorder, so it holds this one test only.

mod support;

use paystate_events::{CaptureMode, Command, OrderId, PaymentInitiation, Provider, Status};
use std::time::{Duration, Instant};
use support::providers::*;
use support::*;

const P: Provider = Provider::Flitt;

/// What is checked, the series' name, labels it must have.
type Check = (
    &'static str,
    &'static str,
    Vec<(&'static str, &'static str)>,
);

/// A Flitt order with its payment started, waiting for the customer.
async fn waiting(ps: &ProviderStack, name: &str) -> OrderId {
    let o = order(name);
    accept(
        &ps.client,
        env(&o, create_for(P, 10_000, "GEL", CaptureMode::Manual)),
    )
    .await;
    let initiation = PaymentInitiation {
        return_url: Some("https://shop.example/back".into()),
        ..Default::default()
    };
    accept(&ps.client, env(&o, Command::StartPayment { initiation })).await;
    ps.wait_until(&o, "waiting for the customer", |s| {
        s.customer_action.is_some()
    })
    .await;
    o
}

/// The value of one series in the rendered metrics (labels in any order), 0 if absent.
fn value(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' '))
        .filter(|(series, _)| {
            series.split('{').next() == Some(name)
                && labels
                    .iter()
                    .all(|(k, v)| series.contains(&format!("{k}=\"{v}\"")))
        })
        .filter_map(|(_, v)| v.parse::<f64>().ok())
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_provider_calls_and_probes_are_counted_without_order_ids() {
    paystate_gateway::telemetry::install().expect("recorder");
    let ps = ProviderStack::start().await;

    // One order paid by the customer (the sandbox calls back), one left waiting: the fast
    // reconciler probes it, then flags it at its final deadline.
    let paid = waiting(&ps, "metrics-paid").await;
    ps.sandbox
        .approve(P, paid.as_str())
        .expect("customer approves");
    ps.wait_status(&paid, Status::Authorized).await;
    let left = waiting(&ps, "metrics-left").await;

    let flitt = ("provider", "flitt");
    let checks: [Check; 5] = [
        (
            "callback applied",
            "paystate_callbacks_total",
            vec![flitt, ("verdict", "applied")],
        ),
        (
            "payment calls timed",
            "paystate_provider_request_duration_seconds_count",
            vec![flitt, ("operation", "payment")],
        ),
        (
            "signals accepted",
            "paystate_commands_total",
            vec![("type", "provider_signal"), ("outcome", "accepted")],
        ),
        (
            "probes counted",
            "paystate_reconciler_probes_total",
            vec![flitt],
        ),
        (
            "flag counted",
            "paystate_reconciler_flagged_total",
            vec![flitt],
        ),
    ];
    let started = Instant::now();
    let text = loop {
        let text = paystate_gateway::telemetry::render().expect("installed");
        let missing: Vec<&str> = checks
            .iter()
            .filter(|(_, name, labels)| value(&text, name, labels) < 1.0)
            .map(|(what, _, _)| *what)
            .collect();
        if missing.is_empty() {
            break text;
        }
        assert!(
            started.elapsed() < WAIT,
            "never counted: {missing:?}\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        value(
            &text,
            "paystate_provider_request_duration_seconds_count",
            &[flitt]
        ) >= 2.0,
        "both payments were started at the provider:\n{text}"
    );
    for o in [&paid, &left] {
        assert!(
            !text.contains(o.as_str()),
            "an order id in a label:\n{text}"
        );
    }
}
