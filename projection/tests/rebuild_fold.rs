//! The rebuild's fold on the full state (`rebuild_fold::apply_full`) gives exactly the
//! records `record::apply` gives, commit by commit: in order, redelivered, after a break in
//! the chain and after a commit that does not fold (the record before it stays).

use paystate_engine::{apply_commit, decide, Decision};
use paystate_events::command::money;
use paystate_events::{
    CaptureMode, Command, CommandEnvelope, CommandId, Commit, Event, OrderId, OrderState, Provider,
    ProviderSignal, RejectionCode, SignalKind, Timestamp, COMMIT_SCHEMA_VERSION,
};
use paystate_journal::{EncodedCommit, StoredCommit};
use paystate_projection::rebuild_fold::{apply_full, FoldedOrder};
use paystate_projection::record::apply;

fn at(secs: i64) -> Timestamp {
    chrono::DateTime::from_timestamp(1_800_000_000 + secs, 0).expect("time")
}

/// An order's commits as stored at sequences 10, 20, 30, ... (other orders in between).
fn stored(order: &str) -> (Vec<StoredCommit>, OrderState) {
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
fn stored_from(order: &OrderId, commands: Vec<Command>) -> (Vec<StoredCommit>, OrderState) {
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

/// Feeds `commits` to both folds and checks the steps and records stay equal throughout.
fn same_as_record_apply(commits: &[StoredCommit]) {
    let (mut record, mut full): (_, Option<FoldedOrder>) = (None, None);
    for c in commits {
        let expected = apply(&mut record, c, true);
        let step = apply_full(&mut full, c.sequence, &c.commit, &c.hash);
        assert_eq!(step, expected, "step at seq {}", c.sequence);
        assert_eq!(
            full.as_ref().map(FoldedOrder::record),
            record,
            "record after seq {}",
            c.sequence
        );
    }
}

#[test]
fn in_order_and_redelivered_commits_give_the_same_records() {
    let (commits, _) = stored("r1");
    let twice: Vec<_> = commits.iter().chain(&commits).cloned().collect();
    same_as_record_apply(&twice);
}

#[test]
fn a_break_in_the_chain_gives_the_same_problem() {
    let (commits, _) = stored("r2");
    same_as_record_apply(&[commits[0].clone(), commits[2].clone()]);
}

#[test]
fn a_commit_that_does_not_fold_keeps_the_record_before_it() {
    let (commits, _) = stored("r3");
    let mut bad = commits[2].clone();
    // A refusal beside another event does not fold (engine::apply_commit), nor does a second
    // order_created; both must leave the order's record as it was, problem noted.
    bad.commit.events.push(Event::CommandRejected {
        code: RejectionCode::InvalidField,
        message: "x".into(),
    });
    let e = EncodedCommit::new(bad.commit.clone());
    bad.hash = e.hash;
    let mut created_twice = commits[2].clone();
    created_twice.commit.events = commits[0].commit.events.clone();
    same_as_record_apply(&[commits[0].clone(), commits[1].clone(), bad]);
    same_as_record_apply(&[commits[0].clone(), commits[1].clone(), created_twice]);
}
