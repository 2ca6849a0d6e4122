//! `gust api create|list|get|delete`: routes of your namespace's APIs to web actions, like
//! `wsk api`.

use anyhow::Result;
use serde_json::{Value, json};

use super::action::encode;
use super::{Client, print_json, print_table};

const APIS: &str = "/api/v1/namespaces/_/apis";

#[derive(Debug, clap::Subcommand)]
pub enum ApiCommand {
    /// Route VERB requests to BASE_PATH + PATH to web action ACTION.
    #[command(
        after_help = "Example:\n  gust api create /shop /users/{id} get users --response-type http"
    )]
    Create {
        /// The API's base path, e.g. /shop.
        base_path: String,
        /// The route's path, e.g. /users/{id} ({name} segments become parameters).
        path: String,
        /// GET, POST, PUT, DELETE, PATCH, HEAD or OPTIONS.
        verb: String,
        /// The web action: name, package/name or /namespace/[package/]name.
        action: String,
        /// json (the result is the body) or http (the result is {statusCode, headers, body}).
        #[arg(long, default_value = "json", value_parser = ["json", "http"])]
        response_type: String,
        /// Most requests per minute the route serves.
        #[arg(long)]
        rate_limit: Option<u64>,
        /// Answer without CORS headers.
        #[arg(long)]
        no_cors: bool,
    },
    /// List your APIs and their routes.
    List,
    /// Show one API, or export it (`--format openapi`).
    Get {
        base_path: String,
        #[arg(long, default_value = "json", value_parser = ["json", "openapi"])]
        format: String,
    },
    /// Delete an API, or one of its routes (with PATH, and VERB).
    Delete {
        base_path: String,
        path: Option<String>,
        verb: Option<String>,
    },
}

/// `/shop` as the API's path segment (`shop`).
fn base(b: &str) -> String {
    encode(b.trim_start_matches('/'))
}

fn routes_table(client: &Client, apis: &Value) {
    let mut rows = vec![vec![
        "METHOD".into(),
        "URL".into(),
        "ACTION".into(),
        "TYPE".into(),
    ]];
    for api in apis["apis"].as_array().into_iter().flatten() {
        let url = api["url"].as_str().unwrap_or("");
        for r in api["routes"].as_array().into_iter().flatten() {
            rows.push(vec![
                r["method"].as_str().unwrap_or("").into(),
                format!(
                    "{}{url}{}",
                    client.apihost(),
                    r["path"].as_str().unwrap_or("").trim_end_matches('/')
                ),
                r["action"].as_str().unwrap_or("").into(),
                r["responseType"].as_str().unwrap_or("").into(),
            ]);
        }
    }
    print_table(&rows);
}

pub async fn run(cmd: ApiCommand, client: &Client) -> Result<()> {
    match cmd {
        ApiCommand::Create {
            base_path,
            path,
            verb,
            action,
            response_type,
            rate_limit,
            no_cors,
        } => {
            let mut body = json!({
                "basePath": base_path,
                "path": path,
                "method": verb,
                "action": action,
                "responseType": response_type,
                "cors": !no_cors,
            });
            if let Some(n) = rate_limit {
                body["rateLimit"] = json!(n);
            }
            let r = client.call("PUT", APIS, Some(&body)).await?;
            if client.json {
                print_json(&r);
            } else {
                crate::ui::ok(format_args!(
                    "created API {} {}{}",
                    r["method"].as_str().unwrap_or(""),
                    client.apihost(),
                    r["url"].as_str().unwrap_or("")
                ));
            }
            Ok(())
        }
        ApiCommand::List => {
            let apis = client.call("GET", APIS, None).await?;
            if client.json {
                print_json(&apis);
            } else {
                routes_table(client, &apis);
            }
            Ok(())
        }
        ApiCommand::Get { base_path, format } => {
            let url = format!("{APIS}/{}?format={format}", base(&base_path));
            let api = match client.call("GET", &url, None).await {
                Ok(a) => a,
                Err(e) => return Err(client.not_found(e, "API", &base_path).await),
            };
            if client.json || format == "openapi" {
                print_json(&api);
            } else {
                routes_table(client, &json!({ "apis": [api] }));
            }
            Ok(())
        }
        ApiCommand::Delete {
            base_path,
            path,
            verb,
        } => {
            let mut url = format!("{APIS}/{}", base(&base_path));
            if let Some(p) = &path {
                url.push_str(&format!("?path={}", encode(p)));
                if let Some(v) = &verb {
                    url.push_str(&format!("&method={}", encode(v)));
                }
            }
            let r = match client.call("DELETE", &url, None).await {
                Ok(r) => r,
                Err(e) => return Err(client.not_found(e, "API", &base_path).await),
            };
            if client.json {
                print_json(&r);
            } else {
                crate::ui::ok(format_args!(
                    "deleted {} route(s) of {base_path}",
                    r["deleted"]
                ));
            }
            Ok(())
        }
    }
}
