//! Who may publish and subscribe to what on NATS: one NATS user per permission role, with
//! exact allow (and deny) lists. This module is the one source of truth: the shipped
//! nats-server config `deploy/nats/paystate-users.conf`, the README's permission table,
//! `paystate dev`'s server config and `paystate check` are all generated from it.
//!
//! Roles and who runs with them:
//!
//! | role | who |
//! |---|---|
//! | `client` | client services: send commands, read outcomes and the projection |
//! | `engine` | `run --roles engine`: the only writer of the log and the outcome bucket |
//! | `reporter` | adapter workers, reconciler, gateway: the only publishers of provider signals |
//! | `projector` | `run --roles projector` / `project run`: writes the projection buckets |
//! | `operator` | audit, show, replay, export, orders, projection rebuild/swap |
//! | `admin` | everything (import, repairs) |
//!
//! JetStream is reached through subjects: `$JS.API.<op>.<stream>...` requests,
//! `$JS.ACK.<stream>.<consumer>...` acknowledgements, `$KV.<bucket>.<key>` KV writes and
//! `$O.<bucket>...` object-store writes. NATS wildcards are token-wide (`*` one token, `>` the
//! rest), so generation-numbered names (`paystate_orders_g<N>`) need a token wildcard; those
//! places are narrowed with deny lists (a deny always wins over an allow).

use paystate_events::subjects::{
    rpc_plane_token, Plane, COMMANDS_PREFIX, COMMANDS_STREAM, DEAD_LETTERS_PREFIX,
    DEAD_LETTERS_STREAM, ENGINES_BUCKET, ENGINE_CONSUMER, EVENTS_PREFIX, EVENTS_STREAM,
    EXPIRY_FIRED_PREFIX, EXPIRY_SCHEDULE_PREFIX, OPERATOR_PREFIX, OUTCOMES_BUCKET, RPC_PREFIX,
    SCHEDULES_STREAM, SIGNALS_PREFIX,
};
use paystate_gateway::callbacks::{CALLBACKS_PREFIX, CALLBACKS_STREAM, HELD_BUCKET, SEEN_BUCKET};
use paystate_journal::dead_letters::{redrive_consumer, Source};
use paystate_journal::quarantine::QUARANTINE_BUCKET;
use paystate_projection::layout::{ORDER_KEY_PREFIX, POINTER_BUCKET};
use paystate_service::attachments::ATTACHMENTS_BUCKET;
use paystate_service::refs::REFS_BUCKET;
use paystate_workers::worker::WORKERS_CONSUMER;
use std::collections::BTreeSet;

