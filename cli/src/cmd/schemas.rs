//! `paystate schemas`: write or check everything generated from the code: the JSON Schemas in
//! schemas/, docs/protocol.md (the protocol reference, see `paystate::protocol`), the NATS
//! users config and the README's permission table.

use anyhow::{bail, Context};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// Where the schemas live.
    #[arg(long, default_value = "schemas")]
    dir: PathBuf,
    /// Only verify that the files match the types; exit 1 if not.
    #[arg(long)]
    check: bool,
    /// The repository root: the NATS users config (deploy/nats/paystate-users.conf) and the
    /// README's permission table are generated there from cli/src/permissions.rs too.
    /// Empty: schemas only.
    #[arg(long, default_value = ".")]
    root: PathBuf,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("cannot create {}", args.dir.display()))?;
    let mut drifted = Vec::new();
    let mut schemas = paystate::answers::all_schemas();
    // The benchmark report's type lives with the benchmark (in the binary, not the library).
    schemas.push(super::bench::report_schema());
    for (name, schema) in schemas {
        let path = args.dir.join(name);
        let text = paystate_events::schemas::render(&schema);
        if args.check {
            if std::fs::read_to_string(&path).ok().as_deref() != Some(text.as_str()) {
                drifted.push(name);
            }
        } else {
            std::fs::write(&path, text)
                .with_context(|| format!("cannot write {}", path.display()))?;
            println!("wrote {}", path.display());
        }
    }
    if !args.root.as_os_str().is_empty() {
        drifted.extend(permission_files(&args.root, args.check)?);
        drifted.extend(protocol_file(&args.root, args.check)?);
    }
    if !drifted.is_empty() {
        bail!(
            "schemas drifted from the types: {} (run `paystate schemas`)",
            drifted.join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes (or checks) docs/protocol.md; its name if it drifted.
fn protocol_file(root: &std::path::Path, check: bool) -> anyhow::Result<Vec<&'static str>> {
    use paystate::protocol::{render, PROTOCOL_PATH};
    let path = root.join(PROTOCOL_PATH);
    let text = render();
    if check {
        let same = std::fs::read_to_string(&path).ok().as_deref() == Some(text.as_str());
        return Ok(if same { vec![] } else { vec![PROTOCOL_PATH] });
    }
    std::fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))?;
    println!("wrote {}", path.display());
    Ok(vec![])
}

/// Writes (or checks) the shipped NATS users config and the README's permission table; the
/// names of those that drifted.
fn permission_files(root: &std::path::Path, check: bool) -> anyhow::Result<Vec<&'static str>> {
    use paystate::permissions::{users_conf, with_readme_table, USERS_CONF_PATH};
    let mut drifted = Vec::new();
    let conf = root.join(USERS_CONF_PATH);
    let text = users_conf();
    if check {
        if std::fs::read_to_string(&conf).ok().as_deref() != Some(text.as_str()) {
            drifted.push(USERS_CONF_PATH);
        }
    } else {
        if let Some(dir) = conf.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        std::fs::write(&conf, text).with_context(|| format!("cannot write {}", conf.display()))?;
        println!("wrote {}", conf.display());
    }
    let readme = root.join("README.md");
    if let Ok(current) = std::fs::read_to_string(&readme) {
        match with_readme_table(&current) {
            Some(new) if new != current && check => drifted.push("README.md (permission table)"),
            Some(new) if new != current => {
                std::fs::write(&readme, new)
                    .with_context(|| format!("cannot write {}", readme.display()))?;
                println!("updated the permission table in {}", readme.display());
            }
            _ => {}
        }
    }
    Ok(drifted)
}
