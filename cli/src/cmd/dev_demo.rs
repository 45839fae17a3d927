//! The sample order `paystate dev` drives: create → start → authorized → partial capture →
//! captured → refund → refunded. Until adapters run inside `dev`, the provider's reports are
//! simulated here as provider_signal commands (marked as such in the timeline).

use super::dev::{envelope, print_outcome, DEMO_CAPTURE, DEMO_PROVIDER};
use anyhow::bail;
use paystate_events::command::money;
use paystate_events::{Command, OrderId, Outcome, PaymentInitiation, ProviderSignal, SignalKind};
use paystate_service::Client;
use std::time::Duration;

pub async fn sample_order(client: &Client, wait: Duration) -> anyhow::Result<OrderId> {
    let order = OrderId::parse(format!(
        "demo-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    ))?;
    println!("\nsample order {order}: 100.00 USD via {DEMO_PROVIDER}, manual capture");
    let amount = money(10_000, "USD");
    let steps: Vec<(&str, Command)> = vec![
        (
            "create_order 100.00 USD",
            Command::CreateOrder {
                merchant_reference: format!("shop-{order}"),
                amount: amount.unwrap_or_else(|| unreachable!()),
                provider: DEMO_PROVIDER,
                capture_mode: DEMO_CAPTURE,
                expires_at: None,
                merchant_account: None,
                metadata: Default::default(),
            },
        ),
        (
            "start_payment",
            Command::StartPayment {
                initiation: PaymentInitiation::default(),
            },
        ),
        (
            "(simulated provider) authorized",
            signal(SignalKind::Authorized { amount: None }, "sim-auth"),
        ),
        (
            "capture 60.00 USD",
            Command::Capture {
                amount: money(6_000, "USD"),
            },
        ),
        (
            "(simulated provider) captured",
            signal(
                SignalKind::Captured {
                    amount: money(6_000, "USD"),
                },
                "sim-capture",
            ),
        ),
        (
            "refund 25.00 USD",
            Command::Refund {
                amount: money(2_500, "USD"),
            },
        ),
    ];
    let mut refund_id = None;
    for (step, command) in steps {
        let env = envelope(&order, command);
        if matches!(env.command, Command::Refund { .. }) {
            refund_id = Some(env.command_id.to_string());
        }
        let outcome = client.send(&env, wait).await?;
        print_outcome(step, &outcome);
        if let Outcome::Rejected { code, .. } = outcome {
            bail!("the sample order was rejected at {step}: {code}");
        }
    }
    let refunded = SignalKind::Refunded {
        refund_id,
        amount: money(2_500, "USD"),
    };
    let outcome = client
        .send(&envelope(&order, signal(refunded, "sim-refund")), wait)
        .await?;
    print_outcome("(simulated provider) refunded", &outcome);
    Ok(order)
}

fn signal(kind: SignalKind, evidence: &str) -> Command {
    Command::ProviderSignal {
        signal: ProviderSignal {
            provider: DEMO_PROVIDER,
            provider_ref: Some("sim-provider-ref".into()),
            evidence_ref: format!("simulated:{evidence}"),
            observed_at: chrono::Utc::now(),
            kind,
        },
    }
}