/// A permission role: one NATS user each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Client,
    Engine,
    Reporter,
    Projector,
    Operator,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Client,
        Role::Engine,
        Role::Reporter,
        Role::Projector,
        Role::Operator,
        Role::Admin,
    ];

    /// The role's name in settings (`[nats.roles.<name>]`).
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Engine => "engine",
            Role::Reporter => "reporter",
            Role::Projector => "projector",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }

    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|r| r.name() == name)
    }

    /// Prefix of this role's reply inboxes (without the trailing dot). The client role keeps
    /// NATS's default `_INBOX` (client services in any language use it); every other role
    /// has its own, below which only it may subscribe, so a client cannot read what internal
    /// processes receive on their inboxes (see `paystate_events::subjects::ENGINE_INBOX`).
    pub fn inbox_prefix(self) -> &'static str {
        use paystate_events::subjects as s;
        match self {
            Role::Client => "_INBOX",
            Role::Engine => s::ENGINE_INBOX,
            Role::Reporter => s::REPORTER_INBOX,
            Role::Projector => s::PROJECTOR_INBOX,
            Role::Operator => s::OPERATOR_INBOX,
            Role::Admin => s::ADMIN_INBOX,
        }
    }

    /// The NATS user name in the shipped config.
    pub fn user(self) -> String {
        format!("paystate-{}", self.name())
    }

    /// The environment variable nats-server reads the user's password from.
    pub fn password_env(self) -> String {
        format!("PAYSTATE_NATS_{}_PASSWORD", self.name().to_uppercase())
    }

    /// Who runs with this role.
    pub fn who(self) -> &'static str {
        match self {
            Role::Client => "client services (and `paystate send`)",
            Role::Engine => "`run --roles engine`",
            Role::Reporter => "`run --roles workers,reconciler,gateway`",
            Role::Projector => "`run --roles projector`, `project run`",
            Role::Operator => "audit, show, replay, export, order(s), project rebuild/swap/status",
            Role::Admin => "import and repairs",
        }
    }

    /// The permission role a `paystate run` part runs with.
    pub fn of_part(part: &str) -> Option<Role> {
        match part {
            "engine" => Some(Role::Engine),
            "projector" => Some(Role::Projector),
            "workers" | "reconciler" | "gateway" => Some(Role::Reporter),
            _ => None,
        }
    }

    pub fn permissions(self) -> Permissions {
        layout(self)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Allow and deny lists for one direction.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rules {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// A user's permissions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Rules,
    pub subscribe: Rules,
}

/// Builds allow/deny lists without duplicates, in the order added.
#[derive(Default)]
struct Builder {
    p: Permissions,
}

impl Builder {
    fn publish(&mut self, subjects: impl IntoIterator<Item = String>) -> &mut Self {
        push_all(&mut self.p.publish.allow, subjects);
        self
    }
    fn deny_publish(&mut self, subjects: impl IntoIterator<Item = String>) -> &mut Self {
        push_all(&mut self.p.publish.deny, subjects);
        self
    }
    /// Takes `subjects` off the publish deny list (a role's one exception to a shared denial).
    fn undeny_publish(&mut self, subjects: &[String]) -> &mut Self {
        self.p.publish.deny.retain(|s| !subjects.contains(s));
        self
    }
    fn subscribe(&mut self, subjects: impl IntoIterator<Item = String>) -> &mut Self {
        push_all(&mut self.p.subscribe.allow, subjects);
        self
    }
    fn deny_subscribe(&mut self, subjects: impl IntoIterator<Item = String>) -> &mut Self {
        push_all(&mut self.p.subscribe.deny, subjects);
        self
    }
}

fn push_all(list: &mut Vec<String>, subjects: impl IntoIterator<Item = String>) {
    for s in subjects {
        if !list.contains(&s) {
            list.push(s);
        }
    }
}

/// The fast-path requests of a plane: `paystate.rpc.<plane>.>` (the same roles publish
/// there as on the plane's queue subjects).
fn rpc(plane: Plane) -> String {
    format!("{RPC_PREFIX}.{}.>", rpc_plane_token(plane))
}

fn kv_stream(bucket: &str) -> String {
    format!("KV_{bucket}")
}

fn obj_stream(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// `$JS.API.<op>.<stream>`.
fn api(op: &str, stream: &str) -> String {
    format!("$JS.API.{op}.{stream}")
}

/// What every user may do: ask who it is, ask JetStream account info, receive replies below
/// its own inbox prefix ([`Role::inbox_prefix`]).
fn base(b: &mut Builder, role: Role) {
    b.publish(["$SYS.REQ.USER.INFO".into(), "$JS.API.INFO".into()])
        .subscribe([format!("{}.>", role.inbox_prefix())]);
}

/// Stream info (read-only metadata) of any stream: the projection's buckets are
/// generation-numbered, so their names need a token wildcard.
fn stream_info_any(b: &mut Builder) {
    b.publish([api("STREAM.INFO", "*")]);
}

/// Create (or, for `update`, change) a stream: creating an existing stream with another
/// configuration is refused by the server.
fn create_stream(b: &mut Builder, stream: &str, update: bool) {
    b.publish([api("STREAM.INFO", stream), api("STREAM.CREATE", stream)]);
    if update {
        b.publish([api("STREAM.UPDATE", stream)]);
    }
}

/// Direct reads of a stream (by sequence and last by subject) and the leader's message get.
fn read_stream(b: &mut Builder, stream: &str) {
    b.publish([
        api("STREAM.INFO", stream),
        api("DIRECT.GET", stream),
        format!("{}.>", api("DIRECT.GET", stream)),
        api("STREAM.MSG.GET", stream),
    ]);
}

/// Ephemeral ordered pull consumers on a stream (whole-stream reads): create, info, next.
fn scan_stream(b: &mut Builder, stream: &str) {
    b.publish([
        api("CONSUMER.CREATE", stream),
        format!("{}.>", api("CONSUMER.CREATE", stream)),
        format!("{}.*", api("CONSUMER.INFO", stream)),
        format!("{}.*", api("CONSUMER.MSG.NEXT", stream)),
        format!("{}.*", api("CONSUMER.DELETE", stream)),
    ]);
}

/// One durable pull consumer: create (with or without a filter token), info, next, ack.
fn durable(b: &mut Builder, stream: &str, consumer: &str) {
    b.publish([
        format!("{}.{consumer}", api("CONSUMER.CREATE", stream)),
        format!("{}.{consumer}.>", api("CONSUMER.CREATE", stream)),
        format!("{}.{consumer}", api("CONSUMER.DURABLE.CREATE", stream)),
        format!("{}.{consumer}", api("CONSUMER.INFO", stream)),
        format!("{}.{consumer}", api("CONSUMER.MSG.NEXT", stream)),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]);
}

/// A KV bucket: open/create it, read and write its keys.
fn kv_write(b: &mut Builder, bucket: &str) {
    create_stream(b, &kv_stream(bucket), false);
    read_stream(b, &kv_stream(bucket));
    b.publish([format!("$KV.{bucket}.>")]);
}

/// Reading the outcome bucket.
fn read_outcomes(b: &mut Builder) {
    read_stream(b, &kv_stream(OUTCOMES_BUCKET));
}

/// Reading the projection: the pointer bucket and the live generation's bucket.
fn read_projection(b: &mut Builder) {
    stream_info_any(b);
    read_stream(b, &kv_stream(POINTER_BUCKET));
    b.publish([
        // Last value of `order.<id>` in any generation bucket (`KV_paystate_orders_g<N>`).
        format!("$JS.API.DIRECT.GET.*.$KV.*.{ORDER_KEY_PREFIX}>"),
    ]);
}

/// Scanning the projection (`orders list`): ordered consumers on the generation buckets.
fn scan_projection(b: &mut Builder) {
    b.publish([
        "$JS.API.CONSUMER.CREATE.*".into(),
        "$JS.API.CONSUMER.CREATE.*.>".into(),
        "$JS.API.CONSUMER.INFO.*.*".into(),
        "$JS.API.CONSUMER.MSG.NEXT.*.*".into(),
        "$JS.API.CONSUMER.DELETE.*.*".into(),
    ]);
}

/// Opening the projection store creates its pointer bucket when it is missing.
fn open_projection(b: &mut Builder) {
    read_projection(b);
    create_stream(b, &kv_stream(POINTER_BUCKET), false);
}

/// Reading the log: one order (message get), whole-log scans, and the operators' quarantine
/// decisions that readers honour (the bucket is created by whoever reads first).
fn read_log(b: &mut Builder) {
    read_stream(b, EVENTS_STREAM);
    scan_stream(b, EVENTS_STREAM);
    let q = kv_stream(QUARANTINE_BUCKET);
    create_stream(b, &q, false);
    read_stream(b, &q);
    scan_stream(b, &q);
}

/// Denied to everyone but the operator (and admin): quarantine decisions.
fn deny_operator_only(b: &mut Builder) {
    b.deny_publish([
        // The operator plane (`resolve_review`): a person's decision, not a service's.
        format!("{OPERATOR_PREFIX}.>"),
        rpc(Plane::Operator),
        format!("$KV.{QUARANTINE_BUCKET}.>"),
    ]);
}

/// Never for anyone but the admin: deleting or purging a stream or a message, changing or
/// deleting paystate's streams and the engine's work queue consumer, writing the log,
/// outcome, reference or callback buckets.
fn deny_destructive(b: &mut Builder) {
    b.deny_publish([
        // Fired expiries are published by nats-server's scheduler alone.
        format!("{EXPIRY_FIRED_PREFIX}.>"),
        "$JS.API.STREAM.PURGE.>".into(),
        "$JS.API.STREAM.MSG.DELETE.>".into(),
        "$JS.API.STREAM.RESTORE.>".into(),
        "$JS.API.STREAM.SNAPSHOT.>".into(),
        "$JS.API.STREAM.PEER.>".into(),
        "$JS.API.STREAM.LEADER.>".into(),
        "$JS.API.META.>".into(),
        "$JS.API.ACCOUNT.>".into(),
    ]);
    for s in [
        EVENTS_STREAM.to_string(),
        COMMANDS_STREAM.to_string(),
        DEAD_LETTERS_STREAM.to_string(),
        kv_stream(OUTCOMES_BUCKET),
        kv_stream(REFS_BUCKET),
        kv_stream(SEEN_BUCKET),
        kv_stream(HELD_BUCKET),
        kv_stream(POINTER_BUCKET),
        kv_stream(QUARANTINE_BUCKET),
        CALLBACKS_STREAM.to_string(),
        obj_stream(ATTACHMENTS_BUCKET),
        SCHEDULES_STREAM.to_string(),
    ] {
        b.deny_publish([api("STREAM.DELETE", &s)]);
    }
}

/// Denied to everyone but the engine: the log, dead letters, outcomes, and the engine's
/// work queue (its consumer, which is the only one that may exist on it).
fn deny_engine_only(b: &mut Builder) {
    b.deny_publish([
        format!("{EVENTS_PREFIX}.>"),
        format!("$KV.{OUTCOMES_BUCKET}.>"),
        // Heartbeats of live engine instances (fast-path partition owners).
        format!("$KV.{ENGINES_BUCKET}.>"),
        format!("{EXPIRY_SCHEDULE_PREFIX}.>"),
        api("STREAM.UPDATE", SCHEDULES_STREAM),
        api("STREAM.UPDATE", EVENTS_STREAM),
        api("STREAM.UPDATE", COMMANDS_STREAM),
        api("STREAM.UPDATE", DEAD_LETTERS_STREAM),
        api("CONSUMER.CREATE", COMMANDS_STREAM),
        format!("{}.>", api("CONSUMER.CREATE", COMMANDS_STREAM)),
        format!("{}.>", api("CONSUMER.DURABLE.CREATE", COMMANDS_STREAM)),
        format!("{}.>", api("CONSUMER.DELETE", COMMANDS_STREAM)),
        format!("{}.>", api("CONSUMER.MSG.NEXT", COMMANDS_STREAM)),
        format!("$JS.ACK.{COMMANDS_STREAM}.>"),
    ]);
}

/// Dead-letter subjects (`paystate.dead.<token>.>`) each role may write: every consumer its
/// own kind, the operator redrive requests and markers. Allowed to the role, denied to it
/// otherwise (a deny wins over a wider allow).
fn dead_letters(b: &mut Builder, role: Role) {
    use paystate_journal::dead_letters::{REDRIVEN_TOKEN, REDRIVE_TOKEN};
    let own: &[&str] = match role {
        Role::Engine => &[Source::Engine.token()],
        Role::Reporter => &[
            Source::Workers.token(),
            Source::Reconciler.token(),
            Source::Callbacks.token(),
        ],
        Role::Projector => &[Source::Projector.token()],
        Role::Operator => &[REDRIVE_TOKEN, REDRIVEN_TOKEN],
        Role::Client | Role::Admin => &[],
    };
    let all = Source::ALL
        .iter()
        .map(|s| s.token())
        .chain([REDRIVE_TOKEN, REDRIVEN_TOKEN]);
    for token in all {
        let subject = format!("{DEAD_LETTERS_PREFIX}.{token}.>");
        match own.contains(&token) {
            true => b.publish([subject]),
            false => b.deny_publish([subject]),
        };
    }
}

/// Denied to everyone but the reporter: the signal plane and the gateway's own buckets.
fn deny_reporter_only(b: &mut Builder) {
    b.deny_publish([
        format!("{SIGNALS_PREFIX}.>"),
        rpc(Plane::Signal),
        format!("{CALLBACKS_PREFIX}.>"),
        format!("$KV.{REFS_BUCKET}.>"),
        format!("$KV.{SEEN_BUCKET}.>"),
        format!("$KV.{HELD_BUCKET}.>"),
        format!("$O.{ATTACHMENTS_BUCKET}.>"),
    ]);
}

/// The layout of one role.
pub fn layout(role: Role) -> Permissions {
    let mut b = Builder::default();
    match role {
        Role::Admin => {
            b.publish([">".into()]).subscribe([">".into()]);
            return b.p;
        }
        Role::Client => {
            base(&mut b, role);
            b.publish([format!("{COMMANDS_PREFIX}.>"), rpc(Plane::Client)]);
            read_outcomes(&mut b);
            read_projection(&mut b);
            dead_letters(&mut b, role);
            deny_destructive(&mut b);
            deny_engine_only(&mut b);
            deny_reporter_only(&mut b);
            deny_operator_only(&mut b);
            b.deny_publish([
                "$KV.>".into(),
                "$O.>".into(),
                "$JS.API.STREAM.CREATE.>".into(),
                "$JS.API.STREAM.UPDATE.>".into(),
                "$JS.API.STREAM.DELETE.>".into(),
                "$JS.API.CONSUMER.>".into(),
            ]);
        }
        Role::Engine => {
            base(&mut b, role);
            for s in [
                EVENTS_STREAM,
                COMMANDS_STREAM,
                DEAD_LETTERS_STREAM,
                SCHEDULES_STREAM,
            ] {
                create_stream(&mut b, s, true);
            }
            read_log(&mut b);
            durable(&mut b, COMMANDS_STREAM, ENGINE_CONSUMER);
            kv_write(&mut b, OUTCOMES_BUCKET);
            // Membership of the fast path: heartbeats, and a watch (an ordered push consumer
            // with flow control) on the engines bucket.
            kv_write(&mut b, ENGINES_BUCKET);
            scan_stream(&mut b, &kv_stream(ENGINES_BUCKET));
            b.publish([format!("$JS.FC.{}.>", kv_stream(ENGINES_BUCKET))]);
            // The `paystate` service: fast-path requests and the service API's discovery
            // requests; answers go to the requester's inbox (below).
            b.subscribe([format!("{RPC_PREFIX}.>"), "$SRV.>".into()]);
            open_projection(&mut b);
            b.publish([
                // Appends (JetStream publishes with expected-sequence headers).
                format!("{EVENTS_PREFIX}.>"),
                // Order expiry schedules (the server itself publishes them when due).
                format!("{EXPIRY_SCHEDULE_PREFIX}.>"),
                // Outcomes go to the requester's inbox, and nowhere else: clients', and
                // those of paystate's roles that send commands (signals, operator commands,
                // forwards between instances).
                "_INBOX.>".into(),
            ]);
            b.publish(
                paystate_events::subjects::PAYSTATE_REPLY_INBOXES
                    .into_iter()
                    .map(|p| format!("{p}.>")),
            );
            dead_letters(&mut b, role);
            deny_destructive(&mut b);
            deny_reporter_only(&mut b);
            deny_operator_only(&mut b);
            b.deny_publish([format!("{COMMANDS_PREFIX}.>")]);
            // Order affinity on the queue path: a queued command of a partition another
            // instance serves is handed to it as a fast-path request on the plane it was
            // queued on (only its reporter or operator could queue it there). No new power:
            // the engine writes the log itself.
            let forwarding = [rpc(Plane::Client), rpc(Plane::Signal), rpc(Plane::Operator)];
            b.undeny_publish(&forwarding).publish(forwarding);
            // The instance a command was handed to reads it back from the queue by sequence
            // to decide it at its queued time (the header only locates it).
            b.publish([api("STREAM.MSG.GET", COMMANDS_STREAM)]);
        }
        Role::Reporter => {
            base(&mut b, role);
            b.publish([format!("{SIGNALS_PREFIX}.>"), rpc(Plane::Signal)]);
            // Workers: the durable consumer on the log; reconciler: an ordered read of it.
            read_log(&mut b);
            durable(&mut b, EVENTS_STREAM, WORKERS_CONSUMER);
            // Redrive requests: the workers' durable consumer, the reconciler's ordered one.
            durable(
                &mut b,
                DEAD_LETTERS_STREAM,
                &redrive_consumer(Source::Workers),
            );
            scan_stream(&mut b, DEAD_LETTERS_STREAM);
            // Reconciler start-up: a scan of the live projection's waiting orders.
            scan_projection(&mut b);
            kv_write(&mut b, REFS_BUCKET);
            // Attachments: an object store (chunks under `$O.<bucket>.C.*`, meta `.M.*`).
            let obj = obj_stream(ATTACHMENTS_BUCKET);
            create_stream(&mut b, &obj, false);
            read_stream(&mut b, &obj);
            scan_stream(&mut b, &obj);
            b.publish([format!("$O.{ATTACHMENTS_BUCKET}.>")]);
            // Gateway: raw callbacks and verdicts, dedup bucket, held callbacks (re-drive and
            // quarantine), projection queries.
            create_stream(&mut b, CALLBACKS_STREAM, true);
            b.publish([format!("{CALLBACKS_PREFIX}.>")]);
            kv_write(&mut b, SEEN_BUCKET);
            kv_write(&mut b, HELD_BUCKET);
            open_projection(&mut b);
            dead_letters(&mut b, role);
            deny_destructive(&mut b);
            deny_engine_only(&mut b);
            deny_operator_only(&mut b);
            b.deny_publish([format!("{COMMANDS_PREFIX}.>"), rpc(Plane::Client)]);
        }
        Role::Projector => {
            base(&mut b, role);
            read_log(&mut b);
            open_projection(&mut b);
            durable(
                &mut b,
                DEAD_LETTERS_STREAM,
                &redrive_consumer(Source::Projector),
            );
            // Generation buckets `KV_paystate_orders_g<N>` and their durable consumers
            // `paystate-projector-g<N>` on the log: token wildcards, narrowed by the denies.
            b.publish([
                "$JS.API.STREAM.CREATE.*".into(),
                format!("$KV.*.{ORDER_KEY_PREFIX}>"),
                format!("$KV.{POINTER_BUCKET}.>"),
                format!("$JS.ACK.{EVENTS_STREAM}.*.>"),
            ]);
            scan_projection(&mut b);
            dead_letters(&mut b, role);
            deny_destructive(&mut b);
            deny_engine_only(&mut b);
            deny_reporter_only(&mut b);
            deny_operator_only(&mut b);
            b.deny_publish([
                format!("{COMMANDS_PREFIX}.>"),
                format!("{RPC_PREFIX}.>"),
                format!("$JS.ACK.{EVENTS_STREAM}.{WORKERS_CONSUMER}.>"),
            ]);
        }
        Role::Operator => {
            base(&mut b, role);
            // The `nats` CLI (`nats micro ls|info|stats paystate`) waits below `_INBOX`.
            b.subscribe(["_INBOX.>".into()]);
            operator_reads(&mut b);
            // Projection rebuild and swap: new generation buckets and consumers, the pointer,
            // dropping an old generation.
            b.publish([
                "$JS.API.STREAM.CREATE.*".into(),
                "$JS.API.STREAM.DELETE.*".into(),
                format!("$KV.*.{ORDER_KEY_PREFIX}>"),
                format!("$KV.{POINTER_BUCKET}.>"),
                format!("$JS.ACK.{EVENTS_STREAM}.*.>"),
                // Quarantine decisions (`paystate quarantine`): the operator's alone.
                format!("$KV.{QUARANTINE_BUCKET}.>"),
                // The operator plane: `resolve_review` (`paystate review resolve`, the
                // dashboard), the operator's alone; on the queue and the fast path.
                format!("{OPERATOR_PREFIX}.>"),
                rpc(Plane::Operator),
            ]);
            b.publish(service_discovery());
            dead_letters(&mut b, role);
            deny_destructive(&mut b);
            deny_engine_only(&mut b);
            deny_reporter_only(&mut b);
            b.deny_publish([
                format!("{COMMANDS_PREFIX}.>"),
                rpc(Plane::Client),
                rpc(Plane::Signal),
                format!("$JS.ACK.{EVENTS_STREAM}.{WORKERS_CONSUMER}.>"),
            ]);
        }
    }
    b.deny_subscribe(Vec::new());
    b.p
}

/// What an operator reads: the log, every bucket, stream and consumer listings.
fn operator_reads(b: &mut Builder) {
    read_log(b);
    read_outcomes(b);
    open_projection(b);
    scan_projection(b);
    b.publish([
        "$JS.API.STREAM.NAMES".into(),
        "$JS.API.STREAM.LIST".into(),
        "$JS.API.DIRECT.GET.>".into(),
        "$JS.API.STREAM.MSG.GET.*".into(),
        "$JS.API.CONSUMER.NAMES.*".into(),
        "$JS.API.CONSUMER.LIST.*".into(),
    ]);
}

/// Service discovery requests (`nats micro ls|info|stats paystate`, `paystate service`):
/// read-only questions every instance answers about itself.
fn service_discovery() -> [String; 6] {
    [
        "$SRV.PING".into(),
        "$SRV.INFO".into(),
        "$SRV.STATS".into(),
        "$SRV.PING.>".into(),
        "$SRV.INFO.>".into(),
        "$SRV.STATS.>".into(),
    ]
}

/// `paystate dev`'s convenience user (the server's `no_auth_user`): what a client and a
/// read-only operator may do; no signals, no log, bucket or projection writes.
pub fn dev_cli_permissions() -> Permissions {
    let mut b = Builder::default();
    base(&mut b, Role::Client);
    // Its read-only operator commands connect as the operator role, below its inbox.
    b.subscribe([format!("{}.>", Role::Operator.inbox_prefix())]);
    b.publish([format!("{COMMANDS_PREFIX}.>"), rpc(Plane::Client)]);
    operator_reads(&mut b);
    b.publish(service_discovery());
    dead_letters(&mut b, Role::Client);
    deny_destructive(&mut b);
    deny_engine_only(&mut b);
    deny_reporter_only(&mut b);
    b.deny_publish([
        "$KV.>".into(),
        "$O.>".into(),
        "$JS.API.STREAM.UPDATE.>".into(),
        "$JS.API.STREAM.DELETE.>".into(),
        format!("$JS.ACK.{EVENTS_STREAM}.*.>"),
        format!("{OPERATOR_PREFIX}.>"),
        rpc(Plane::Operator),
    ]);
    b.p
}

/// The dev convenience user's name.
pub const DEV_CLI_USER: &str = "paystate-dev-cli";

mod matcher;
mod render;
#[cfg(test)]
mod tests;

pub use matcher::*;
pub use render::*;
