//! `gust property set|get|unset`: the saved API host and key.

use anyhow::{Context, Result, bail};

use super::{ClientArgs, Config, config_path, load_config, resolve};

#[derive(Debug, clap::Subcommand)]
pub enum PropertyCommand {
    /// Save the API host and/or key (`--apihost URL`, `--auth UUID:KEY`).
    Set,
    /// Show the API host and key in use, and where they come from.
    Get,
    /// Forget the saved API host and key.
    Unset,
}

pub fn run(cmd: PropertyCommand, args: &ClientArgs) -> Result<()> {
    let path = config_path().context("no configuration directory: set HOME or GUST_CONFIG_DIR")?;
    match cmd {
        PropertyCommand::Set => {
            if args.apihost.is_none() && args.auth.is_none() {
                bail!("nothing to set: give --apihost URL and/or --auth UUID:KEY");
            }
            if let Some(auth) = &args.auth
                && !auth.contains(':')
            {
                bail!("the API key must look like UUID:KEY");
            }
            let mut config = load_config()?;
            if let Some(h) = &args.apihost {
                config.apihost = Some(h.clone());
            }
            if let Some(a) = &args.auth {
                config.auth = Some(a.clone());
            }
            save(&path, &config)?;
            crate::ui::ok(format_args!("saved in {}", path.display()));
        }
        PropertyCommand::Get => {
            let (apihost, auth) = resolve(args)?;
            if args.json {
                super::print_json(&serde_json::json!({ "apihost": apihost, "auth": auth }));
            } else {
                super::print_table(&[
                    vec!["API host".into(), apihost],
                    vec!["auth".into(), auth],
                    vec!["config file".into(), path.display().to_string()],
                ]);
            }
        }
        PropertyCommand::Unset => {
            match std::fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot remove {}", path.display()));
                }
            }
            crate::ui::ok(format_args!("removed {}", path.display()));
        }
    }
    Ok(())
}

fn save(path: &std::path::Path, config: &Config) -> Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    gust_node::files::write_private(path, &serde_json::to_string_pretty(config)?)
}
