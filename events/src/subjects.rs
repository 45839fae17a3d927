//! NATS names: subjects, streams, consumers and buckets. A service in another language needs
//! only these (and `schemas/`) to publish commands and read outcomes.

use crate::OrderId;

/// Stream holding every order's commits (the log, the source of truth).
pub const EVENTS_STREAM: &str = "PAYSTATE_EVENTS";
/// Subject prefix of the log: one subject per order, `paystate.events.<order_id>`.
pub const EVENTS_PREFIX: &str = "paystate.events";
/// Stream holding commands until an engine has processed them (work queue).
pub const COMMANDS_STREAM: &str = "PAYSTATE_COMMANDS";
/// Subject prefix of client commands: `paystate.cmd.<order_id>` (the client plane; a
/// `provider_signal` here is refused as `signal_not_allowed`).
pub const COMMANDS_PREFIX: &str = "paystate.cmd";
/// Subject prefix of provider signals: `paystate.signal.<order_id>` (the signal plane, in the
/// same command stream; only the signal-reporting role may publish here, and only
/// `provider_signal` is accepted).
pub const SIGNALS_PREFIX: &str = "paystate.signal";
/// Subject prefix of operator commands: `paystate.op.<order_id>` (the operator plane, in the
/// same command stream; only the operator role may publish here, and only operator commands
/// (`resolve_review`) are accepted; on `paystate.cmd.*` they are refused as `operator_only`).
pub const OPERATOR_PREFIX: &str = "paystate.op";
/// Stream of commands that failed on every bounded delivery, kept with their reason.
pub const DEAD_LETTERS_STREAM: &str = "PAYSTATE_DEAD_LETTERS";
/// Subject prefix of dead letters: `paystate.dead.<source>.<order_id>`.
pub const DEAD_LETTERS_PREFIX: &str = "paystate.dead";
/// Header of a dead letter naming why it was set aside.
pub const DEAD_REASON_HEADER: &str = "Paystate-Dead-Reason";
/// Stream holding expiry schedules (JetStream message scheduling, nats-server 2.12+): only
/// the engine writes here; the command queue sources its fired messages. A separate stream
/// because a schedule may target any subject of its own stream, and the command queue also
/// holds the signal plane.
pub const SCHEDULES_STREAM: &str = "PAYSTATE_SCHEDULES";
/// Subject of an order's expiry schedule, `paystate.schedule.expire.<order_id>` (one per
/// order: the subject is the schedule's identity).
pub const EXPIRY_SCHEDULE_PREFIX: &str = "paystate.schedule.expire";
/// Subject the server publishes a due expiry to, `paystate.fired.expire.<order_id>`; the
/// command queue sources it as `paystate.cmd.<order_id>`.
pub const EXPIRY_FIRED_PREFIX: &str = "paystate.fired.expire";
/// Prefix of the deterministic command id of an order's scheduled expiry
/// (`expire.<order_id>`): a duplicate firing is answered idempotently.
pub const EXPIRY_COMMAND_ID_PREFIX: &str = "expire";
/// Default prefix of reply inboxes: the engine publishes outcomes only below it.
pub const INBOX_PREFIX_DEFAULT: &str = "_INBOX.";
/// Reply inbox prefixes of paystate's own processes, one per NATS role other than the
/// client's (without the trailing dot). The shipped permissions let no other role subscribe
/// below them, so what those processes receive on their inboxes (JetStream reads and
/// consumer deliveries of the log, callbacks and attachments; outcomes of signals and
/// operator commands) is theirs alone. Client services keep NATS's default `_INBOX`.
pub const ENGINE_INBOX: &str = "_INBOX_engine";
pub const REPORTER_INBOX: &str = "_INBOX_reporter";
pub const PROJECTOR_INBOX: &str = "_INBOX_projector";
pub const OPERATOR_INBOX: &str = "_INBOX_operator";
pub const ADMIN_INBOX: &str = "_INBOX_admin";
/// The own inboxes of the roles that send commands and wait for outcomes (reporters'
/// signals, operators' commands, an engine's forwards to another instance): the engine
/// answers below these as well as below its configured `inbox_prefixes`.
pub const PAYSTATE_REPLY_INBOXES: [&str; 3] = [ENGINE_INBOX, REPORTER_INBOX, OPERATOR_INBOX];
/// Durable consumer shared by every engine instance (competing consumers).
pub const ENGINE_CONSUMER: &str = "paystate-engine";
/// KV bucket of command outcomes by command id (idempotent replies).
pub const OUTCOMES_BUCKET: &str = "paystate_outcomes";
/// Header naming the subject the engine publishes the command's [`crate::Outcome`] to.
pub const REPLY_HEADER: &str = "Paystate-Reply-To";
/// Header of a queued command handed to its fast-path partition's owner: the command's
/// sequence in [`COMMANDS_STREAM`]. A locator, never trusted: the owner reads the command
/// there and decides it at its stored time (the broker's receive time, as the instance that
/// pulled it would have) only if the stored subject and bytes are the request's.
pub const QUEUED_SEQ_HEADER: &str = "Paystate-Queued-Seq";
/// Header carrying a commit's hash.
pub const HASH_HEADER: &str = "Paystate-Commit-Hash";
/// Header carrying a commit's number within its order.
pub const COMMIT_HEADER: &str = "Paystate-Commit";

