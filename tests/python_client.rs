//! The Python client example (`examples/python/`, nats-py) against a whole paystate with the
//! provider sandboxes: it creates, starts, captures (and retries the capture), is refused an
//! over-refund, and refunds an order over the documented protocol, while this test plays the
//! customer at the sandbox. Every part runs as its NATS user from the shipped permission
//! config, the example as `paystate-client`, and no permission is violated. nats-py comes from `scripts/test.sh` (installed into
//! `.tools/python`).

mod support;

use async_nats::jetstream;
use paystate::permissions::Role;
use paystate_events::{Provider, Status};
use paystate_journal::Journal;
use paystate_sandbox::{Action, SandboxConfig, TimeScale};
use paystate_workers::WorkerConfig;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use support::providers::fast_reconciler;
use support::secure::SecureNats;
use support::*;
use tokio::io::AsyncReadExt;

/// The whole example (two provider round trips, a capture and a refund) takes a few seconds.
const EXAMPLE_WAIT: Duration = Duration::from_secs(90);

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_example_creates_captures_and_refunds_an_order() {
    let site_packages = repo().join(".tools/python");
    assert!(
        site_packages.join("nats").is_dir(),
        "nats-py is missing: scripts/test.sh installs it (python3 -m pip install --target .tools/python nats-py)"
    );
    // The shipped users: every part runs as its role, the example as `paystate-client`.
    let nats = SecureNats::start().await;
    let conns = nats
        .connections(&[Role::Engine, Role::Projector, Role::Reporter])
        .await;
    let (stack, sandbox, _) = paystate::stack::with_sandbox(
        conns,
        log_settings(),
        engine_config(),
        WorkerConfig {
            ack_wait: Duration::from_secs(10),
            ..Default::default()
        },
        fast_reconciler(),
        SandboxConfig {
            time_scale: TimeScale::MILLIS,
            ..Default::default()
        },
        gateway_listeners().await,
    )
    .await
    .expect("the stack starts with per-role users");
    let private_url = stack.private_url.clone().expect("the gateway runs");
    let journal = Journal::existing(
        jetstream::new(nats.client_as(Role::Admin).await),
        &log_settings().events_stream,
    )
    .await
    .expect("log");
    let o = order("py");
    let mut child = tokio::process::Command::new("python3")
        .arg(repo().join("examples/python/paystate_example.py"))
        .args(["--order", o.as_str(), "--provider", "plexy"])
        .env("PYTHONPATH", &site_packages)
        .envs(nats.env_as(Role::Client))
        .env("PAYSTATE_API_URL", &private_url)
        .env("PAYSTATE_API_KEY", &test_keys().read)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");

    // The customer: pays at the payment link once the example has started the payment.
    let pending = wait_until(&journal, &o, |s| s.customer_action.is_some()).await;
    let link = pending.provider_ref.expect("payment link id");
    sandbox
        .act(Provider::Plexy, &link, Action::Challenge)
        .expect("3DS step");
    sandbox
        .act(
            Provider::Plexy,
            &link,
            Action::Complete3ds { success: true },
        )
        .expect("customer passes 3DS");

    let status = tokio::time::timeout(EXAMPLE_WAIT, child.wait())
        .await
        .expect("the example finishes")
        .expect("exit status");
    let (mut out, mut err) = (String::new(), String::new());
    if let Some(mut s) = child.stdout.take() {
        let _ = s.read_to_string(&mut out).await;
    }
    if let Some(mut s) = child.stderr.take() {
        let _ = s.read_to_string(&mut err).await;
    }
    assert!(status.success(), "example failed:\n{out}\n{err}");
    for line in [
        "created",
        "authorized",
        "the retry was a duplicate",
        "refused: amount_exceeds_refundable",
        "refunded: returned",
    ] {
        assert!(out.contains(line), "missing {line:?} in:\n{out}");
    }

    let done = wait_until(&journal, &o, |s| s.status == Status::Returned).await;
    assert_eq!((done.captured.0, done.refunded.0), (10_000, 10_000));
    let commits = journal.read_order(&o).await.expect("log");
    assert_each_command_once(&commits);
    let ids: Vec<String> = commits
        .iter()
        .map(|c| c.commit.command.command_id.to_string())
        .filter(|id| id.starts_with(o.as_str()))
        .collect();
    // The refused over-refund is in the log too, as a `command_rejected` commit (decision
    // 0013: rejections on an existing order are logged).
    let want: Vec<String> = ["create", "start", "capture", "too-much", "refund"]
        .iter()
        .map(|s| format!("{o}.{s}"))
        .collect();
    assert_eq!(ids, want, "the example's commands, each in the log once");
    // The client user's rights are what this test is about (the stack's own roles are
    // checked by nats_permissions).
    let v: Vec<String> = nats
        .violations()
        .into_iter()
        .filter(|l| l.contains("paystate-client"))
        .collect();
    assert!(
        v.is_empty(),
        "the example needed more than the client role: {v:#?}"
    );
    eprintln!("{out}");
}

/// Polls the log until `pred` holds for the order's state.
async fn wait_until(
    journal: &Journal,
    order: &paystate_events::OrderId,
    pred: impl Fn(&paystate_events::OrderState) -> bool,
) -> paystate_events::OrderState {
    let deadline = Instant::now() + EXAMPLE_WAIT;
    loop {
        if let Ok(Some(s)) = journal.load(order).await.map(|l| l.state) {
            if pred(&s) {
                return s;
            }
        }
        assert!(Instant::now() < deadline, "order {order} never got there");
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}
