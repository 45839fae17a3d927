//! Sample orders through each of the five providers, for `paystate dev`: real commands to a
//! running engine, real adapter calls to a running sandbox, real callbacks to the gateway;
//! only the customer (and the provider's back office) is played, through the sandbox's
//! control API.
//!
//! | provider | the sample |
//! |---|---|
//! | Plural | start → customer approves → partial capture → partial refund |
//! | Flitt | start → customer approves (preauth) → partial capture → partial refund |
//! | Plexy | payment link → customer pays → partial capture → partial refund |
//! | Paykassma | wallet shown → customer transfers → screenshot + `confirm_transfer` → credited |
//! | exchanger | order → payment page → customer pays → payout done → done |
//!
//! [`drive_all`] returns each order id so the caller can print its timeline. Each step waits
//! at most `wait` for the order to move; a step that does not happen is an error naming the
//! provider, the order and what was expected.

use anyhow::{anyhow, bail, Context};
use paystate_events::{
    Amount, CaptureMode, Command, CommandEnvelope, CommandId, Currency, CustomerActionKind, Money,
    OrderId, OrderState, Outcome, PaymentInitiation, Provider, StateView, Status,
};
use paystate_journal::Journal;
use paystate_sandbox::{Action, SandboxHandle};
use paystate_service::Client;
use std::time::{Duration, Instant};

/// How often a waiting step looks at the order again.
const POLL: Duration = Duration::from_millis(25);
/// What the Paykassma customer uploads: a minimal PNG (signature and header chunk).
const SCREENSHOT_PNG: &[u8] =
    b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\x00\x00\x00\x01\x00\x00\x00\x01\x08\x02\x00\x00\x00";

/// Drives one sample order through each provider, in the order of the table above; returns
/// `(provider, order)` for each.
pub async fn drive_all(
    client: &Client,
    sandbox: &SandboxHandle,
    journal: &Journal,
    wait: Duration,
) -> anyhow::Result<Vec<(Provider, OrderId)>> {
    let d = Driver {
        client,
        sandbox,
        journal,
        wait,
    };
    Ok(vec![
        (Provider::Plural, d.card(Provider::Plural, "INR").await?),
        (Provider::Flitt, d.card(Provider::Flitt, "GEL").await?),
        (Provider::Plexy, d.card(Provider::Plexy, "USD").await?),
        (Provider::Paykassma, d.paykassma().await?),
        (Provider::Exchanger, d.exchanger().await?),
    ])
}

struct Driver<'a> {
    client: &'a Client,
    sandbox: &'a SandboxHandle,
    journal: &'a Journal,
    wait: Duration,
}

