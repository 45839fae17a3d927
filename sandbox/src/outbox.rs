//! Callback delivery: one queue and one worker per provider, retries on the provider's
//! schedule (scaled by the time scale), and the callback faults (drop, duplicate, reorder,
//! bad signature). Each provider renders its own wire format through [`Render`].

use crate::config::TimeScale;
use crate::counters::CounterStore;
use crate::faults::{FaultKind, FaultStore};
use paystate_events::Provider;
use serde::Serialize;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Notify};

/// Callbacks waiting for their first attempt or a retry, per provider.
pub const OUTBOX_CAPACITY: usize = 1024;
/// A reordered callback is released after this long if no later callback overtakes it.
pub const REORDER_HOLD_MAX: Duration = Duration::from_secs(2);
/// Delivery attempts remembered for inspection, per sandbox (oldest forgotten first).
pub const DELIVERY_LOG_MAX: usize = 2048;
/// A response body read from a receiver is cut at this many bytes.
pub const ACK_BODY_MAX: usize = 4096;

/// One attempt's request, as the provider would send it.
pub(crate) struct Outgoing {
    pub content_type: &'static str,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

/// Renders a callback for one attempt; `corrupt` asks for a spoiled signature.
/// Rendering happens per attempt because some providers sign the attempt's time.
pub(crate) trait Render: Send + Sync + 'static {
    fn render(&self, corrupt: bool) -> Outgoing;
}

/// What the provider takes as an acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ack {
    /// Any 2xx status (Plural, Plexy, exchanger).
    Any2xx,
    /// HTTP 200 and nothing else (Flitt).
    Exactly200,
    /// HTTP 200 with a body that is the JSON `{"status":"ok"}` (Paykassma).
    StatusOkBody,
}

/// A provider's delivery rules.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Policy {
    /// Documented seconds to wait before each retry; its length bounds the retries.
    pub retry_delays_s: &'static [u64],
    pub ack: Ack,
    /// How long one attempt may take (real time, not scaled).
    pub timeout: Duration,
}

/// One callback the provider wants delivered.
pub(crate) struct Callback {
    pub provider: Provider,
    /// The provider's order key, for counters and faults.
    pub key: String,
    /// A short name for logs (`ORDER_AUTHORIZED`, `transaction.charged`, ...).
    pub label: String,
    pub url: Option<String>,
    pub policy: Policy,
    pub render: Box<dyn Render>,
}

#[derive(Clone)]
struct Job {
    cb: Arc<Callback>,
    /// 0 = first send; n = n-th retry.
    attempt: u32,
}

/// One delivery attempt, kept for inspection through the control API.
#[derive(Debug, Clone, Serialize)]
pub struct DeliveryRecord {
    pub provider: Provider,
    pub order: String,
    pub label: String,
    pub attempt: u32,
    pub status: Option<u16>,
    pub acknowledged: bool,
    pub bad_signature: bool,
    /// The receiver answered, but the answer was lost (`LoseCallbackAck` fault).
    pub ack_lost: bool,
    /// The receiver's answer body (cut at [`ACK_BODY_MAX`] bytes), if it answered.
    pub answer: Option<String>,
    pub error: Option<String>,
}

pub(crate) struct Outbox {
    queues: HashMap<Provider, mpsc::Sender<Job>>,
    held: Mutex<HashMap<Provider, Job>>,
    in_flight: AtomicUsize,
    idle: Notify,
    log: Mutex<VecDeque<DeliveryRecord>>,
    counters: Arc<CounterStore>,
    faults: Arc<FaultStore>,
    scale: TimeScale,
    client: reqwest::Client,
    shutdown: watch::Receiver<bool>,
}

