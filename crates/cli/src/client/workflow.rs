//! `gust workflow`: durable workflows (decision 0028) — create them from Amazon States
//! Language definitions (JSON files), start and stop executions, read executions and their
//! history, send task results and events, and draw a run as the tree of its states with
//! where it went (`gust workflow graph ID`).

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use console::style;
use serde_json::{Map, Value, json};

use super::action::encode;
use super::{ApiFailure, Client, print_json, print_table};

#[derive(Debug, clap::Subcommand)]
pub enum WorkflowCommand {
    /// Create a workflow from an ASL definition (a JSON file); --update replaces one.
    #[command(after_help = "Example:\n  gust workflow create orders orders.asl.json")]
    Create {
        name: String,
        /// The definition: Amazon States Language, as JSON.
        file: PathBuf,
        /// Replace the workflow if it exists.
        #[arg(long)]
        update: bool,
    },
    /// Show a workflow and its definition (JSON).
    Get { name: String },
    /// List your namespace's workflows.
    List {
        /// Most workflows to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        skip: u64,
    },
    /// Delete a workflow.
    Delete { name: String },
    /// Start an execution; prints its id (with --wait: its output once it ends).
    #[command(
        after_help = "Examples:\n  gust workflow start orders --input '{\"order\": 42}'\n  gust workflow start orders --name order-42 --input-file order.json --wait"
    )]
    Start {
        /// The workflow.
        name: String,
        /// The input, JSON (default `{}`).
        #[arg(long, conflicts_with = "input_file")]
        input: Option<String>,
        /// The input from a JSON file.
        #[arg(long, value_name = "FILE")]
        input_file: Option<PathBuf>,
        /// The execution's name (unique per workflow; starting a running one again answers
        /// it); default its id.
        #[arg(long = "name", value_name = "NAME")]
        run_name: Option<String>,
        /// Wait (up to 60 s) for the execution to end, and print its output.
        #[arg(long)]
        wait: bool,
    },
    /// Show an execution: status, input, output, error.
    #[command(alias = "describe")]
    Execution { id: String },
    /// List executions, newest first (of one workflow, or all).
    Executions {
        /// Only this workflow's.
        name: Option<String>,
        /// Only those of this status: RUNNING, SUCCEEDED, FAILED, TIMED_OUT, ABORTED.
        #[arg(long)]
        status: Option<String>,
        /// Most executions to list (at most 200).
        #[arg(long, default_value_t = 30)]
        limit: u64,
        #[arg(long, default_value_t = 0)]
        skip: u64,
    },
    /// Print an execution's history, oldest first.
    History {
        id: String,
        /// Only the first N events (default: all of them).
        #[arg(long)]
        limit: Option<u64>,
    },
    /// Send a task's result (success, failure, heartbeat) or an event to an execution.
    #[command(
        after_help = "Examples:\n  gust workflow send success TOKEN '{\"approved\": true}'\n  gust workflow send failure TOKEN --error Rejected --cause 'out of stock'\n  gust workflow send event 0a1b... approval '{\"by\": \"ada\"}'"
    )]
    Send {
        #[command(subcommand)]
        what: SendCommand,
    },
    /// Stop a running execution (ABORTED).
    Stop {
        id: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
    },
    /// Draw an execution as its workflow's states (Parallel branches and Map iterations
    /// indented), each with what the run did there.
    #[command(after_help = "Example:\n  gust workflow graph 0a1b...")]
    Graph { id: String },
}

#[derive(Debug, clap::Subcommand)]
pub enum SendCommand {
    /// End a callback step (`.waitForTaskToken`) with OUTPUT (JSON).
    Success {
        // Not `token`: that is the global `--token` of every command.
        #[arg(value_name = "TOKEN")]
        task_token: String,
        output: String,
    },
    /// Fail a callback step.
    Failure {
        #[arg(value_name = "TOKEN")]
        task_token: String,
        #[arg(long)]
        error: Option<String>,
        #[arg(long)]
        cause: Option<String>,
    },
    /// Tell a callback step its worker is alive (HeartbeatSeconds).
    Heartbeat {
        #[arg(value_name = "TOKEN")]
        task_token: String,
    },
    /// Raise event NAME with BODY (JSON, default null) on a running execution (its
    /// `event:NAME` task takes it).
    Event {
        id: String,
        name: String,
        body: Option<String>,
    },
}

const NS: &str = "/api/v1/namespaces/_";

fn workflow_path(name: &str) -> String {
    format!("{NS}/workflows/{}", encode(name))
}

