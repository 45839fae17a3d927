//! Shared by the projection's tests: one order's commits as the engine would store them.

use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, OrderId, OrderState, Provider,
    ProviderSignal, SignalKind, Timestamp, COMMIT_SCHEMA_VERSION,
};
use paystate_journal::{EncodedCommit, StoredCommit};

pub fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
}

/// An order's commits as stored at sequences 10, 20, 30, ... (other orders in between).
pub fn stored(order: &str) -> (Vec<StoredCommit>, OrderState) {
    let order = OrderId::parse(order).expect("id");
    let sig = |kind| Command::ProviderSignal {
        signal: ProviderSignal {
            provider: Provider::Plural,
            provider_ref: Some("pl-1".into()),
            evidence_ref: "e".into(),
            observed_at: at(0),
            kind,
        },
    };
    let commands = vec![
        Command::CreateOrder {
            merchant_reference: "m".into(),
            amount: money(10_000, "USD").expect("money"),
            provider: Provider::Plural,
            capture_mode: CaptureMode::Manual,
            expires_at: None,
            merchant_account: None,
            metadata: Default::default(),
        },
        Command::StartPayment {
            initiation: Default::default(),
        },
        sig(SignalKind::Authorized { amount: None }),
    ];
    stored_from(&order, commands)
}

/// Commits of `commands`, decided and folded in order, stored at sequences 10, 20, 30, ...
pub fn stored_from(order: &OrderId, commands: Vec<Command>) -> (Vec<StoredCommit>, OrderState) {
    let order = order.clone();
    let mut state: Option<OrderState> = None;
    let mut out = Vec::new();
    for (n, command) in commands.into_iter().enumerate() {
        let env = CommandEnvelope {
            command_id: CommandId::parse(format!("c{n}")).expect("id"),
            order_id: order.clone(),
            issued_at: at(0),
            command,
        };
        let decision = decide(state.as_ref(), &env, at(n as i64));
        let Ok(Decision::Commit(events)) = decision else {
            panic!("command {n} accepted: {decision:?}")
        };
        let (commits, prev_hash) = state.as_ref().map_or(
            (0, paystate_events::commit::GENESIS_HASH.to_string()),
            |s| (s.commits, s.head_hash.clone()),
        );
        let commit = Commit {
            v: COMMIT_SCHEMA_VERSION,
            order_id: order.clone(),
            commit: commits + 1,
            prev_hash,
            decided_at: at(n as i64),
            fingerprint: env.fingerprint(),
            command: env,
            events,
        };
        let e = EncodedCommit::new(commit);
        state = Some(apply_commit(state, &e.commit, &e.hash).expect("folds"));
        let sequence = (n as u64 + 1) * 10;
        out.push(StoredCommit {
            sequence,
            subject: format!("paystate.events.{order}"),
            time: at(0),
            hash: e.hash.clone(),
            header_hash: Some(e.hash),
            commit: e.commit,
        });
    }
    (out, state.expect("state"))
}