impl Outbox {
    /// Builds the outbox and spawns one worker per provider; the workers end on shutdown.
    pub(crate) fn start(
        counters: Arc<CounterStore>,
        faults: Arc<FaultStore>,
        scale: TimeScale,
        shutdown: watch::Receiver<bool>,
    ) -> (Arc<Outbox>, Vec<tokio::task::JoinHandle<()>>) {
        let mut queues = HashMap::new();
        let mut receivers = Vec::new();
        for p in Provider::ALL {
            let (tx, rx) = mpsc::channel(OUTBOX_CAPACITY);
            queues.insert(p, tx);
            receivers.push(rx);
        }
        let client = reqwest::Client::builder()
            .no_proxy()
            .build()
            .unwrap_or_default();
        let outbox = Arc::new(Outbox {
            queues,
            held: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            idle: Notify::new(),
            log: Mutex::new(VecDeque::new()),
            counters,
            faults,
            scale,
            client,
            shutdown,
        });
        let workers = receivers
            .into_iter()
            .map(|rx| tokio::spawn(worker(outbox.clone(), rx)))
            .collect();
        (outbox, workers)
    }

    /// Hands a callback over for delivery, applying the callback faults.
    pub(crate) fn enqueue(self: &Arc<Self>, cb: Callback) {
        let (provider, key) = (cb.provider, cb.key.clone());
        self.counters
            .bump(provider, &key, |c| c.callbacks_enqueued += 1);
        if cb.url.is_none()
            || self
                .faults
                .take_callback(provider, &key, FaultKind::DropCallback)
        {
            tracing::debug!(%provider, %key, label = %cb.label, "callback dropped");
            self.counters
                .bump(provider, &key, |c| c.callbacks_dropped += 1);
            return;
        }
        let duplicate = self
            .faults
            .take_callback(provider, &key, FaultKind::DuplicateCallback);
        let reorder = self
            .faults
            .take_callback(provider, &key, FaultKind::ReorderCallbacks);
        let job = Job {
            cb: Arc::new(cb),
            attempt: 0,
        };
        let copy = duplicate.then(|| job.clone());
        if reorder && self.hold(job.clone()) {
            self.counters
                .bump(provider, &key, |c| c.callbacks_reordered += 1);
        } else {
            self.push(job);
            let held = self
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&provider);
            if let Some(held) = held {
                self.push_held(held);
            }
        }
        if let Some(copy) = copy {
            self.counters
                .bump(provider, &key, |c| c.callbacks_duplicated += 1);
            self.push(copy);
        }
    }

    /// Holds `job` back until the next callback of its provider; false if one is held already.
    fn hold(self: &Arc<Self>, job: Job) -> bool {
        let provider = job.cb.provider;
        {
            let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
            if held.contains_key(&provider) {
                return false;
            }
            held.insert(provider, job);
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let outbox = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(REORDER_HOLD_MAX).await;
            let held = outbox
                .held
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(&provider);
            if let Some(held) = held {
                outbox.push_held(held);
            }
        });
        true
    }

    /// Pushes a job that was held (its in-flight count was taken when it was held).
    fn push_held(&self, job: Job) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.push(job);
    }

    fn push(&self, job: Job) {
        let (provider, key) = (job.cb.provider, job.cb.key.clone());
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        let sent = self
            .queues
            .get(&provider)
            .map(|q| q.try_send(job).is_ok())
            .unwrap_or(false);
        if !sent {
            tracing::warn!(%provider, %key, "callback queue full or closed; callback dropped");
            self.counters
                .bump(provider, &key, |c| c.callbacks_dropped += 1);
            self.finish_one();
        }
    }

    fn finish_one(&self) {
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.idle.notify_waiters();
    }

    /// Waits until no callback is queued, held or waiting for a retry; false on timeout.
    pub(crate) async fn wait_idle(&self, max: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + max;
        loop {
            let notified = self.idle.notified();
            if self.in_flight.load(Ordering::SeqCst) == 0 {
                return true;
            }
            let step = Duration::from_millis(20);
            if tokio::time::timeout_at(deadline.min(tokio::time::Instant::now() + step), notified)
                .await
                .is_err()
                && tokio::time::Instant::now() >= deadline
            {
                return self.in_flight.load(Ordering::SeqCst) == 0;
            }
        }
    }

    /// The remembered delivery attempts of `provider`, oldest first.
    pub(crate) fn deliveries(&self, provider: Provider) -> Vec<DeliveryRecord> {
        let log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        log.iter()
            .filter(|r| r.provider == provider)
            .cloned()
            .collect()
    }

    fn record(&self, rec: DeliveryRecord) {
        let mut log = self.log.lock().unwrap_or_else(|p| p.into_inner());
        if log.len() >= DELIVERY_LOG_MAX {
            log.pop_front();
        }
        log.push_back(rec);
    }
}