impl Driver<'_> {
    /// Plural, Flitt, Plexy: 100.00 authorized, 60.00 captured, 25.00 refunded.
    async fn card(&self, provider: Provider, currency: &str) -> anyhow::Result<OrderId> {
        let o = self
            .create(provider, currency, 10_000, CaptureMode::Manual)
            .await?;
        let initiation = PaymentInitiation {
            return_url: Some("https://shop.example/back".into()),
            ..Default::default()
        };
        self.send(&o, Command::StartPayment { initiation }).await?;
        let pending = self
            .until(&o, "showing the payment page", |s| {
                s.customer_action.is_some()
            })
            .await?;
        // Flitt's order id is ours; Plural's and Plexy's are their own references.
        let key = match provider {
            Provider::Flitt => o.to_string(),
            _ => pending.provider_ref.context("no provider reference")?,
        };
        self.act(provider, &key, Action::Approve)?;
        self.until(&o, "authorized", |s| s.status == Status::Authorized)
            .await?;
        let capture = Some(money(6_000, currency)?);
        self.send(&o, Command::Capture { amount: capture }).await?;
        self.until(&o, "captured", |s| s.status == Status::Captured)
            .await?;
        let refund = Some(money(2_500, currency)?);
        self.send(&o, Command::Refund { amount: refund }).await?;
        self.until(&o, "refunded", |s| {
            s.refunded.0 == 2_500 && s.refunds_pending.is_empty()
        })
        .await?;
        Ok(o)
    }

    /// 300.00 BTN by wallet transfer, confirmed with the transaction number and a screenshot.
    async fn paykassma(&self) -> anyhow::Result<OrderId> {
        let p = Provider::Paykassma;
        let o = self.create(p, "BTN", 30_000, CaptureMode::Auto).await?;
        let initiation = PaymentInitiation {
            customer_id: Some(o.to_string()),
            ..Default::default()
        };
        self.send(&o, Command::StartPayment { initiation }).await?;
        self.until(&o, "showing the wallet", |s| {
            s.customer_action
                .as_ref()
                .is_some_and(|a| a.kind == CustomerActionKind::WalletTransfer)
        })
        .await?;
        let transfer = self.act(p, o.as_str(), Action::TransferMade { amount: 300 })?;
        let key1 = transfer.reference.context("the transfer gave no key1")?;
        let store = paystate_service::attachments::open(self.journal.context(), 1)
            .await
            .map_err(|e| anyhow!("attachment store: {e}"))?;
        let attachment =
            paystate_service::attachments::put(&store, "transfer.png", "image/png", SCREENSHOT_PNG)
                .await
                .map_err(|e| anyhow!("screenshot upload: {e}"))?;
        let confirm = Command::ConfirmTransfer {
            reference: key1,
            attachment,
        };
        self.send(&o, confirm).await?;
        self.until(&o, "credited", |s| s.status == Status::Done)
            .await?;
        Ok(o)
    }

    /// 100.00 UAH exchanged: paid on the payment page, paid out.
    async fn exchanger(&self) -> anyhow::Result<OrderId> {
        let p = Provider::Exchanger;
        let o = self.create(p, "UAH", 10_000, CaptureMode::Auto).await?;
        self.send(
            &o,
            Command::StartPayment {
                initiation: PaymentInitiation::default(),
            },
        )
        .await?;
        let pending = self
            .until(&o, "showing the payment page", |s| {
                s.customer_action.is_some()
            })
            .await?;
        let reference = pending.provider_ref.context("no exchanger orderId")?;
        self.act(p, &reference, Action::Challenge)?;
        self.act(p, &reference, Action::Approve)?;
        self.until(&o, "paid (queued for payout)", |s| {
            s.status == Status::Captured
        })
        .await?;
        self.act(p, &reference, Action::PayoutDone)?;
        self.until(&o, "done", |s| s.status == Status::Done).await?;
        Ok(o)
    }

    async fn create(
        &self,
        provider: Provider,
        currency: &str,
        minor: u64,
        mode: CaptureMode,
    ) -> anyhow::Result<OrderId> {
        let short = uuid::Uuid::new_v4().simple().to_string();
        let o = OrderId::parse(format!("demo-{provider}-{}", &short[..10]))?;
        let create = Command::CreateOrder {
            merchant_reference: format!("shop-{o}"),
            amount: money(minor, currency)?,
            provider,
            capture_mode: mode,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
        };
        self.send(&o, create).await?;
        Ok(o)
    }

    /// Sends a command and requires its acceptance.
    async fn send(&self, o: &OrderId, command: Command) -> anyhow::Result<StateView> {
        let name = command.name();
        let cmd = CommandEnvelope {
            command_id: CommandId::parse(uuid::Uuid::new_v4().to_string())?,
            order_id: o.clone(),
            issued_at: chrono::Utc::now(),
            command,
        };
        match self.client.send(&cmd, self.wait).await? {
            Outcome::Accepted { state, .. } => Ok(state),
            Outcome::Rejected { code, message, .. } => {
                bail!("{o}: {name} rejected: {code:?}: {message}")
            }
        }
    }

    /// Plays the customer or the provider's back office.
    fn act(
        &self,
        provider: Provider,
        key: &str,
        action: Action,
    ) -> anyhow::Result<paystate_sandbox::ActionOutcome> {
        self.sandbox
            .act(provider, key, action)
            .map_err(|e| anyhow!("{provider} sandbox: {e}"))
    }

    /// Polls the log until `pred` holds for the order (at most `wait`).
    async fn until(
        &self,
        o: &OrderId,
        what: &str,
        pred: impl Fn(&OrderState) -> bool,
    ) -> anyhow::Result<OrderState> {
        let started = Instant::now();
        let mut last = None;
        while started.elapsed() < self.wait {
            if let Some(s) = self.journal.load(o).await?.state {
                if pred(&s) {
                    return Ok(s);
                }
                last = Some(s.status);
            }
            tokio::time::sleep(POLL).await;
        }
        bail!(
            "{o}: never {what} within {:?} (last status: {last:?})",
            self.wait
        )
    }
}

fn money(minor: u64, currency: &str) -> anyhow::Result<Money> {
    Ok(Money::new(Amount::new(minor)?, Currency::parse(currency)?))
}