/// Subject prefix of the fast path (request/reply, the `paystate` NATS service):
/// `paystate.rpc.<plane>.<partition>.<order_id>` where `<plane>` is `cmd`, `signal` or `op`
/// (the last token of the plane's queue prefix; the same roles may publish there as on the
/// queue planes) and `<partition>` is [`rpc_partition`] of the order id in decimal. Not a
/// stream subject: nothing is stored until the engine commits.
pub const RPC_PREFIX: &str = "paystate.rpc";
/// Partitions of the fast path. Each live engine instance serves a share of them (rendezvous
/// hashing over the live instances), so one order's requests go to one instance.
pub const RPC_PARTITIONS: usize = 64;
/// Name of the NATS service (`nats micro info paystate`).
pub const SERVICE_NAME: &str = "paystate";
/// KV bucket where live engine instances announce themselves (heartbeats), so each can work
/// out which fast-path partitions it serves.
pub const ENGINES_BUCKET: &str = "paystate_engines";

/// The fast-path partition of an order id (or of any order token): FNV-1a 64 of its bytes
/// modulo [`RPC_PARTITIONS`] ([`crate::ids::shard_of`]).
pub fn rpc_partition(order_token: &str) -> usize {
    crate::ids::shard_of(order_token, RPC_PARTITIONS)
}

/// The plane token of fast-path subjects (`cmd`, `signal`, `op`).
pub fn rpc_plane_token(plane: Plane) -> &'static str {
    match plane {
        Plane::Client => "cmd",
        Plane::Signal => "signal",
        Plane::Operator => "op",
    }
}

/// The fast-path subject of a command for `order_token` on `plane`:
/// `paystate.rpc.<plane>.<partition>.<order_token>`.
pub fn rpc_subject(plane: Plane, order_token: &str) -> String {
    // Why not format!: built once per fast-path command (issue 15); the same bytes.
    const _: () = assert!(RPC_PARTITIONS <= 100, "two decimal digits at most");
    let partition = rpc_partition(order_token);
    let digit = |d: usize| char::from(b'0' + (d % 10) as u8);
    let plane = rpc_plane_token(plane);
    let mut out = String::with_capacity(RPC_PREFIX.len() + plane.len() + order_token.len() + 5);
    out.push_str(RPC_PREFIX);
    out.push('.');
    out.push_str(plane);
    out.push('.');
    if partition >= 10 {
        out.push(digit(partition / 10));
    }
    out.push(digit(partition));
    out.push('.');
    out.push_str(order_token);
    out
}

/// `parts` concatenated into one string of exactly their length.
fn joined(parts: &[&str]) -> String {
    let mut out = String::with_capacity(parts.iter().map(|p| p.len()).sum());
    for p in parts {
        out.push_str(p);
    }
    out
}

