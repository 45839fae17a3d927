//! `paystate check`: is this process's NATS reachable, new enough, is the log there, and does
//! each role's NATS user have every permission the role needs? Exit 0 when healthy
//! (docker-compose health checks use it), 1 otherwise, with the reasons.
//!
//! Permissions are asked of the server (`$SYS.REQ.USER.INFO` answers with the connected
//! user's allow and deny lists) and matched against the role's layout
//! ([`paystate::permissions`]) with NATS wildcard semantics.

use crate::settings::Settings;
use paystate::permissions::{missing, required, Role, Rules};
use std::process::ExitCode;
use std::time::Duration;

/// How long the server may take to say who we are.
const USER_INFO_WAIT: Duration = Duration::from_secs(3);

#[derive(clap::Args)]
pub struct Args {
    /// The parts this process runs (as `run --roles`: engine, projector, workers,
    /// reconciler, gateway, or all): their NATS users' permissions are checked.
    #[arg(long, env = "PAYSTATE_ROLES")]
    roles: Option<String>,
    /// Permission roles to check directly (client, engine, reporter, projector, operator,
    /// admin), comma-separated.
    #[arg(long = "as")]
    as_roles: Option<String>,
    /// Also ask a running process's operations listener (`metrics_listen`) for `/readyz`,
    /// e.g. `http://127.0.0.1:9464/readyz`: unhealthy unless it answers 200.
    #[arg(long)]
    ready_url: Option<String>,
}

/// The permission roles to check.
fn roles_of(args: &Args, have_providers: bool) -> anyhow::Result<Vec<Role>> {
    let mut roles = Vec::new();
    if let Some(parts) = &args.roles {
        let parts = crate::cmd::run::parse_roles(parts, have_providers)?;
        roles.extend(crate::cmd::run::permission_roles(&parts));
    }
    if let Some(list) = &args.as_roles {
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            let role = Role::parse(name).ok_or_else(|| {
                let known: Vec<&str> = Role::ALL.iter().map(|r| r.name()).collect();
                anyhow::anyhow!("unknown role {name:?}; roles are {}", known.join(", "))
            })?;
            roles.push(role);
        }
    }
    roles.sort();
    roles.dedup();
    Ok(roles)
}

