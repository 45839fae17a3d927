//! docker-compose.yml, checked against the real binary (Docker cannot run here): every
//! service, port, volume, health check and command. paystate commands are run through the
//! binary with `--dry-run` under the service's environment, so a flag or setting the binary
//! does not know fails this test.

use serde_norway::Value;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn compose() -> Value {
    let text = std::fs::read_to_string(root().join("docker-compose.yml"))
        .expect("docker-compose.yml exists");
    let mut v: Value = serde_norway::from_str(&text).expect("valid YAML");
    v.apply_merge().expect("merge keys resolve");
    v
}

fn strings(v: &Value) -> Vec<String> {
    v.as_sequence()
        .map(|s| {
            s.iter()
                .filter_map(|x| x.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

fn is_paystate(svc: &Value) -> bool {
    svc.get("build").is_some()
}

fn is_nats(svc: &Value) -> bool {
    svc.get("image")
        .and_then(Value::as_str)
        .is_some_and(|i| i.starts_with("nats:"))
}

/// The port a monitoring service (Prometheus, Grafana) listens on.
fn monitoring_port(name: &str) -> Option<u16> {
    match name {
        "prometheus" => Some(9090),
        "grafana" => Some(3000),
        _ => None,
    }
}

/// The port a command listens on (`--http` / `--listen` host:port), if it names one.
fn listen_port(cmd: &[String]) -> Option<u16> {
    let at = cmd.iter().position(|a| a == "--http" || a == "--listen")?;
    cmd.get(at + 1)?.rsplit(':').next()?.parse().ok()
}

/// Runs `paystate <args> --dry-run` with the service's environment, the mounted providers
/// file mapped back to the repository.
fn dry_run(name: &str, svc: &Value, args: &[String]) {
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_paystate"));
    cmd.args(args)
        .arg("--dry-run")
        .env_clear()
        .env("PATH", std::env::var("PATH").unwrap_or_default());
    let mounts: Vec<(String, String)> = strings(svc.get("volumes").unwrap_or(&Value::Null))
        .iter()
        .filter_map(|m| {
            let mut p = m.split(':');
            Some((p.next()?.to_string(), p.next()?.to_string()))
        })
        .collect();
    if let Some(env) = svc.get("environment").and_then(|e| e.as_mapping()) {
        for (k, v) in env {
            let (Some(k), Some(v)) = (k.as_str(), v.as_str()) else {
                panic!("{name}: environment values must be strings")
            };
            let v = mounts
                .iter()
                .find(|(_, target)| target == v)
                .map(|(src, _)| root().join(src).display().to_string())
                .unwrap_or(v.to_string());
            cmd.env(k, v);
        }
    }
    let out = cmd.output().expect("paystate runs");
    assert!(
        out.status.success(),
        "{name}: `paystate {}` is not valid for this binary: {}{}",
        args.join(" "),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn every_service_is_complete_and_its_command_is_real() {
    let v = compose();
    let services = v
        .get("services")
        .and_then(|s| s.as_mapping())
        .expect("services");
    let names: BTreeSet<String> = services
        .keys()
        .filter_map(|k| k.as_str().map(str::to_string))
        .collect();
    for expected in [
        "nats-1",
        "nats-2",
        "nats-3",
        "engine-1",
        "engine-2",
        "workers",
        "projector",
        "gateway",
        "sandboxes",
    ] {
        assert!(names.contains(expected), "service {expected} missing");
    }
    for (name, svc) in services {
        let name = name.as_str().expect("service names are strings");
        assert!(
            svc.get("image").is_some() || svc.get("build").is_some(),
            "{name}: no image or build"
        );
        let health = svc
            .get("healthcheck")
            .and_then(|h| h.get("test"))
            .map(strings)
            .unwrap_or_default();
        assert!(!health.is_empty(), "{name}: no health check");
        for dep in svc
            .get("depends_on")
            .and_then(|d| d.as_mapping())
            .map(|m| m.keys().cloned().collect::<Vec<_>>())
            .unwrap_or_default()
        {
            assert!(
                names.contains(dep.as_str().unwrap_or_default()),
                "{name}: depends on unknown {dep:?}"
            );
        }
        let command = strings(svc.get("command").unwrap_or(&Value::Null));
        if is_paystate(svc) {
            dry_run(name, svc, &command);
            assert_eq!(
                health.get(1).map(String::as_str),
                Some("paystate"),
                "{name}: health check runs paystate"
            );
            dry_run(name, svc, &health[2..]);
        } else if is_nats(svc) {
            nats_service(name, &command, &names);
        }
        for port in strings(svc.get("ports").unwrap_or(&Value::Null)) {
            let container: u16 = port
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port mapping");
            let listens = if is_paystate(svc) {
                listen_port(&command)
            } else if is_nats(svc) {
                Some(4222)
            } else {
                monitoring_port(name)
            };
            assert_eq!(
                listens,
                Some(container),
                "{name}: publishes {port} but listens on {listens:?}"
            );
        }
    }
}

/// A NATS node: JetStream on, a store directory, routes to the other nodes only.
fn nats_service(name: &str, command: &[String], names: &BTreeSet<String>) {
    for flag in [
        "--js",
        "--sd",
        "--cluster_name",
        "--cluster",
        "--routes",
        "--name",
    ] {
        assert!(
            command.iter().any(|a| a == flag),
            "{name}: nats-server needs {flag}"
        );
    }
    let routes = command
        .iter()
        .position(|a| a == "--routes")
        .and_then(|i| command.get(i + 1))
        .expect("routes");
    for route in routes.split(',') {
        let host = route
            .trim_start_matches("nats://")
            .split(':')
            .next()
            .unwrap_or_default();
        assert!(
            names.contains(host) && host != name,
            "{name}: route to {host}"
        );
    }
}

#[test]
fn volumes_and_mounts_exist() {
    let v = compose();
    let declared: BTreeSet<String> = v
        .get("volumes")
        .and_then(|m| m.as_mapping())
        .map(|m| {
            m.keys()
                .filter_map(|k| k.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    for (name, svc) in v
        .get("services")
        .and_then(|s| s.as_mapping())
        .expect("services")
    {
        for mount in strings(svc.get("volumes").unwrap_or(&Value::Null)) {
            let source = mount.split(':').next().unwrap_or_default();
            if source.starts_with("./") || source.starts_with('/') {
                assert!(
                    root().join(source).exists(),
                    "{name:?}: bind mount {source} does not exist"
                );
            } else {
                assert!(
                    declared.contains(source),
                    "{name:?}: volume {source} not declared"
                );
            }
        }
    }
}

#[test]
fn the_engines_share_the_cluster_with_replicated_streams() {
    let v = compose();
    for name in ["engine-1", "engine-2", "workers", "projector", "gateway"] {
        let env = &v["services"][name]["environment"];
        assert_eq!(
            env["PAYSTATE_REPLICAS"].as_str(),
            Some("3"),
            "{name}: R3 streams"
        );
        let urls = env["PAYSTATE_NATS_URL"].as_str().expect("nats url");
        assert_eq!(
            urls.split(',').count(),
            3,
            "{name}: connects to all three nodes"
        );
    }
    let dockerfile = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile exists");
    assert!(
        dockerfile.contains("cargo build --release -p paystate")
            && dockerfile.contains("ENTRYPOINT [\"paystate\"]")
    );
    assert!(Path::new(&root().join("deploy/providers.sandbox.toml")).is_file());
}

/// The value after `flag` in a command.
fn flag_value<'a>(cmd: &'a [String], flag: &str) -> Option<&'a str> {
    let at = cmd.iter().position(|a| a == flag)?;
    cmd.get(at + 1).map(String::as_str)
}

#[test]
fn only_the_public_listener_is_published() {
    let v = compose();
    let gateway = &v["services"]["gateway"];
    let command = strings(&gateway["command"]);
    let port_of = |flag: &str| -> Option<u16> {
        flag_value(&command, flag)?.rsplit(':').next()?.parse().ok()
    };
    let public = port_of("--http").expect("the gateway names its public listener");
    let private = port_of("--http-private").expect("the gateway names its private listener");
    assert_ne!(public, private);
    let published: Vec<u16> = strings(&gateway["ports"])
        .iter()
        .filter_map(|p| p.rsplit(':').next()?.parse().ok())
        .collect();
    assert_eq!(
        published,
        vec![public],
        "the gateway publishes its public listener only"
    );
    let sandboxes = strings(&v["services"]["sandboxes"]["command"]);
    assert_eq!(
        flag_value(&sandboxes, "--gateway-url"),
        Some(format!("http://gateway:{public}").as_str()),
        "providers call the public listener back"
    );
}

/// NATS runs the shipped users config (the checked-in file, mounted), gets every role's
/// password from the environment, and is not published to the host; each paystate service
/// connects as the user of the permission role its parts need, and its health check checks
/// that role's permissions.
#[test]
fn nats_runs_the_shipped_users_and_each_service_connects_as_its_role() {
    use paystate::permissions::{Role, USERS_CONF_PATH};
    let v = compose();
    let services = v["services"].as_mapping().expect("services");
    for (name, svc) in services {
        let name = name.as_str().expect("service name");
        let env = &svc["environment"];
        if !is_paystate(svc) && !is_nats(svc) {
            continue; // Prometheus, Grafana: no NATS.
        }
        if !is_paystate(svc) {
            let command = strings(&svc["command"]);
            let conf = flag_value(&command, "--config").expect("nats-server --config");
            let mounted = strings(&svc["volumes"]).into_iter().any(|m| {
                let mut p = m.split(':');
                p.next() == Some(&format!("./{USERS_CONF_PATH}")) && p.next() == Some(conf)
            });
            assert!(
                mounted,
                "{name}: {conf} is not the mounted {USERS_CONF_PATH}"
            );
            for role in Role::ALL {
                let var = role.password_env();
                let value = env[var.as_str()].as_str().unwrap_or_default();
                assert!(
                    value.starts_with(&format!("${{{var}:?")),
                    "{name}: {var} must come from the deployer's environment, never a default"
                );
            }
            assert!(
                strings(&svc["ports"]).iter().all(|p| !p.ends_with(":4222")),
                "{name}: NATS must not be published to the host"
            );
            continue;
        }
        let command = strings(&svc["command"]);
        let user = env["PAYSTATE_NATS__USER"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: no NATS user"));
        let password = env["PAYSTATE_NATS__PASSWORD"].as_str().unwrap_or_default();
        let role = match flag_value(&command, "--roles") {
            Some(parts) => {
                let roles: BTreeSet<Role> = parts.split(',').filter_map(Role::of_part).collect();
                assert_eq!(roles.len(), 1, "{name}: one permission role per service");
                roles.into_iter().next().expect("a role")
            }
            None => Role::Client,
        };
        assert_eq!(user, role.user(), "{name}: connects as its role's user");
        assert!(
            password.starts_with(&format!("${{{}:?", role.password_env())),
            "{name}: its password is its role's, from the environment"
        );
        let health = strings(&svc["healthcheck"]["test"]);
        assert!(
            health.iter().any(|a| a == "--roles" || a == "--as"),
            "{name}: the health check names the roles whose permissions it checks"
        );
    }
}

/// Every `paystate run` service serves its operations listener on the port Prometheus
/// scrapes, is a scrape target, and is health-checked through `/readyz`; the Grafana
/// dashboard reads only metrics paystate exports.
#[test]
fn prometheus_scrapes_every_paystate_process_and_the_dashboard_reads_real_metrics() {
    let v = compose();
    let text = std::fs::read_to_string(root().join("deploy/prometheus/prometheus.yml"))
        .expect("deploy/prometheus/prometheus.yml exists");
    let prom: Value = serde_norway::from_str(&text).expect("valid YAML");
    let mut targets = BTreeSet::new();
    for job in prom["scrape_configs"]
        .as_sequence()
        .expect("scrape_configs")
    {
        for group in job["static_configs"].as_sequence().expect("static_configs") {
            targets.extend(strings(&group["targets"]));
        }
    }
    let mut runs = 0;
    for (name, svc) in v["services"].as_mapping().expect("services") {
        let name = name.as_str().expect("service names are strings");
        let command = strings(svc.get("command").unwrap_or(&Value::Null));
        if !is_paystate(svc) || command.first().map(String::as_str) != Some("run") {
            continue;
        }
        runs += 1;
        let listen = svc["environment"]["PAYSTATE_METRICS_LISTEN"]
            .as_str()
            .unwrap_or_else(|| panic!("{name}: PAYSTATE_METRICS_LISTEN not set"));
        let port = listen.rsplit(':').next().unwrap_or_default();
        assert!(
            targets.contains(&format!("{name}:{port}")),
            "{name}: not scraped on {port} (targets {targets:?})"
        );
        let health = strings(&svc["healthcheck"]["test"]);
        assert_eq!(
            flag_value(&health, "--ready-url"),
            Some(format!("http://127.0.0.1:{port}/readyz").as_str()),
            "{name}: the health check asks /readyz"
        );
    }
    assert!(runs >= 5, "{runs} paystate run services");
    let dashboard = std::fs::read_to_string(root().join("deploy/grafana/paystate.json"))
        .expect("deploy/grafana/paystate.json exists");
    let _: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard is JSON");
    let known: BTreeSet<&str> = paystate_events::metric_names::CATALOG
        .iter()
        .map(|m| m.name)
        .collect();
    let mut used = BTreeSet::new();
    for (i, _) in dashboard.match_indices("paystate_") {
        let name: String = dashboard[i..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        let base = ["_bucket", "_count", "_sum"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(&name)
            .to_string();
        assert!(
            known.contains(base.as_str()),
            "the dashboard reads {name}, which paystate does not export"
        );
        used.insert(base);
    }
    let unused: Vec<_> = known.iter().filter(|k| !used.contains(**k)).collect();
    assert!(unused.is_empty(), "the dashboard shows none of {unused:?}");
}