fn execution_path(id: &str) -> String {
    format!("{NS}/executions/{}", encode(id))
}

/// `text` as JSON; `what` names it in the error.
fn parse_json(text: &str, what: &str) -> Result<Value> {
    serde_json::from_str(text).with_context(|| format!("{what} is not valid JSON"))
}

/// The JSON of file `path`; `what` names it in the error.
pub fn read_json(path: &Path, what: &str) -> Result<Value> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{what} {} is not valid JSON", path.display()))
}

/// `ms` since the epoch as the CLI prints times.
fn time(ms: &Value) -> String {
    match ms.as_u64() {
        Some(ms) => {
            gust_model::time::iso8601(std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms))
        }
        None => "-".into(),
    }
}

/// An execution status, coloured: green when it succeeded, yellow while running, red else.
fn status_cell(s: &str) -> String {
    match s {
        "SUCCEEDED" => style(s).green().to_string(),
        "RUNNING" => style(s).yellow().to_string(),
        _ => style(s).red().to_string(),
    }
}

/// A string of the API's answer that says something: `None` when absent or empty.
fn said(v: &Value) -> Option<&str> {
    v.as_str().filter(|s| !s.is_empty())
}

/// JSON on one line.
fn compact(v: &Value) -> String {
    v.to_string()
}

/// Prints an execution for people.
fn show_execution(e: &Value) {
    let mut rows: Vec<(&str, String)> = vec![
        ("id", e["id"].as_str().unwrap_or("").into()),
        ("name", e["name"].as_str().unwrap_or("").into()),
        ("workflow", e["workflow"].as_str().unwrap_or("").into()),
        ("status", status_cell(e["status"].as_str().unwrap_or(""))),
        ("started", time(&e["start"])),
    ];
    if !e["stop"].is_null() {
        rows.push(("stopped", time(&e["stop"])));
    }
    rows.push(("input", compact(&e["input"])));
    if !e["output"].is_null() {
        rows.push(("output", compact(&e["output"])));
    }
    for key in ["error", "cause", "parent"] {
        if let Some(v) = said(&e[key]) {
            rows.push((key, v.to_string()));
        }
    }
    for (k, v) in rows {
        println!("{} {v}", style(format!("{k:<9}")).bold());
    }
}

