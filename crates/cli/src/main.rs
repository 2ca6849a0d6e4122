//! `gust`: the one binary. `gust serve` runs the whole platform in one process; `gust admin`
//! works on the store directly, like OpenWhisk's `wskadmin`.

mod admin;
mod client;
mod listen;
mod otlp;
mod processes;
mod roles;
mod serve;
mod ui;

use clap::{Parser, Subcommand};

/// mimalloc: the invoke path allocates on many threads at once, where glibc's malloc contends.
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Debug, Parser)]
#[command(
    name = "gust",
    version,
    about = "Gust serverless functions platform",
    after_help = "Quickstart:\n  gust serve &\n  gust action create hello hello.wasm\n  gust action invoke hello -p name Ada -r\n  gust activation logs --last"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    client: client::ClientArgs,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run gateway, controller, scheduler, bus and invoker in one process.
    Serve(serve::ServeArgs),
    /// Run a cluster's gateway, controller and scheduler (any number, behind a load balancer).
    #[command(
        after_help = "Example:\n  gust controller --store postgres://gust@db/gust --bus nats://nats:4222 --listen 0.0.0.0:3233"
    )]
    Controller(roles::ControllerArgs),
    /// Run a cluster's invoker: takes invocations from the bus and runs them (any number).
    #[command(
        after_help = "Example:\n  gust invoker --store postgres://gust@db/gust --bus nats://nats:4222 --id invoker-1"
    )]
    Invoker(roles::InvokerArgs),
    /// Manage namespaces, keys and limits in the store directly.
    #[command(
        after_help = "Examples:\n  gust admin namespace create alice\n  gust admin limits set alice --concurrent-invocations 50\n  gust admin key rotate alice"
    )]
    Admin(admin::AdminArgs),
    /// The API host and key this client uses.
    #[command(
        after_help = "Example:\n  gust property set --apihost http://127.0.0.1:3233 --auth UUID:KEY"
    )]
    Property {
        #[command(subcommand)]
        command: client::property::PropertyCommand,
    },
    /// Create, update, get, list, delete and invoke actions.
    Action {
        #[command(subcommand)]
        command: client::action::ActionCommand,
    },
    /// Create, update, bind, get, list and delete packages.
    Package {
        #[command(subcommand)]
        command: client::package::PackageCommand,
    },
    /// Create, update, get, list, delete and fire triggers (and feeds such as alarms).
    #[command(
        after_help = "Examples:\n  gust trigger create tick --feed /whisk.system/alarms/alarm -p cron '*/10 * * * * *'\n  gust trigger fire hook -p order 42"
    )]
    Trigger {
        #[command(subcommand)]
        command: client::trigger::TriggerCommand,
    },
    /// Create, update, enable, disable, get, list and delete rules (trigger -> action).
    #[command(after_help = "Example:\n  gust rule create on-tick tick hello")]
    Rule {
        #[command(subcommand)]
        command: client::rule::RuleCommand,
    },
    /// List and read the event source mappings of stream triggers (one per rule).
    #[command(after_help = "Examples:\n  gust mapping list\n  gust mapping get orders-to-billing")]
    Mapping {
        #[command(subcommand)]
        command: client::mapping::MappingCommand,
    },
    /// The non-blocking invocations that failed for good with no on-failure destination:
    /// list, read, redrive (invoke again) and delete them.
    #[command(after_help = "Examples:\n  gust deadletter list\n  gust deadletter redrive 0a1b...")]
    Deadletter {
        #[command(subcommand)]
        command: client::deadletter::DeadLetterCommand,
    },
    /// Durable workflows (Amazon States Language): create, start, stop, read and draw runs.
    #[command(
        after_help = "Examples:\n  gust workflow create orders orders.asl.json\n  gust workflow start orders --input '{\"order\": 42}' --wait\n  gust workflow graph 0a1b..."
    )]
    Workflow {
        #[command(subcommand)]
        command: client::workflow::WorkflowCommand,
    },
    /// Route HTTP requests to web actions: your namespace's APIs.
    Api {
        #[command(subcommand)]
        command: client::api::ApiCommand,
    },
    /// Deploy static sites (folders served at /sites/{namespace}/{name}/).
    Site {
        #[command(subcommand)]
        command: client::site::SiteCommand,
    },
    /// List activations and read their records, logs and results.
    Activation {
        #[command(subcommand)]
        command: client::activation::ActivationCommand,
    },
    /// Print the last activation's logs, or each new activation's with --follow.
    #[command(after_help = "Examples:\n  gust logs hello\n  gust logs --follow")]
    Logs(client::activation::LogsArgs),
    /// The namespaces your key may use.
    Namespace {
        #[command(subcommand)]
        command: client::namespace::NamespaceCommand,
    },
    /// Short-lived scoped tokens to hand out instead of the key.
    Token {
        #[command(subcommand)]
        command: client::token::TokenCommand,
    },
    /// Every entity in your namespace.
    List,
    /// Create or update everything a manifest (gust.toml) lists; says what changed.
    #[command(after_help = "Example:\n  gust deploy -f examples/gust.toml")]
    Deploy(client::deploy::DeployArgs),
    /// Delete everything a manifest lists.
    Undeploy(client::deploy::DeployArgs),
    /// Print a shell completion script: `gust completion bash > /etc/bash_completion.d/gust`.
    Completion {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
}

/// What is logged when `GUST_LOG` does not say: warnings, but not rustls's note about every
/// client that sends an IP address as its server name (curl and wrk do), which would flood the
/// log of a TLS listener.
const DEFAULT_LOG: &str = "warn,rustls::msgs=error";

fn main() -> std::process::ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("GUST_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG)),
        )
        .with_writer(std::io::stderr)
        .init();
    ui::init();
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            ui::error(format_args!("cannot start the async runtime: {e}"));
            return std::process::ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Controller(args) => roles::controller(args).await,
            Command::Invoker(args) => roles::invoker(args).await,
            Command::Admin(args) => admin::run(args).await,
            Command::Property { command } => client::property::run(command, &cli.client),
            Command::Action { command } => {
                client::action::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Package { command } => {
                client::package::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Trigger { command } => {
                client::trigger::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Rule { command } => {
                client::rule::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Mapping { command } => {
                client::mapping::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Deadletter { command } => {
                client::deadletter::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Workflow { command } => {
                client::workflow::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Api { command } => {
                client::api::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Site { command } => {
                client::site::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Activation { command } => {
                client::activation::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Logs(args) => {
                client::activation::logs(args, &client::Client::new(&cli.client)?).await
            }
            Command::Namespace { command } => {
                client::namespace::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::Token { command } => {
                client::token::run(command, &client::Client::new(&cli.client)?).await
            }
            Command::List => client::namespace::list_all(&client::Client::new(&cli.client)?).await,
            Command::Deploy(args) => {
                client::deploy::deploy(&args, &client::Client::new(&cli.client)?).await
            }
            Command::Undeploy(args) => {
                client::deploy::undeploy(&args, &client::Client::new(&cli.client)?).await
            }
            Command::Completion { shell } => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                clap_complete::generate(shell, &mut cmd, "gust", &mut std::io::stdout());
                Ok(())
            }
        }
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            ui::error(format_args!("{e:#}"));
            std::process::ExitCode::FAILURE
        }
    }
}