/// A fast-path subject read back: its plane, partition and order token. `None` for anything
/// else, or when the partition token is not the order token's partition (a client that
/// computed it wrongly is refused, never served by the wrong instance).
pub fn parse_rpc_subject(subject: &str) -> Option<(Plane, usize, &str)> {
    let rest = subject.strip_prefix(RPC_PREFIX)?.strip_prefix('.')?;
    let mut parts = rest.splitn(3, '.');
    let plane = match parts.next()? {
        "cmd" => Plane::Client,
        "signal" => Plane::Signal,
        "op" => Plane::Operator,
        _ => return None,
    };
    let partition: usize = parts.next()?.parse().ok()?;
    let order = parts.next()?;
    let ok = !order.is_empty() && !order.contains('.') && partition == rpc_partition(order);
    ok.then_some((plane, partition, order))
}

/// The queue-plane subject equivalent to a fast-path subject (`paystate.<plane>.<order>`),
/// so both paths parse and check commands the same way.
pub fn queue_subject_of(plane: Plane, order_token: &str) -> String {
    joined(&[plane_prefix(plane), ".", order_token])
}

pub fn events_subject(order: &OrderId) -> String {
    joined(&[EVENTS_PREFIX, ".", order.as_str()])
}

pub fn command_subject(order: &OrderId) -> String {
    format!("{COMMANDS_PREFIX}.{order}")
}

pub fn signal_subject(order: &OrderId) -> String {
    format!("{SIGNALS_PREFIX}.{order}")
}

pub fn operator_subject(order: &OrderId) -> String {
    format!("{OPERATOR_PREFIX}.{order}")
}

/// Which plane a command arrived on: who could have published it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plane {
    /// `paystate.cmd.<order>`: client services.
    Client,
    /// `paystate.signal.<order>`: adapter workers, gateway and reconciler only.
    Signal,
    /// `paystate.op.<order>`: operators only (the CLI's `review resolve`, the dashboard).
    Operator,
}

/// Command types accepted only on the operator plane.
pub const OPERATOR_COMMANDS: [&str; 1] = ["resolve_review"];

/// The plane a command `type` is accepted on: `provider_signal` on the signal plane,
/// operator commands on the operator plane, everything else on the client plane.
pub fn plane_for(command_type: &str) -> Plane {
    if command_type == "provider_signal" {
        Plane::Signal
    } else if OPERATOR_COMMANDS.contains(&command_type) {
        Plane::Operator
    } else {
        Plane::Client
    }
}

/// The subject prefix of a plane.
pub fn plane_prefix(plane: Plane) -> &'static str {
    match plane {
        Plane::Client => COMMANDS_PREFIX,
        Plane::Signal => SIGNALS_PREFIX,
        Plane::Operator => OPERATOR_PREFIX,
    }
}

/// The plane of a command subject (`None` for any other subject).
pub fn plane_of(subject: &str) -> Option<Plane> {
    let token = |prefix: &str| {
        subject
            .strip_prefix(prefix)
            .is_some_and(|r| r.starts_with('.'))
    };
    if token(COMMANDS_PREFIX) {
        Some(Plane::Client)
    } else if token(SIGNALS_PREFIX) {
        Some(Plane::Signal)
    } else if token(OPERATOR_PREFIX) {
        Some(Plane::Operator)
    } else {
        None
    }
}

/// The order id token of an events, commands, signals or operator subject, if it has one.
pub fn order_token(subject: &str) -> Option<&str> {
    subject
        .strip_prefix(EVENTS_PREFIX)
        .or_else(|| subject.strip_prefix(COMMANDS_PREFIX))
        .or_else(|| subject.strip_prefix(SIGNALS_PREFIX))
        .or_else(|| subject.strip_prefix(OPERATOR_PREFIX))
        .and_then(|rest| rest.strip_prefix('.'))
        .filter(|t| !t.is_empty() && !t.contains('.'))
}

/// Longest reply subject the engine publishes to.
pub const REPLY_SUBJECT_LEN_MAX: usize = 256;