pub async fn run(settings: Settings, args: Args) -> anyhow::Result<ExitCode> {
    // Checking permissions needs no provider configuration: every named part counts.
    let roles = roles_of(&args, true)?;
    let mut healthy = true;
    // No role named: the health check with the operator's (or the top-level) credentials.
    let health_role = roles.first().copied().unwrap_or(Role::Operator);
    let nats = match settings.connect_as(health_role).await {
        Ok(n) => n,
        Err(e) => {
            eprintln!("unhealthy: {e:#}");
            return Ok(ExitCode::from(1));
        }
    };
    if let Err(e) = paystate_journal::check_server_version(&nats) {
        eprintln!("unhealthy: {e}");
        return Ok(ExitCode::from(1));
    }
    let js = async_nats::jetstream::new(nats);
    match paystate_journal::Journal::existing(js, &settings.log().events_stream).await {
        Ok(_) => println!(
            "healthy: {} reachable, log stream present",
            settings.nats_for(health_role).describe()
        ),
        Err(e) => {
            eprintln!("unhealthy: {e}");
            healthy = false;
        }
    }
    for role in roles {
        let nats = match settings.connect_as(role).await {
            Ok(n) => n,
            Err(e) => {
                eprintln!("role {role}: cannot connect: {e:#}");
                healthy = false;
                continue;
            }
        };
        let info = match user_info(&nats).await {
            Ok(info) => Ok(info),
            // A user that may not subscribe below the role's own inbox hears no answer there:
            // ask below NATS's default inbox instead, to name what it lacks.
            Err(e) => match default_inbox_user_info(&settings, role).await {
                Some(info) => Ok(info),
                None => Err(e),
            },
        };
        match info {
            Ok(info) => healthy &= report(role, &info),
            Err(e) => eprintln!(
                "role {role}: the server did not say what this user may do ($SYS.REQ.USER.INFO: {e}); permissions not checked"
            ),
        }
    }
    if let Some(url) = &args.ready_url {
        healthy &= crate::cmd::health::report(url).await;
    }
    Ok(if healthy {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The connected user as the server describes it.
#[derive(Debug, Default)]
pub struct UserInfo {
    pub user: String,
    /// `None`: no publish (or subscribe) restrictions at all.
    pub publish: Option<Rules>,
    pub subscribe: Option<Rules>,
}

fn rules(v: Option<&serde_json::Value>) -> Option<Rules> {
    let v = v?;
    let list = |k: &str| -> Vec<String> {
        v.get(k)
            .and_then(|l| l.as_array())
            .map(|a| {
                a.iter()
                    .filter_map(|s| s.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    Some(Rules {
        allow: list("allow"),
        deny: list("deny"),
    })
}

/// `role`'s user as the server describes it, asked below the default `_INBOX` (the client
/// role's prefix) rather than the role's own; `None` if that gets no answer either.
async fn default_inbox_user_info(settings: &Settings, role: Role) -> Option<UserInfo> {
    let mut opts = settings.nats_for(role);
    // A role without a prefix of its own was already asked there.
    opts.inbox_prefix.take()?;
    let nats = paystate_service::connect_with(&opts, &format!("paystate-check-{role}"))
        .await
        .ok()?;
    user_info(&nats).await.ok()
}

/// Parses a `$SYS.REQ.USER.INFO` answer.
pub fn parse_user_info(body: &[u8]) -> Result<UserInfo, String> {
    let v: serde_json::Value =
        serde_json::from_slice(body).map_err(|e| format!("unreadable answer: {e}"))?;
    if let Some(err) = v.get("error") {
        return Err(format!("server error: {err}"));
    }
    let data = v.get("data").ok_or("no data in the answer")?;
    let perms = data.get("permissions");
    Ok(UserInfo {
        user: data
            .get("user")
            .and_then(|u| u.as_str())
            .unwrap_or_default()
            .to_string(),
        publish: perms.and_then(|p| rules(p.get("publish"))),
        subscribe: perms.and_then(|p| rules(p.get("subscribe"))),
    })
}

async fn user_info(nats: &async_nats::Client) -> Result<UserInfo, String> {
    let answer = tokio::time::timeout(
        USER_INFO_WAIT,
        nats.request("$SYS.REQ.USER.INFO", "".into()),
    )
    .await
    .map_err(|_| "no answer".to_string())?
    .map_err(|e| e.to_string())?;
    parse_user_info(&answer.payload)
}

/// Prints what `role` needs and its user lacks; `true` when nothing is missing. Permissions
/// beyond the role's layout that its deny list would take away are reported as warnings.
fn report(role: Role, info: &UserInfo) -> bool {
    let (publish, subscribe) = required(role);
    let layout = role.permissions();
    // The role's allow lists hold wildcards that its own deny list narrows on purpose: a
    // deny the layout has too is not a missing permission.
    let unintended = |user: Option<&Rules>, own: &Rules| {
        user.map(|u| Rules {
            allow: u.allow.clone(),
            deny: u
                .deny
                .iter()
                .filter(|d| !own.deny.contains(d))
                .cloned()
                .collect(),
        })
    };
    let user_publish = unintended(info.publish.as_ref(), &layout.publish);
    let user_subscribe = unintended(info.subscribe.as_ref(), &layout.subscribe);
    let mut lacking = Vec::new();
    for s in &publish {
        if let Some(why) = missing(user_publish.as_ref(), s) {
            lacking.push(format!("publish {s} ({why})"));
        }
    }
    for s in &subscribe {
        if let Some(why) = missing(user_subscribe.as_ref(), s) {
            lacking.push(format!("subscribe {s} ({why})"));
        }
    }
    let extra: Vec<&String> = layout
        .publish
        .deny
        .iter()
        .filter(|d| missing(info.publish.as_ref(), d).is_none())
        .collect();
    let user = if info.user.is_empty() {
        "?"
    } else {
        info.user.as_str()
    };
    for e in &extra {
        println!("role {role} (user {user}): warning: may publish {e}, which the {role} role never needs");
    }
    if lacking.is_empty() {
        println!(
            "role {role} (user {user}): all {} publish and {} subscribe permissions present",
            publish.len(),
            subscribe.len()
        );
        return true;
    }
    eprintln!(
        "role {role} (user {user}): {} permissions missing:",
        lacking.len()
    );
    for l in lacking {
        eprintln!("  missing: {l}");
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_info_answers_parse() {
        let body = br#"{"data":{"user":"paystate-client","account":"$G","permissions":{"publish":{"allow":["paystate.cmd.>"],"deny":["paystate.signal.>"]},"subscribe":{"allow":["_INBOX.>"]}}}}"#;
        let info = parse_user_info(body).unwrap();
        assert_eq!(info.user, "paystate-client");
        let p = info.publish.unwrap();
        assert_eq!(p.allow, vec!["paystate.cmd.>"]);
        assert_eq!(p.deny, vec!["paystate.signal.>"]);
        let open = parse_user_info(br#"{"data":{"user":"x","account":"$G"}}"#).unwrap();
        assert!(open.publish.is_none() && open.subscribe.is_none());
        assert!(parse_user_info(br#"{"error":{"code":500}}"#).is_err());
    }

    #[test]
    fn a_client_user_lacks_what_the_engine_needs() {
        let client = Role::Client.permissions();
        let info = UserInfo {
            user: "paystate-client".into(),
            publish: Some(client.publish),
            subscribe: Some(client.subscribe),
        };
        assert!(!report(Role::Engine, &info));
        assert!(report(Role::Client, &info));
    }
}
