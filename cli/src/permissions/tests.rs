use super::*;

#[test]
fn covers_is_the_nats_subset_relation() {
    assert!(covers(">", "a"));
    assert!(covers(">", "a.b.>"));
    assert!(covers("a.>", "a.b"));
    assert!(covers("a.>", "a.*.c"));
    assert!(!covers("a.>", "a"));
    assert!(covers("a.*", "a.b"));
    assert!(covers("a.*", "a.*"));
    assert!(!covers("a.*", "a.>"));
    assert!(!covers("a.*", "a.b.c"));
    assert!(!covers("a.b", "a.*"));
    assert!(covers("a.b", "a.b"));
    assert!(!covers("a.b", "a.b.c"));
    assert!(!covers("a.b.c", "a.b"));
    assert!(covers(
        "$JS.API.STREAM.INFO.*",
        "$JS.API.STREAM.INFO.PAYSTATE_EVENTS"
    ));
    assert!(!covers("$JS.API.STREAM.INFO.*", "$JS.API.STREAM.INFO"));
}

#[test]
fn intersects_finds_a_common_subject() {
    assert!(intersects("a.>", "a.b"));
    assert!(intersects("a.*", "*.b"));
    assert!(intersects("a.b", "a.b"));
    assert!(!intersects("a.b", "a.c"));
    assert!(!intersects("a.>", "a"));
    assert!(!intersects("a.*", "a.b.c"));
    assert!(intersects("a.*.c", "a.>"));
    assert!(intersects(">", "x.y"));
}

#[test]
fn missing_honours_allow_and_deny() {
    let r = Rules {
        allow: vec!["paystate.>".into()],
        deny: vec!["paystate.signal.>".into()],
    };
    assert_eq!(missing(Some(&r), "paystate.cmd.o1"), None);
    assert!(missing(Some(&r), "paystate.signal.o1").is_some());
    assert!(missing(Some(&r), "paystate.>").is_some());
    assert!(missing(Some(&r), "other").is_some());
    assert_eq!(missing(None, "anything"), None);
}

#[test]
fn the_client_may_never_signal_write_the_log_or_buckets_or_delete() {
    let p = Role::Client.permissions();
    for s in [
        "paystate.signal.o1",
        "paystate.events.o1",
        "paystate.dead.x.o1",
        "$KV.paystate_outcomes.o1.c1",
        "$KV.paystate_orders_g1.order.o1",
        "$KV.paystate_projection.orders",
        "$JS.API.STREAM.DELETE.PAYSTATE_EVENTS",
        "$JS.API.STREAM.PURGE.PAYSTATE_COMMANDS",
        "$JS.API.STREAM.MSG.DELETE.PAYSTATE_EVENTS",
        "$JS.API.CONSUMER.CREATE.PAYSTATE_COMMANDS",
        "$JS.ACK.PAYSTATE_COMMANDS.paystate-engine.1.1.1.1.1",
    ] {
        assert!(
            missing(Some(&p.publish), s).is_some(),
            "client may publish {s}"
        );
    }
    assert_eq!(missing(Some(&p.publish), "paystate.cmd.o1"), None);
}

#[test]
fn only_the_reporter_signals_and_only_the_engine_writes_the_log() {
    for role in Role::ALL {
        let p = role.permissions();
        let signal = missing(Some(&p.publish), "paystate.signal.o1").is_none();
        let log = missing(Some(&p.publish), "paystate.events.o1").is_none();
        let outcomes = missing(Some(&p.publish), "$KV.paystate_outcomes.o.c").is_none();
        assert_eq!(
            signal,
            matches!(role, Role::Reporter | Role::Admin),
            "{role} signal"
        );
        assert_eq!(
            log,
            matches!(role, Role::Engine | Role::Admin),
            "{role} log"
        );
        assert_eq!(
            outcomes,
            matches!(role, Role::Engine | Role::Admin),
            "{role} outcomes"
        );
    }
    let dev = dev_cli_permissions();
    assert!(missing(Some(&dev.publish), "paystate.signal.o1").is_some());
    assert!(missing(Some(&dev.publish), "paystate.events.o1").is_some());
    assert!(missing(Some(&dev.publish), "paystate.cmd.o1").is_none());
}