/// Why a reply target was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReplyTargetError {
    #[error("reply subject is longer than {REPLY_SUBJECT_LEN_MAX} bytes")]
    TooLong,
    #[error("reply subject {0:?} is not a plain subject (empty token, wildcard, space or control character)")]
    NotASubject(String),
    #[error("reply subject {subject:?} is not below an inbox prefix ({allowed})")]
    NotAnInbox { subject: String, allowed: String },
}

/// Checks that `subject` is a literal subject strictly below one of the inbox `prefixes`
/// (each ending in `.`, none of them a paystate, `$JS`, `$KV` or `$SYS` subject; see
/// [`inbox_prefix_ok`]). The engine publishes outcomes only to subjects that pass.
pub fn check_reply_target(subject: &str, prefixes: &[String]) -> Result<(), ReplyTargetError> {
    if subject.len() > REPLY_SUBJECT_LEN_MAX {
        return Err(ReplyTargetError::TooLong);
    }
    let literal = !subject.is_empty()
        && subject
            .split('.')
            .all(|t| !t.is_empty() && t != "*" && t != ">")
        && subject
            .chars()
            .all(|c| c.is_ascii_graphic() && c != '*' && c != '>');
    if !literal {
        return Err(ReplyTargetError::NotASubject(excerpt(subject)));
    }
    let below = prefixes
        .iter()
        .any(|p| inbox_prefix_ok(p) && subject.len() > p.len() && subject.starts_with(p.as_str()));
    if !below {
        return Err(ReplyTargetError::NotAnInbox {
            subject: excerpt(subject),
            allowed: prefixes.join(", "),
        });
    }
    Ok(())
}