pub async fn run(cmd: WorkflowCommand, client: &Client) -> Result<()> {
    match cmd {
        WorkflowCommand::Create { name, file, update } => {
            let definition = read_json(&file, "the definition")?;
            let url = format!("{}?overwrite={update}", workflow_path(&name));
            let w = match client
                .call("PUT", &url, Some(&json!({ "definition": definition })))
                .await
            {
                Ok(w) => w,
                Err(e) => {
                    return Err(match e.downcast_ref::<ApiFailure>() {
                        Some(f) if f.status == 409 => anyhow!(
                            "workflow '{name}' already exists (409): add --update to replace it"
                        ),
                        _ => e,
                    });
                }
            };
            if client.json {
                print_json(&w);
            } else {
                crate::ui::ok(format_args!(
                    "{} workflow {name} (version {})",
                    if update { "updated" } else { "created" },
                    w["version"].as_str().unwrap_or("")
                ));
            }
            Ok(())
        }
        WorkflowCommand::Get { name } => {
            match client.call("GET", &workflow_path(&name), None).await {
                Ok(w) => {
                    print_json(&w);
                    Ok(())
                }
                Err(e) => Err(client.not_found(e, "workflow", &name).await),
            }
        }
        WorkflowCommand::List { limit, skip } => {
            let list = client
                .call(
                    "GET",
                    &format!("{NS}/workflows?limit={limit}&skip={skip}"),
                    None,
                )
                .await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec![
                "NAME".into(),
                "VERSION".into(),
                "STATES".into(),
                "UPDATED".into(),
            ]];
            for w in list.as_array().into_iter().flatten() {
                rows.push(vec![
                    w["name"].as_str().unwrap_or("").into(),
                    w["version"].as_str().unwrap_or("").into(),
                    w["definition"]["States"]
                        .as_object()
                        .map_or(0, Map::len)
                        .to_string(),
                    time(&w["updated"]),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        WorkflowCommand::Delete { name } => {
            let w = match client.call("DELETE", &workflow_path(&name), None).await {
                Ok(w) => w,
                Err(e) => return Err(client.not_found(e, "workflow", &name).await),
            };
            if client.json {
                print_json(&w);
            } else {
                crate::ui::ok(format_args!("deleted workflow {name}"));
            }
            Ok(())
        }
        WorkflowCommand::Start {
            name,
            input,
            input_file,
            run_name,
            wait,
        } => {
            let input = match (input, input_file) {
                (Some(text), _) => parse_json(&text, "--input")?,
                (None, Some(file)) => read_json(&file, "the input file")?,
                (None, None) => json!({}),
            };
            let mut body = json!({ "input": input });
            if let Some(n) = &run_name {
                body["name"] = json!(n);
            }
            let url = format!("{}/executions?blocking={wait}", workflow_path(&name));
            let (status, e) = match client.call_with_status("POST", &url, Some(&body)).await {
                Ok(answer) => answer,
                Err(e) => return Err(client.not_found(e, "workflow", &name).await),
            };
            start_answer(client, &name, wait, status, &e)
        }
        WorkflowCommand::Execution { id } => {
            let e = match client.call("GET", &execution_path(&id), None).await {
                Ok(e) => e,
                Err(e) => return Err(client.not_found(e, "execution", &id).await),
            };
            if client.json {
                print_json(&e);
            } else {
                show_execution(&e);
            }
            Ok(())
        }
        WorkflowCommand::Executions {
            name,
            status,
            limit,
            skip,
        } => {
            let mut url = format!("{NS}/executions?limit={limit}&skip={skip}");
            if let Some(n) = &name {
                url.push_str(&format!("&workflow={}", encode(n)));
            }
            if let Some(s) = &status {
                url.push_str(&format!("&status={}", encode(s)));
            }
            let list = client.call("GET", &url, None).await?;
            if client.json {
                print_json(&list);
                return Ok(());
            }
            let mut rows = vec![vec![
                "ID".into(),
                "NAME".into(),
                "WORKFLOW".into(),
                "STATUS".into(),
                "STARTED".into(),
                "STOPPED".into(),
            ]];
            for e in list.as_array().into_iter().flatten() {
                rows.push(vec![
                    e["id"].as_str().unwrap_or("").into(),
                    e["name"].as_str().unwrap_or("").into(),
                    e["workflow"].as_str().unwrap_or("").into(),
                    status_cell(e["status"].as_str().unwrap_or("")),
                    time(&e["start"]),
                    time(&e["stop"]),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        WorkflowCommand::History { id, limit } => {
            let events = match history(client, &id, limit).await {
                Ok(events) => events,
                Err(e) => return Err(client.not_found(e, "execution", &id).await),
            };
            if client.json {
                print_json(&Value::Array(events));
                return Ok(());
            }
            let mut rows = vec![vec![
                "SEQ".into(),
                "TIME".into(),
                "EVENT".into(),
                "DETAIL".into(),
            ]];
            for ev in &events {
                rows.push(vec![
                    ev["seq"].to_string(),
                    time(&ev["ts"]),
                    ev["kind"].as_str().unwrap_or("").into(),
                    event_detail(ev),
                ]);
            }
            print_table(&rows);
            Ok(())
        }
        WorkflowCommand::Send { what } => send(client, what).await,
        WorkflowCommand::Stop { id, error, cause } => {
            let body = json!({ "error": error, "cause": cause });
            let e = match client
                .call(
                    "POST",
                    &format!("{}/stop", execution_path(&id)),
                    Some(&body),
                )
                .await
            {
                Ok(e) => e,
                Err(e) => return Err(client.not_found(e, "execution", &id).await),
            };
            if client.json {
                print_json(&e);
            } else {
                crate::ui::ok(format_args!(
                    "stopped execution {id} ({})",
                    e["status"].as_str().unwrap_or("")
                ));
            }
            Ok(())
        }
        WorkflowCommand::Graph { id } => {
            let e = match client.call("GET", &execution_path(&id), None).await {
                Ok(e) => e,
                Err(e) => return Err(client.not_found(e, "execution", &id).await),
            };
            let workflow = e["workflow"].as_str().unwrap_or("");
            let w = client
                .call("GET", &workflow_path(workflow), None)
                .await
                .with_context(|| format!("reading workflow '{workflow}'"))?;
            let events = history(client, &id, None).await?;
            if client.json {
                print_json(&json!({ "execution": e, "workflow": w, "events": events }));
                return Ok(());
            }
            for line in graph(&w["definition"], &e, &events) {
                println!("{line}");
            }
            Ok(())
        }
    }
}

/// Prints what a start answered: the id, or with `--wait` the output (a failure's error is
/// the command's).
fn start_answer(client: &Client, name: &str, wait: bool, status: u16, e: &Value) -> Result<()> {
    let id = e["id"].as_str().unwrap_or("");
    let run = e["status"].as_str().unwrap_or("");
    if client.json {
        print_json(e);
    } else if wait && run == "SUCCEEDED" {
        print_json(&e["output"]);
    } else if wait && run == "RUNNING" {
        crate::ui::ok(format_args!(
            "started {name}; still running, id {id} (see gust workflow execution {id})"
        ));
    } else if !wait && status == 200 {
        crate::ui::ok(format_args!(
            "execution {} of {name} is already running, id {id}",
            e["name"].as_str().unwrap_or("")
        ));
    } else if !wait {
        crate::ui::ok(format_args!("started {name} with id {id}"));
    }
    if wait && !run.is_empty() && run != "SUCCEEDED" && run != "RUNNING" {
        bail!(
            "execution {id} ended {run}: {}{}",
            said(&e["error"]).unwrap_or(""),
            said(&e["cause"])
                .map(|c| format!(" ({c})"))
                .unwrap_or_default()
        );
    }
    Ok(())
}

async fn send(client: &Client, what: SendCommand) -> Result<()> {
    let (path, body, done) = match what {
        SendCommand::Success { task_token, output } => (
            format!("{NS}/tasks/success"),
            json!({ "token": task_token, "output": parse_json(&output, "OUTPUT")? }),
            "sent the task's success".to_string(),
        ),
        SendCommand::Failure {
            task_token,
            error,
            cause,
        } => (
            format!("{NS}/tasks/failure"),
            json!({ "token": task_token, "error": error, "cause": cause }),
            "sent the task's failure".to_string(),
        ),
        SendCommand::Heartbeat { task_token } => (
            format!("{NS}/tasks/heartbeat"),
            json!({ "token": task_token }),
            "sent a heartbeat".to_string(),
        ),
        SendCommand::Event { id, name, body } => {
            let body = match body {
                Some(text) => parse_json(&text, "BODY")?,
                None => Value::Null,
            };
            (
                format!("{}/events/{}", execution_path(&id), encode(&name)),
                body,
                format!("raised event {name} on execution {id}"),
            )
        }
    };
    let answer = client.call("POST", &path, Some(&body)).await?;
    if client.json {
        print_json(&answer);
    } else {
        crate::ui::ok(done);
    }
    Ok(())
}

/// Every event of execution `id` (the first `limit` with one), page by page.
async fn history(client: &Client, id: &str, limit: Option<u64>) -> Result<Vec<Value>> {
    let mut out = Vec::new();
    let mut after = 0u64;
    loop {
        let want = limit.map_or(1000, |l| (l - out.len() as u64).min(1000));
        if want == 0 {
            break;
        }
        let page = client
            .call(
                "GET",
                &format!("{}/history?after={after}&limit={want}", execution_path(id)),
                None,
            )
            .await?;
        out.extend(page["events"].as_array().into_iter().flatten().cloned());
        match page["next"].as_u64() {
            Some(next) => after = next,
            None => break,
        }
    }
    Ok(out)
}

/// A history event's detail for the table: its state, resource, error or index.
fn event_detail(ev: &Value) -> String {
    let d = &ev["details"];
    let mut parts = Vec::new();
    if let Some(path) = d["path"].as_str().filter(|p| !p.is_empty()) {
        parts.push(format!("{path}/"));
    }
    if let Some(name) = d["name"].as_str() {
        parts.push(name.to_string());
    }
    if let Some(index) = d["index"].as_u64() {
        parts.push(format!("[{index}]"));
    }
    if let Some(r) = d["resource"].as_str() {
        parts.push(r.to_string());
    }
    let mut out = parts.concat();
    if let Some(e) = d["error"].as_str() {
        if !out.is_empty() {
            out.push(' ');
        }
        out.push_str(e);
        if let Some(c) = d["cause"].as_str() {
            let mut c: String = c.split_whitespace().collect::<Vec<_>>().join(" ");
            if c.chars().count() > 60 {
                c = c.chars().take(59).collect::<String>() + "…";
            }
            out.push_str(&format!(": {c}"));
        }
    }
    out
}

/// What an execution's history says of one state (all its entries, in every branch and
/// iteration).
#[derive(Debug, Default, Clone, PartialEq)]
struct Seen {
    entered: u32,
    /// Entries not exited yet.
    open: u32,
    /// Task attempts (TaskScheduled).
    attempts: u32,
    /// A task was scheduled and has not ended.
    task_open: bool,
    /// The error of the last failure since the state was last entered.
    error: Option<String>,
    /// Map iterations started.
    iterations: u32,
}

/// Reads `events` (Gust's history) into what each state saw. Task events name no state:
/// they belong to the state their frame (`path`) last entered; one without a path to the
/// state of the oldest open task of its resource.
fn seen_states(events: &[Value]) -> HashMap<String, Seen> {
    let mut seen: HashMap<String, Seen> = HashMap::new();
    // The state each frame is in.
    let mut current: HashMap<String, String> = HashMap::new();
    // Tasks scheduled and not ended: (state, resource).
    let mut tasks: Vec<(String, String)> = Vec::new();
    let mut last_entered = String::new();
    for ev in events {
        let kind = ev["kind"].as_str().unwrap_or("");
        let d = &ev["details"];
        let path = d["path"].as_str();
        let resource = d["resource"].as_str().unwrap_or("").to_string();
        let state_of_frame = |current: &HashMap<String, String>| -> Option<String> {
            path.and_then(|p| current.get(p).cloned())
        };
        if kind.ends_with("StateEntered") {
            let name = d["name"].as_str().unwrap_or("").to_string();
            let s = seen.entry(name.clone()).or_default();
            s.entered += 1;
            s.open += 1;
            s.error = None;
            s.task_open = false;
            current.insert(path.unwrap_or("").to_string(), name.clone());
            last_entered = name;
        } else if kind.ends_with("StateExited") {
            let name = d["name"].as_str().unwrap_or("");
            let s = seen.entry(name.to_string()).or_default();
            s.open = s.open.saturating_sub(1);
            s.task_open = false;
        } else if kind == "TaskScheduled" {
            let state = state_of_frame(&current).unwrap_or_else(|| last_entered.clone());
            let s = seen.entry(state.clone()).or_default();
            s.attempts += 1;
            s.task_open = true;
            // A retry: the last attempt's error is behind it.
            s.error = None;
            tasks.push((state, resource));
        } else if kind.starts_with("Task") {
            // TaskSucceeded, TaskFailed, TaskTimedOut, ...
            let state = match state_of_frame(&current) {
                Some(state) => {
                    if let Some(i) = tasks.iter().position(|(s, _)| *s == state) {
                        tasks.remove(i);
                    }
                    Some(state)
                }
                None => tasks
                    .iter()
                    .position(|(_, r)| *r == resource)
                    .map(|i| tasks.remove(i).0),
            };
            if let Some(state) = state {
                let s = seen.entry(state).or_default();
                s.task_open = false;
                if let Some(e) = said(&d["error"]) {
                    s.error = Some(e.to_string());
                }
            }
        } else if kind == "MapIterationStarted" {
            let name = d["name"].as_str().unwrap_or("");
            seen.entry(name.to_string()).or_default().iterations += 1;
        } else if (kind == "ParallelStateFailed" || kind == "MapStateFailed")
            && let Some(state) = state_of_frame(&current)
        {
            let s = seen.entry(state).or_default();
            s.error.get_or_insert_with(|| "a branch failed".into());
        }
    }
    seen
}

/// Where a state goes: `→ Next`, a Choice's targets, its catchers'.
fn arrows(state: &Value) -> String {
    let mut targets: Vec<String> = Vec::new();
    if let Some(n) = state["Next"].as_str() {
        targets.push(n.to_string());
    }
    for rule in state["Choices"].as_array().into_iter().flatten() {
        if let Some(n) = rule["Next"].as_str() {
            targets.push(n.to_string());
        }
    }
    if let Some(d) = state["Default"].as_str() {
        targets.push(format!("default {d}"));
    }
    for c in state["Catch"].as_array().into_iter().flatten() {
        if let Some(n) = c["Next"].as_str() {
            targets.push(format!("catch {n}"));
        }
    }
    if targets.is_empty() {
        String::new()
    } else {
        format!("  → {}", targets.join(" | "))
    }
}

/// The names of `states` in the order a run meets them: from `start`, following each
/// state's transitions depth-first; any left over (never reached) after, by name.
fn flow_order(start: &str, states: &Map<String, Value>) -> Vec<String> {
    let mut order = Vec::new();
    let mut done = HashSet::new();
    let mut stack = vec![start.to_string()];
    while let Some(name) = stack.pop() {
        if !states.contains_key(&name) || !done.insert(name.clone()) {
            continue;
        }
        let s = &states[&name];
        let mut next: Vec<String> = Vec::new();
        if let Some(n) = s["Next"].as_str() {
            next.push(n.into());
        }
        for rule in s["Choices"].as_array().into_iter().flatten() {
            if let Some(n) = rule["Next"].as_str() {
                next.push(n.into());
            }
        }
        if let Some(d) = s["Default"].as_str() {
            next.push(d.into());
        }
        for c in s["Catch"].as_array().into_iter().flatten() {
            if let Some(n) = c["Next"].as_str() {
                next.push(n.into());
            }
        }
        order.push(name);
        stack.extend(next.into_iter().rev());
    }
    for name in states.keys() {
        if !done.contains(name) {
            order.push(name.clone());
        }
    }
    order
}

/// How a state did: its mark and what to say of it.
fn verdict(state: &Value, seen: Option<&Seen>, running: bool, run_error: &str) -> (char, String) {
    let kind = state["Type"].as_str().unwrap_or("");
    let Some(s) = seen.filter(|s| s.entered > 0) else {
        return ('·', "not reached".into());
    };
    if s.open > 0 && running {
        let resource = state["Resource"].as_str().unwrap_or("");
        let what = if kind == "Wait" {
            "waiting".to_string()
        } else if s.task_open && resource.ends_with(".waitForTaskToken") {
            "waiting for callback".to_string()
        } else if s.task_open && resource.starts_with("event:") {
            format!("waiting for event {}", &resource["event:".len()..])
        } else if s.error.is_some() && !s.task_open {
            format!("retrying after {}", s.error.as_deref().unwrap_or(""))
        } else {
            "running".to_string()
        };
        return ('…', what);
    }
    if s.open > 0 {
        let error = s.error.as_deref().unwrap_or(run_error);
        return ('✗', format!("failed: {error}"));
    }
    if kind == "Fail" {
        let error = state["Error"].as_str().unwrap_or(run_error);
        return ('✗', format!("failed: {error}"));
    }
    match &s.error {
        Some(e) => ('✗', format!("failed: {e}, caught")),
        None => ('✓', String::new()),
    }
}

/// The lines of `states` (of one frame) at `indent`.
fn graph_states(
    out: &mut Vec<String>,
    start: &str,
    states: &Map<String, Value>,
    indent: usize,
    seen: &HashMap<String, Seen>,
    running: bool,
    run_error: &str,
) {
    let pad = " ".repeat(indent);
    for name in flow_order(start, states) {
        let state = &states[&name];
        let kind = state["Type"].as_str().unwrap_or("?");
        let s = seen.get(&name);
        let (mark, what) = verdict(state, s, running, run_error);
        let mut notes = vec![kind.to_string()];
        if !what.is_empty() && what != "not reached" {
            notes.push(what);
        }
        if let Some(s) = s {
            if s.entered > 1 {
                notes.push(format!("entered {} times", s.entered));
            }
            if s.attempts > s.entered {
                notes.push(format!("{} attempts", s.attempts));
            }
            if s.iterations > 0 {
                notes.push(format!(
                    "{} iteration{}",
                    s.iterations,
                    if s.iterations == 1 { "" } else { "s" }
                ));
            }
        }
        let mark = match mark {
            '✓' => style(mark).green().to_string(),
            '✗' => style(mark).red().to_string(),
            '…' => style(mark).yellow().to_string(),
            _ => style(mark).dim().to_string(),
        };
        out.push(format!(
            "{pad}{mark} {name} ({}){}",
            notes.join(", "),
            arrows(state)
        ));
        if kind == "Parallel" {
            for (i, branch) in state["Branches"]
                .as_array()
                .into_iter()
                .flatten()
                .enumerate()
            {
                out.push(format!("{pad}    branch {}", i + 1));
                if let (Some(start), Some(states)) =
                    (branch["StartAt"].as_str(), branch["States"].as_object())
                {
                    graph_states(out, start, states, indent + 6, seen, running, run_error);
                }
            }
        }
        if kind == "Map" {
            let processor = if state["ItemProcessor"].is_object() {
                &state["ItemProcessor"]
            } else {
                &state["Iterator"]
            };
            if let (Some(start), Some(states)) = (
                processor["StartAt"].as_str(),
                processor["States"].as_object(),
            ) {
                out.push(format!("{pad}    each item"));
                graph_states(out, start, states, indent + 6, seen, running, run_error);
            }
        }
    }
}

/// Execution `e` of workflow `definition` with history `events`, as lines: a heading, then
/// the states in flow order, each marked ✓ (done), ✗ (failed), … (running or waiting) or ·
/// (not reached), with its type, what it is doing and where it goes.
fn graph(definition: &Value, e: &Value, events: &[Value]) -> Vec<String> {
    let status = e["status"].as_str().unwrap_or("");
    let mut out = vec![format!(
        "execution {} of {} ({})",
        e["id"].as_str().unwrap_or(""),
        e["workflow"].as_str().unwrap_or(""),
        status_cell(status)
    )];
    let run_error = said(&e["error"]).unwrap_or(status);
    match (said(&e["error"]), said(&e["cause"])) {
        (Some(error), Some(cause)) => out.push(format!("error: {error}: {cause}")),
        (Some(only), None) | (None, Some(only)) => out.push(format!("error: {only}")),
        (None, None) => {}
    }
    let seen = seen_states(events);
    match (
        definition["StartAt"].as_str(),
        definition["States"].as_object(),
    ) {
        (Some(start), Some(states)) => graph_states(
            &mut out,
            start,
            states,
            0,
            &seen,
            status == "RUNNING",
            run_error,
        ),
        _ => out.push("(the definition has no states)".into()),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ev(seq: u64, kind: &str, details: Value) -> Value {
        json!({ "seq": seq, "ts": 0, "kind": kind, "details": details })
    }

    fn definition() -> Value {
        json!({
            "StartAt": "Validate",
            "States": {
                "Validate": {"Type": "Task", "Resource": "validate", "Next": "Choose",
                             "Retry": [{"ErrorEquals": ["States.ALL"]}]},
                "Choose": {"Type": "Choice",
                           "Choices": [{"Variable": "$.ok", "BooleanEquals": true, "Next": "Fan"}],
                           "Default": "Reject"},
                "Reject": {"Type": "Fail", "Error": "Rejected"},
                "Fan": {"Type": "Parallel", "Next": "Approve", "Branches": [
                    {"StartAt": "A", "States": {"A": {"Type": "Pass", "End": true}}},
                    {"StartAt": "B", "States": {"B": {"Type": "Wait", "Seconds": 1, "End": true}}}
                ]},
                "Approve": {"Type": "Task", "Resource": "notify.waitForTaskToken", "Next": "Each"},
                "Each": {"Type": "Map", "End": true, "ItemProcessor": {
                    "StartAt": "Item", "States": {"Item": {"Type": "Pass", "End": true}}}}
            }
        })
    }

    fn lines(e: Value, events: &[Value]) -> Vec<String> {
        console::set_colors_enabled(false);
        graph(&definition(), &e, events)
    }

    #[test]
    fn a_waiting_run_shows_where_it_is_and_what_it_did() {
        let events = [
            ev(1, "ExecutionStarted", json!({"input": "{}"})),
            ev(
                2,
                "TaskStateEntered",
                json!({"name": "Validate", "path": ""}),
            ),
            ev(
                3,
                "TaskScheduled",
                json!({"resource": "validate", "path": ""}),
            ),
            ev(
                4,
                "TaskFailed",
                json!({"resource": "validate", "error": "Boom"}),
            ),
            ev(
                5,
                "TaskScheduled",
                json!({"resource": "validate", "path": ""}),
            ),
            ev(6, "TaskSucceeded", json!({"resource": "validate"})),
            ev(
                7,
                "TaskStateExited",
                json!({"name": "Validate", "path": ""}),
            ),
            ev(
                8,
                "ChoiceStateEntered",
                json!({"name": "Choose", "path": ""}),
            ),
            ev(
                9,
                "ChoiceStateExited",
                json!({"name": "Choose", "path": ""}),
            ),
            ev(
                10,
                "ParallelStateEntered",
                json!({"name": "Fan", "path": ""}),
            ),
            ev(11, "ParallelStateStarted", json!({"path": ""})),
            ev(
                12,
                "PassStateEntered",
                json!({"name": "A", "path": "Fan[0]"}),
            ),
            ev(
                13,
                "WaitStateEntered",
                json!({"name": "B", "path": "Fan[1]"}),
            ),
            ev(
                14,
                "PassStateExited",
                json!({"name": "A", "path": "Fan[0]"}),
            ),
            ev(
                15,
                "WaitStateExited",
                json!({"name": "B", "path": "Fan[1]"}),
            ),
            ev(16, "ParallelStateSucceeded", json!({"path": ""})),
            ev(
                17,
                "ParallelStateExited",
                json!({"name": "Fan", "path": ""}),
            ),
            ev(
                18,
                "TaskStateEntered",
                json!({"name": "Approve", "path": ""}),
            ),
            ev(
                19,
                "TaskScheduled",
                json!({"resource": "notify", "path": ""}),
            ),
        ];
        let e = json!({"id": "0a1b", "workflow": "orders", "status": "RUNNING"});
        assert_eq!(
            lines(e, &events),
            [
                "execution 0a1b of orders (RUNNING)",
                "✓ Validate (Task, 2 attempts)  → Choose",
                "✓ Choose (Choice)  → Fan | default Reject",
                "✓ Fan (Parallel)  → Approve",
                "    branch 1",
                "      ✓ A (Pass)",
                "    branch 2",
                "      ✓ B (Wait)",
                "… Approve (Task, waiting for callback)  → Each",
                "· Each (Map)",
                "    each item",
                "      · Item (Pass)",
                "· Reject (Fail)",
            ]
        );
    }

    #[test]
    fn a_failed_run_marks_the_failing_state_and_counts_iterations() {
        let events = [
            ev(
                1,
                "TaskStateEntered",
                json!({"name": "Approve", "path": ""}),
            ),
            ev(
                2,
                "TaskScheduled",
                json!({"resource": "notify", "path": ""}),
            ),
            ev(3, "TaskSucceeded", json!({"resource": "notify"})),
            ev(4, "TaskStateExited", json!({"name": "Approve", "path": ""})),
            ev(5, "MapStateEntered", json!({"name": "Each", "path": ""})),
            ev(
                6,
                "MapIterationStarted",
                json!({"name": "Each", "index": 0}),
            ),
            ev(
                7,
                "PassStateEntered",
                json!({"name": "Item", "path": "Each[0]"}),
            ),
            ev(
                8,
                "MapIterationStarted",
                json!({"name": "Each", "index": 1}),
            ),
            ev(
                9,
                "PassStateEntered",
                json!({"name": "Item", "path": "Each[1]"}),
            ),
            ev(
                10,
                "PassStateExited",
                json!({"name": "Item", "path": "Each[0]"}),
            ),
            ev(11, "ExecutionAborted", json!({"error": "Stopped"})),
        ];
        let e = json!({"id": "0a1b", "workflow": "orders", "status": "ABORTED",
                       "error": "Stopped", "cause": "by hand"});
        let l = lines(e, &events);
        assert_eq!(l[1], "error: Stopped: by hand");
        assert!(
            l.contains(&"✓ Approve (Task)  → Each".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(&"✗ Each (Map, failed: Stopped, 2 iterations)".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(&"      ✗ Item (Pass, failed: Stopped, entered 2 times)".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(&"· Validate (Task)  → Choose".to_string()),
            "{l:#?}"
        );
    }

    #[test]
    fn a_fail_state_and_a_caught_error_are_failures() {
        let events = [
            ev(
                1,
                "TaskStateEntered",
                json!({"name": "Validate", "path": ""}),
            ),
            ev(
                2,
                "TaskScheduled",
                json!({"resource": "validate", "path": ""}),
            ),
            ev(
                3,
                "TaskFailed",
                json!({"resource": "validate", "error": "Bad", "path": ""}),
            ),
            ev(
                4,
                "TaskStateExited",
                json!({"name": "Validate", "path": ""}),
            ),
            ev(5, "FailStateEntered", json!({"name": "Reject", "path": ""})),
            ev(6, "ExecutionFailed", json!({"error": "Rejected"})),
        ];
        let e = json!({"id": "x", "workflow": "orders", "status": "FAILED", "error": "Rejected"});
        let l = lines(e, &events);
        assert!(
            l.contains(&"✗ Validate (Task, failed: Bad, caught)  → Choose".to_string()),
            "{l:#?}"
        );
        assert!(
            l.contains(&"✗ Reject (Fail, failed: Rejected)".to_string()),
            "{l:#?}"
        );
    }

    #[test]
    fn history_details_read_in_one_cell() {
        assert_eq!(
            event_detail(&ev(
                1,
                "PassStateEntered",
                json!({"name": "A", "path": "P[1]"})
            )),
            "P[1]/A"
        );
        assert_eq!(
            event_detail(&ev(
                2,
                "TaskFailed",
                json!({"resource": "charge", "error": "Declined", "cause": "card\nexpired"})
            )),
            "charge Declined: card expired"
        );
        assert_eq!(
            event_detail(&ev(
                3,
                "MapIterationStarted",
                json!({"name": "M", "index": 4})
            )),
            "M[4]"
        );
    }
}
