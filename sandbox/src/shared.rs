//! State shared by every request handler of one sandbox server.

use crate::config::SandboxConfig;
use crate::counters::CounterStore;
use crate::faults::FaultStore;
use crate::outbox::Outbox;
use crate::{exchanger, flitt, paykassma, plexy, plural};
use paystate_events::Provider;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::sync::watch;

/// Locks a mutex, taking the data even if another thread panicked while holding it
/// (every critical section leaves the maps consistent before it can panic).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub(crate) struct Shared {
    pub config: SandboxConfig,
    /// `http://127.0.0.1:<port>`: every provider lives under `/{provider}` below it.
    pub origin: String,
    pub counters: Arc<CounterStore>,
    pub faults: Arc<FaultStore>,
    pub outbox: Arc<Outbox>,
    pub shutdown: watch::Receiver<bool>,
    callback_overrides: Mutex<HashMap<Provider, String>>,
    /// Exchanger IPN drop share in percent, changeable at run time.
    pub ipn_drop_percent: AtomicU8,
    /// Counts exchanger IPNs, to drop an exact share of them.
    pub ipn_seq: AtomicU64,
    pub plexy: Mutex<plexy::State>,
    pub plural: Mutex<plural::State>,
    pub flitt: Mutex<flitt::State>,
    pub paykassma: Mutex<paykassma::State>,
    pub exchanger: Mutex<exchanger::State>,
}

impl Shared {
    pub(crate) fn new(
        config: SandboxConfig,
        origin: String,
        counters: Arc<CounterStore>,
        faults: Arc<FaultStore>,
        outbox: Arc<Outbox>,
        shutdown: watch::Receiver<bool>,
    ) -> Shared {
        let drop = config.exchanger.ipn_drop_percent.min(100);
        Shared {
            config,
            origin,
            counters,
            faults,
            outbox,
            shutdown,
            callback_overrides: Mutex::new(HashMap::new()),
            ipn_drop_percent: AtomicU8::new(drop),
            ipn_seq: AtomicU64::new(0),
            plexy: Mutex::default(),
            plural: Mutex::default(),
            flitt: Mutex::default(),
            paykassma: Mutex::default(),
            exchanger: Mutex::default(),
        }
    }

    /// The base URL of one provider: what paystate's adapter config points at.
    pub(crate) fn base_url(&self, provider: Provider) -> String {
        format!("{}/{}", self.origin, provider.as_str())
    }

    /// Where the provider's dashboard-configured callbacks go: a run-time override, the
    /// provider's own config field, or the gateway's `/callbacks/{provider}`.
    pub(crate) fn callback_url(&self, provider: Provider) -> Option<String> {
        if let Some(url) = lock(&self.callback_overrides).get(&provider) {
            return Some(url.clone());
        }
        let own = match provider {
            Provider::Plexy => self.config.plexy.webhook_url.clone(),
            Provider::Paykassma => self.config.paykassma.postback_url.clone(),
            Provider::Plural => self.config.plural.webhook_url.clone(),
            Provider::Exchanger => self.config.exchanger.ipn_url.clone(),
            Provider::Flitt => self.config.flitt.callback_url.clone(),
        };
        own.or_else(|| {
            let gateway = self.config.gateway_url.as_deref()?;
            Some(format!(
                "{}/callbacks/{}",
                gateway.trim_end_matches('/'),
                provider.as_str()
            ))
        })
    }

    pub(crate) fn set_callback_url(&self, provider: Provider, url: Option<String>) {
        let mut map = lock(&self.callback_overrides);
        match url {
            Some(url) => map.insert(provider, url),
            None => map.remove(&provider),
        };
    }

    /// Decides whether the next exchanger IPN is dropped: exactly `percent` of every 100.
    pub(crate) fn drop_next_ipn(&self) -> bool {
        let percent = u64::from(self.ipn_drop_percent.load(Ordering::SeqCst).min(100));
        let n = self.ipn_seq.fetch_add(1, Ordering::SeqCst);
        (n + 1) * percent / 100 > n * percent / 100
    }

    /// Sleeps, but wakes early when the server shuts down.
    pub(crate) async fn sleep(&self, d: Duration) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(d) => {}
            _ = shutdown.changed() => {}
        }
    }
}