/// An inbox prefix may be configured only if it ends in `.`, is a literal subject prefix and
/// does not reach into paystate's own subjects or the server's APIs.
pub fn inbox_prefix_ok(prefix: &str) -> bool {
    let body = prefix.strip_suffix('.').unwrap_or_default();
    let literal = !body.is_empty()
        && body.split('.').all(|t| {
            !t.is_empty()
                && t.chars()
                    .all(|c| c.is_ascii_graphic() && c != '*' && c != '>')
        });
    // `$` covers `$JS`, `$KV`, `$SYS` and every other server-internal subject.
    literal && !prefix.starts_with('$') && !prefix.starts_with("paystate.")
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inbox() -> Vec<String> {
        vec![INBOX_PREFIX_DEFAULT.to_string()]
    }

    #[test]
    fn replies_go_only_below_an_inbox_prefix() {
        assert!(check_reply_target("_INBOX.abc.1", &inbox()).is_ok());
        for bad in [
            "paystate.events.o-1",
            "$KV.paystate_outcomes.o-1.c-1",
            "$JS.API.STREAM.DELETE.PAYSTATE_EVENTS",
            "$SYS.REQ.SERVER.PING",
            "_INBOX.",
            "_INBOX",
            "_INBOX.*",
            "_INBOX.>",
            "_INBOX..a",
            "_INBOX.a b",
            "_INBOX.a\u{7f}",
            "",
            "x_INBOX.a",
        ] {
            assert!(check_reply_target(bad, &inbox()).is_err(), "{bad:?}");
        }
        let long = format!("_INBOX.{}", "a".repeat(REPLY_SUBJECT_LEN_MAX));
        assert_eq!(
            check_reply_target(&long, &inbox()),
            Err(ReplyTargetError::TooLong)
        );
    }

    #[test]
    fn inbox_prefixes_cannot_reach_paystate_or_server_subjects() {
        assert!(inbox_prefix_ok("_INBOX."));
        assert!(inbox_prefix_ok("shop.replies."));
        for bad in [
            "paystate.",
            "$JS.",
            "$KV.",
            "$SYS.",
            "_INBOX",
            "",
            ".",
            "a..",
            "a.*.",
            ">.",
        ] {
            assert!(!inbox_prefix_ok(bad), "{bad:?}");
        }
        // A bad configured prefix never lets a reply through.
        let cfg = vec!["paystate.".to_string()];
        assert!(check_reply_target("paystate.events.o-1", &cfg).is_err());
    }

    #[test]
    fn rpc_subjects_round_trip() {
        for (plane, order) in [
            (Plane::Client, "o-1"),
            (Plane::Signal, "A_b-9"),
            (Plane::Operator, "x"),
        ] {
            let subject = rpc_subject(plane, order);
            let (p, part, o) = parse_rpc_subject(&subject).expect("parses");
            assert_eq!((p, part, o), (plane, rpc_partition(order), order));
            assert!(part < RPC_PARTITIONS);
            assert_eq!(plane_of(&queue_subject_of(plane, order)), Some(plane));
        }
        let wrong = format!(
            "{RPC_PREFIX}.cmd.{}.o-1",
            (rpc_partition("o-1") + 1) % RPC_PARTITIONS
        );
        assert_eq!(parse_rpc_subject(&wrong), None);
        assert_eq!(parse_rpc_subject("paystate.rpc.cmd.x.o-1"), None);
        assert_eq!(parse_rpc_subject("paystate.rpc.evil.0.o-1"), None);
        assert_eq!(parse_rpc_subject("paystate.cmd.o-1"), None);
        // The README's worked example: FNV-1a 64 of "o-1" is 0x1939e619211b2668, mod 64 = 40.
        assert_eq!(rpc_subject(Plane::Client, "o-1"), "paystate.rpc.cmd.40.o-1");
    }

    proptest::proptest! {
        /// Every order id of the documented alphabet and length (`ids.rs`: 1..=64 of
        /// `A-Z a-z 0-9 _ -`) makes a fast-path subject that parses back to itself, with
        /// no wildcard and no empty token, on every plane.
        #[test]
        fn every_order_id_round_trips_through_its_rpc_subject(
            order in "[A-Za-z0-9_-]{1,64}",
            plane in proptest::sample::select(vec![Plane::Client, Plane::Signal, Plane::Operator]),
        ) {
            proptest::prop_assert!(crate::OrderId::parse(order.clone()).is_ok());
            let subject = rpc_subject(plane, &order);
            let documented = format!("{RPC_PREFIX}.{}.{}.{order}", rpc_plane_token(plane), rpc_partition(&order));
            proptest::prop_assert_eq!(&subject, &documented);
            proptest::prop_assert!(subject.split('.').all(|t| !t.is_empty() && t != "*" && t != ">"));
            proptest::prop_assert!(!subject.contains(['*', '>', ' ']));
            let (p, part, o) = parse_rpc_subject(&subject).expect("parses");
            proptest::prop_assert_eq!((p, part, o), (plane, rpc_partition(&order), order.as_str()));
            proptest::prop_assert!(part < RPC_PARTITIONS);
            let queue = queue_subject_of(plane, &order);
            proptest::prop_assert_eq!(&queue, &format!("{}.{order}", plane_prefix(plane)));
            proptest::prop_assert_eq!(order_token(&queue), Some(order.as_str()));
        }
    }

    #[test]
    fn planes_and_order_tokens() {
        assert_eq!(plane_of("paystate.cmd.o-1"), Some(Plane::Client));
        assert_eq!(plane_of("paystate.signal.o-1"), Some(Plane::Signal));
        assert_eq!(plane_of("paystate.op.o-1"), Some(Plane::Operator));
        assert_eq!(plane_of("paystate.cmdx.o-1"), None);
        assert_eq!(plane_of("paystate.opx.o-1"), None);
        assert_eq!(order_token("paystate.op.o-1"), Some("o-1"));
        assert_eq!(plane_for("resolve_review"), Plane::Operator);
        assert_eq!(plane_for("provider_signal"), Plane::Signal);
        assert_eq!(plane_for("capture"), Plane::Client);
        for name in OPERATOR_COMMANDS {
            assert!(crate::Command::NAMES.contains(&name), "{name}");
        }
        assert_eq!(order_token("paystate.signal.o-1"), Some("o-1"));
        assert_eq!(order_token("paystate.signal.o.1"), None);
    }
}
