//! `gust token create`: a short-lived token for the namespace, limited to a scope or to one
//! web action, minted with the namespace's key (`POST /api/v1/namespaces/_/tokens`).

use anyhow::Result;
use serde_json::json;

use super::{Client, print_json};

#[derive(Debug, clap::Subcommand)]
pub enum TokenCommand {
    /// Mint a token and print it (use it with `--token` or `GUST_TOKEN`, or send it as
    /// `Authorization: Bearer <token>`).
    #[command(after_help = "Examples:\n  \
        gust token create --scope 'invoke:actions/billing/*' --scope read:activations --ttl 30m\n  \
        gust token create --web shop/checkout --ttl 12h")]
    Create {
        /// What the token may do: `verbs:pattern`, verbs read, write, invoke, fire
        /// (comma-separated), e.g. `invoke:actions/billing/*`, `read,write:*`; repeatable.
        #[arg(long = "scope", value_name = "VERBS:PATTERN")]
        scope: Vec<String>,
        /// How long it lives: seconds or a number with s, m or h; at most 12h.
        #[arg(long, default_value = "1h")]
        ttl: String,
        /// The one web action (`action` or `package/action`) or API route (`/base/path`) the
        /// token may call, and nothing else.
        #[arg(long, value_name = "ACTION|ROUTE")]
        web: Option<String>,
    },
}

pub async fn run(cmd: TokenCommand, client: &Client) -> Result<()> {
    match cmd {
        TokenCommand::Create { scope, ttl, web } => {
            let mut body = json!({ "ttl": ttl, "scope": scope });
            if let Some(web) = web {
                body["web"] = json!(web);
            }
            let answer = client
                .call("POST", "/api/v1/namespaces/_/tokens", Some(&body))
                .await?;
            if client.json {
                print_json(&answer);
            } else {
                println!("{}", answer["token"].as_str().unwrap_or_default());
            }
            Ok(())
        }
    }
}