#[test]
fn only_the_operator_publishes_on_the_operator_plane() {
    for role in Role::ALL {
        let p = role.permissions();
        let op = missing(Some(&p.publish), "paystate.op.o1").is_none();
        assert_eq!(
            op,
            matches!(role, Role::Operator | Role::Admin),
            "{role} operator plane"
        );
    }
    let dev = dev_cli_permissions();
    assert!(missing(Some(&dev.publish), "paystate.op.o1").is_some());
}

#[test]
fn the_engine_replies_only_to_inboxes() {
    let p = Role::Engine.permissions();
    assert!(missing(Some(&p.publish), "_INBOX.abc.1").is_none());
    for s in ["paystate.cmd.o1", "other.subject", "$KV.paystate_refs.x"] {
        assert!(
            missing(Some(&p.publish), s).is_some(),
            "engine may publish {s}"
        );
    }
}

#[test]
fn every_user_may_ask_who_it_is() {
    for role in Role::ALL {
        let p = role.permissions();
        assert!(missing(Some(&p.publish), "$SYS.REQ.USER.INFO").is_none());
    }
}

#[test]
fn the_readme_table_replaces_only_its_section() {
    let text = format!("a\n{README_BEGIN}\nold\n{README_END}\nb\n");
    let new = with_readme_table(&text).unwrap();
    assert!(new.starts_with("a\n") && new.ends_with(&format!("{README_END}\nb\n")));
    assert!(new.contains("paystate-engine") && !new.contains("old"));
    assert!(with_readme_table("no markers").is_none());
}

#[test]
fn each_consumer_writes_only_its_own_dead_letters_and_the_operator_redrives() {
    let may = |role: Role, s: &str| missing(Some(&role.permissions().publish), s).is_none();
    assert!(may(Role::Engine, "paystate.dead.cmd.o1"));
    assert!(!may(Role::Engine, "paystate.dead.workers.o1"));
    for s in ["workers", "reconciler", "callbacks"] {
        assert!(may(Role::Reporter, &format!("paystate.dead.{s}.o1")), "{s}");
    }
    assert!(!may(Role::Reporter, "paystate.dead.cmd.o1"));
    assert!(!may(Role::Reporter, "paystate.dead._redriven.1"));
    assert!(may(Role::Projector, "paystate.dead.projector.o1"));
    assert!(!may(Role::Projector, "paystate.dead.workers.o1"));
    assert!(may(Role::Operator, "paystate.dead._redrive.workers.o1"));
    assert!(may(Role::Operator, "paystate.dead._redriven.7"));
    assert!(!may(Role::Operator, "paystate.dead.cmd.o1"));
    assert!(!may(Role::Client, "paystate.dead._redriven.7"));
    assert!(!may(Role::Client, "paystate.dead.cmd.o1"));
}

#[test]
fn only_the_engine_writes_expiry_schedules_and_only_the_server_fires_them() {
    let schedule = "paystate.schedule.expire.o1";
    let fired = "paystate.fired.expire.o1";
    for role in Role::ALL {
        let p = role.permissions();
        let may = |s: &str| missing(Some(&p.publish), s).is_none();
        assert_eq!(
            may(schedule),
            matches!(role, Role::Engine | Role::Admin),
            "{role}"
        );
        assert_eq!(may(fired), role == Role::Admin, "{role}");
        assert_eq!(
            may("$JS.API.STREAM.UPDATE.PAYSTATE_SCHEDULES"),
            matches!(role, Role::Engine | Role::Admin),
            "{role}"
        );
    }
    let dev = dev_cli_permissions();
    assert!(missing(Some(&dev.publish), schedule).is_some());
    assert!(missing(Some(&dev.publish), fired).is_some());
}

