//! `paystate apikey new --scope read|write|admin [--name NAME]`: a fresh random key for the
//! gateway's private listener. The key is printed once; paystate stores only its SHA-256,
//! which goes into the settings (`[[gateway.api_keys]]`).

use paystate_gateway::auth::{generate, ApiKeyConfig, Scope};
use std::process::ExitCode;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Print a new key (once) and the settings entry that admits it.
    New(NewArgs),
}

#[derive(clap::Args)]
pub struct NewArgs {
    /// read (queries), write (attachments and reads) or admin (everything).
    #[arg(long, value_parser = parse_scope)]
    scope: Scope,
    /// Who holds the key (shown in settings and logs, never sent by clients).
    #[arg(long, default_value = "client")]
    name: String,
}

fn parse_scope(text: &str) -> Result<Scope, String> {
    Scope::parse(text).ok_or_else(|| format!("{text:?} is not read, write or admin"))
}

pub fn run(cmd: Command) -> anyhow::Result<ExitCode> {
    let Command::New(args) = cmd;
    let new = generate(&args.name, args.scope).map_err(anyhow::Error::msg)?;
    println!("key (shown once; give it to the client as `Authorization: Bearer <key>`, paystate keeps only its hash):");
    println!("{}\n", new.key);
    println!("{}", settings_entry(&new.config));
    Ok(ExitCode::SUCCESS)
}

/// The TOML entry and the equivalent environment variable for one key.
pub fn settings_entry(c: &ApiKeyConfig) -> String {
    format!(
        "add to paystate.toml:\n\n[[gateway.api_keys]]\nname = {name:?}\nscope = \"{scope}\"\nsha256 = \"{hash}\"\n\n\
         or (the variable holds the whole list) PAYSTATE_GATEWAY__API_KEYS='[{{name={name:?}, scope=\"{scope}\", sha256=\"{hash}\"}}]'",
        name = c.name,
        scope = c.scope,
        hash = c.sha256
    )
}