/// Sends each job of one provider in turn; failed jobs come back after their retry delay.
async fn worker(outbox: Arc<Outbox>, mut rx: mpsc::Receiver<Job>) {
    let mut shutdown = outbox.shutdown.clone();
    loop {
        let job = tokio::select! {
            job = rx.recv() => match job { Some(job) => job, None => return },
            _ = shutdown.changed() => return,
        };
        let acknowledged = attempt(&outbox, &job).await;
        let delays = job.cb.policy.retry_delays_s;
        let (provider, key) = (job.cb.provider, job.cb.key.clone());
        match delays.get(job.attempt as usize) {
            _ if acknowledged => outbox.finish_one(),
            None => {
                outbox
                    .counters
                    .bump(provider, &key, |c| c.callbacks_abandoned += 1);
                outbox.finish_one();
            }
            Some(&delay_s) => schedule_retry(&outbox, job, delay_s),
        }
    }
}

fn schedule_retry(outbox: &Arc<Outbox>, job: Job, delay_s: u64) {
    let outbox = outbox.clone();
    let wait = outbox.scale.scale(delay_s);
    let mut shutdown = outbox.shutdown.clone();
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = shutdown.changed() => { outbox.finish_one(); return; }
        }
        let next = Job {
            cb: job.cb,
            attempt: job.attempt + 1,
        };
        let queue = outbox.queues.get(&next.cb.provider).cloned();
        let sent = match queue {
            Some(q) => q.send(next).await.is_ok(),
            None => false,
        };
        if !sent {
            outbox.finish_one();
        }
    });
}

/// Makes one HTTP attempt; true when the receiver acknowledged as the provider requires.
async fn attempt(outbox: &Outbox, job: &Job) -> bool {
    let cb = &job.cb;
    let corrupt =
        outbox
            .faults
            .take_callback(cb.provider, &cb.key, FaultKind::BadSignatureCallback);
    let out = cb.render.render(corrupt);
    let Some(url) = cb.url.as_deref() else {
        return false;
    };
    let mut req = outbox
        .client
        .post(url)
        .timeout(cb.policy.timeout)
        .header("content-type", out.content_type);
    for (name, value) in &out.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    let result = req.body(out.body).send().await;
    let (status, answer, error) = match result {
        Ok(resp) => {
            let status = resp.status().as_u16();
            let body = resp
                .bytes()
                .await
                .map(|b| b.slice(..b.len().min(ACK_BODY_MAX)))
                .unwrap_or_default();
            (Some(status), Some(body), None)
        }
        Err(e) => (None, None, Some(e.to_string())),
    };
    let ack_lost = answer.is_some()
        && outbox
            .faults
            .take_callback(cb.provider, &cb.key, FaultKind::LoseCallbackAck);
    let acknowledged = !ack_lost
        && matches!((status, &answer), (Some(st), Some(body)) if is_ack(cb.policy.ack, st, body));
    outbox.counters.bump(cb.provider, &cb.key, |c| {
        c.callbacks_attempts += 1;
        c.callbacks_resent += u32::from(job.attempt > 0);
        c.callbacks_delivered += u32::from(acknowledged);
        c.callbacks_bad_signature += u32::from(corrupt);
    });
    outbox.record(DeliveryRecord {
        provider: cb.provider,
        order: cb.key.clone(),
        label: cb.label.clone(),
        attempt: job.attempt,
        status,
        acknowledged,
        bad_signature: corrupt,
        ack_lost,
        answer: answer.map(|b| String::from_utf8_lossy(&b).into_owned()),
        error,
    });
    acknowledged
}

fn is_ack(ack: Ack, status: u16, body: &[u8]) -> bool {
    match ack {
        Ack::Any2xx => (200..300).contains(&status),
        Ack::Exactly200 => status == 200,
        Ack::StatusOkBody => {
            status == 200
                && serde_json::from_slice::<serde_json::Value>(body).ok()
                    == Some(serde_json::json!({"status": "ok"}))
        }
    }
}