#[test]
fn each_fast_path_plane_has_the_publishers_of_its_queue_plane() {
    for role in Role::ALL {
        let p = role.permissions();
        let may = |s: &str| missing(Some(&p.publish), s).is_none();
        let admin = role == Role::Admin;
        assert_eq!(
            may("paystate.rpc.cmd.7.o1"),
            // The engine forwards queued commands to their partition's owner.
            matches!(role, Role::Client | Role::Engine) || admin,
            "{role} rpc cmd"
        );
        assert_eq!(
            may("paystate.rpc.signal.7.o1"),
            // The engine forwards queued commands to their partition's owner.
            matches!(role, Role::Reporter | Role::Engine) || admin,
            "{role} rpc signal"
        );
        assert_eq!(
            may("paystate.rpc.op.7.o1"),
            // The engine forwards queued commands to their partition's owner.
            matches!(role, Role::Operator | Role::Engine) || admin,
            "{role} rpc op"
        );
        // Only the engine serves the fast path and answers the service API.
        let serves = missing(Some(&p.subscribe), "paystate.rpc.>").is_none()
            && missing(Some(&p.subscribe), "$SRV.>").is_none();
        assert_eq!(
            serves,
            matches!(role, Role::Engine) || admin,
            "{role} serves"
        );
        assert_eq!(
            may("$KV.paystate_engines.abc"),
            matches!(role, Role::Engine) || admin,
            "{role} engines bucket"
        );
    }
    let dev = dev_cli_permissions();
    // `nats micro ls|info|stats paystate` and `paystate service` work as the dev user, who
    // still cannot answer them (serve) nor subscribe to the service subjects.
    for s in ["$SRV.PING", "$SRV.INFO.paystate", "$SRV.STATS.paystate.abc"] {
        assert!(missing(Some(&dev.publish), s).is_none(), "dev {s}");
    }
    assert!(missing(Some(&dev.subscribe), "paystate.rpc.>").is_some());
    assert!(missing(Some(&dev.publish), "paystate.rpc.cmd.7.o1").is_none());
    assert!(missing(Some(&dev.publish), "paystate.rpc.signal.7.o1").is_some());
    assert!(missing(Some(&dev.publish), "paystate.rpc.op.7.o1").is_some());
}

#[test]
fn a_role_receives_replies_only_below_its_own_inbox() {
    let prefixes: Vec<&str> = Role::ALL.iter().map(|r| r.inbox_prefix()).collect();
    let unique: std::collections::BTreeSet<&str> = prefixes.iter().copied().collect();
    assert_eq!(unique.len(), prefixes.len(), "one prefix per role");
    for role in Role::ALL {
        let p = role.permissions();
        let own = format!("{}.abc.1", role.inbox_prefix());
        assert!(
            missing(Some(&p.subscribe), &own).is_none(),
            "{role}: own inbox"
        );
        for other in Role::ALL.into_iter().filter(|o| *o != role) {
            let theirs = format!("{}.abc.1", other.inbox_prefix());
            // Who may read others' replies: the admin (everything), the operator (clients',
            // for the `nats` CLI).
            let may = role == Role::Admin || (role == Role::Operator && other == Role::Client);
            assert_eq!(
                missing(Some(&p.subscribe), &theirs).is_none(),
                may,
                "{role} subscribing {theirs}"
            );
        }
    }
    // A client cannot read what any internal process receives, wildcards included.
    let client = Role::Client.permissions();
    for s in ["_INBOX_engine.>", "_INBOX_reporter.x.y", ">", "*.>"] {
        assert!(
            missing(Some(&client.subscribe), s).is_some(),
            "client subscribing {s}"
        );
    }
}

#[test]
fn the_engine_answers_every_role_that_sends_commands() {
    let p = Role::Engine.permissions();
    for role in [Role::Client, Role::Engine, Role::Reporter, Role::Operator] {
        let inbox = format!("{}.abc.1", role.inbox_prefix());
        assert!(
            missing(Some(&p.publish), &inbox).is_none(),
            "{role}'s outcomes"
        );
    }
    for own in paystate_events::subjects::PAYSTATE_REPLY_INBOXES {
        assert!(
            Role::ALL.iter().any(|r| r.inbox_prefix() == own),
            "{own} is a role's inbox"
        );
    }
    // Not below the roles that send none.
    for role in [Role::Projector, Role::Admin] {
        let inbox = format!("{}.abc.1", role.inbox_prefix());
        assert!(missing(Some(&p.publish), &inbox).is_some(), "{role}");
    }
}
