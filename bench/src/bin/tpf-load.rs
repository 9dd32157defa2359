//! `tpf-load`: the load driver of issue 6 item 2. Builds a stack (or targets
//! a running one), submits `--executions` runs of the restaurant-approval
//! pipeline from `--clients` concurrent clients, completes every await
//! through the API, and reports executions/s, p50/p99 submit latency and
//! p50/p99 submit→SUCCEEDED time against the issue's budgets; writes them to
//! `target/bench-load-<stack>.json`.
//!
//! ```text
//! cargo run -p tpf-bench --release --bin tpf-load -- --stack memory --executions 20000 --clients 32
//! cargo run -p tpf-bench --release --bin tpf-load -- --stack all
//! ```
//!
//! `--stack all` runs memory, file and moto one after the other, each in a
//! child process of its own (the inline queue's consumer is one per process).

use std::path::PathBuf;
use std::time::Duration;

use clap::{value_parser, Arg, ArgAction, ArgMatches, Command};
use serde_json::json;

use tpf_bench::latency::{write_json, Summary};
use tpf_bench::load::client::Api;
use tpf_bench::load::driver::{self, LoadConfig, LoadResult};
use tpf_bench::load::stack::{Stack, StackKind, StackOptions, CONTROL_TOKEN};
use tpf_bench::load::{budget, load_average, machine, LoadError};

fn command() -> Command {
    Command::new("tpf-load")
        .about("Load driver of the tpf-lambda coordinator (issue 6): executions/s and latency percentiles of the restaurant-approval pipeline with its await")
        .arg(Arg::new("stack").long("stack").default_value("memory")
            .value_parser(["memory", "file", "moto", "all"])
            .help("providers to run on (all: memory, file, moto in turn)"))
        .arg(Arg::new("executions").long("executions").short('n').default_value("5000")
            .value_parser(value_parser!(usize)).help("executions to submit"))
        .arg(Arg::new("clients").long("clients").short('c').default_value("32")
            .value_parser(value_parser!(usize)).help("concurrent clients, one execution each at a time"))
        .arg(Arg::new("transport").long("transport")
            .value_parser(["in-process", "http"])
            .help("how clients reach the control-plane: the router in process (default for memory) or HTTP on a loopback socket (default for file and moto)"))
        .arg(Arg::new("target").long("target").value_name("URL")
            .help("drive an already running stack at URL instead (its release and worker must be registered)"))
        .arg(Arg::new("token").long("token").default_value("local-control-token")
            .help("control-plane token of --target (infra/run-local.sh's default)"))
        .arg(Arg::new("poll-max-ms").long("poll-max-ms")
            .value_parser(value_parser!(u64))
            .help("longest pause between status polls (default 20, moto 100)"))
        .arg(Arg::new("timeout-s").long("timeout-s").default_value("120")
            .value_parser(value_parser!(u64)).help("per-execution limit, submit to SUCCEEDED"))
        .arg(Arg::new("pollers").long("pollers").default_value("4")
            .value_parser(value_parser!(usize)).help("moto: SQS pollers of the dispatcher's event source"))
        .arg(Arg::new("sweep-s").long("sweep-s").default_value("30")
            .value_parser(value_parser!(u64)).help("sweep interval / sweeper schedule, seconds"))
        .arg(Arg::new("out").long("out").value_name("FILE")
            .help("result file (default target/bench-load-<stack>.json; ignored with --stack all)"))
        .arg(Arg::new("quiet").long("quiet").action(ArgAction::SetTrue)
            .help("no progress bar"))
}

/// One stack's run, in this process.
async fn run_one(kind: Option<StackKind>, m: &ArgMatches) -> Result<(), LoadError> {
    let get = |name: &str| m.get_one::<usize>(name).copied().unwrap_or_default();
    let poll_default = if kind == Some(StackKind::Moto) {
        100
    } else {
        20
    };
    let config = LoadConfig {
        executions: get("executions"),
        clients: get("clients"),
        poll_max: Duration::from_millis(
            m.get_one::<u64>("poll-max-ms")
                .copied()
                .unwrap_or(poll_default),
        ),
        timeout: Duration::from_secs(m.get_one::<u64>("timeout-s").copied().unwrap_or(120)),
        progress: !m.get_flag("quiet"),
    };
    let opts = StackOptions {
        pollers: get("pollers"),
        sweep_every_s: m.get_one::<u64>("sweep-s").copied().unwrap_or(30),
    };
    let transport = m.get_one::<String>("transport").map(String::as_str);
    let (stack, api, label) = match (kind, m.get_one::<String>("target")) {
        (_, Some(url)) => {
            let token = m
                .get_one::<String>("token")
                .map_or("local-control-token", String::as_str);
            (None, Api::http(url, token)?, "target".to_string())
        }
        (Some(kind), None) => {
            eprintln!("tpf-load: starting the {} stack…", kind.as_str());
            let stack = Stack::start(kind, &opts).await?;
            let http = match transport {
                Some("http") => true,
                Some(_) => false,
                None => kind != StackKind::Memory,
            };
            let api = if http {
                let (base, _task) = tpf_bench::load::stack::serve(stack.router.clone()).await?;
                Api::http(&base, CONTROL_TOKEN)?
            } else {
                Api::InProcess {
                    router: stack.router.clone(),
                    token: CONTROL_TOKEN.to_string(),
                }
            };
            (Some(stack), api, kind.as_str().to_string())
        }
        (None, None) => return Err(LoadError::Usage("no stack".into())),
    };
    let load_before = load_average();
    let result = driver::run(&api, &config, &label).await?;
    let load_after = load_average();
    let budget = kind.and_then(budget);
    print_result(&label, api.transport_name(), &config, &result, budget);
    let report = json!({
        "stack": label,
        "config": {
            "executions": config.executions,
            "clients": config.clients,
            "transport": api.transport_name(),
            "target": m.get_one::<String>("target"),
            "pollMaxMs": config.poll_max.as_millis() as u64,
            "timeoutS": config.timeout.as_secs(),
            "pollers": (kind == Some(StackKind::Moto)).then_some(opts.pollers),
            "sweepEveryS": opts.sweep_every_s,
            "pipeline": driver::PIPELINE,
        },
        "machine": machine(),
        "loadAvgBefore": load_before,
        "loadAvgAfter": load_after,
        "budget": budget.map(|b| json!({"minExecutionsPerS": b})),
        "budgetMet": budget.map(|b| result.executions_per_s() >= b),
        "result": result.to_json(),
    });
    let out = m
        .get_one::<String>("out")
        .map(PathBuf::from)
        .unwrap_or_else(|| target_dir().join(format!("bench-load-{label}.json")));
    write_json(&out, &report).map_err(|source| LoadError::Write {
        path: out.display().to_string(),
        source,
    })?;
    println!("written: {}", out.display());
    drop(stack);
    Ok(())
}

/// The cargo target directory of this binary (`<target>/<profile>/tpf-load`),
/// or `target` when that cannot be told.
fn target_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.ancestors().nth(2).map(std::path::Path::to_path_buf))
        .unwrap_or_else(|| PathBuf::from("target"))
}

fn ms(s: &Option<Summary>, f: fn(&Summary) -> u64) -> String {
    s.as_ref()
        .map_or("-".into(), |s| format!("{:.2}", f(s) as f64 / 1e6))
}

fn print_result(
    label: &str,
    transport: &str,
    config: &LoadConfig,
    r: &LoadResult,
    budget: Option<f64>,
) {
    let verdict = match budget {
        Some(b) if r.executions_per_s() >= b => format!("budget ≥ {b} /s: met"),
        Some(b) => format!("budget ≥ {b} /s: MISSED"),
        None => "report only".to_string(),
    };
    println!(
        "{label} ({transport}, {} executions, {} clients): {:.1} executions/s in {:.1} s; {verdict}",
        config.executions,
        config.clients,
        r.executions_per_s(),
        r.wall.as_secs_f64()
    );
    println!(
        "  succeeded {}, failed {}, timeouts {}",
        r.succeeded, r.failed, r.timeouts
    );
    println!(
        "  submit ms: p50 {} p99 {} | complete ms: p50 {} p99 {} | submit→SUCCEEDED ms: p50 {} p99 {}",
        ms(&r.submit, |s| s.p50_ns),
        ms(&r.submit, |s| s.p99_ns),
        ms(&r.complete, |s| s.p50_ns),
        ms(&r.complete, |s| s.p99_ns),
        ms(&r.total, |s| s.p50_ns),
        ms(&r.total, |s| s.p99_ns),
    );
    for e in r.errors.iter().take(5) {
        println!("  error: {e}");
    }
}

/// `--stack all`: each stack in a child process of this binary, the other
/// arguments passed on (but `--out`: each child writes its default file).
fn run_all() -> Result<bool, LoadError> {
    let exe = std::env::current_exe().map_err(|e| LoadError::Setup(format!("own path: {e}")))?;
    let mut args: Vec<String> = Vec::new();
    let mut skip = false;
    for a in std::env::args().skip(1) {
        if skip {
            skip = false;
            continue;
        }
        // Each child picks its own stack and its own default result file.
        if a == "--stack" || a == "--out" {
            skip = true;
            continue;
        }
        if a.starts_with("--stack=") || a.starts_with("--out=") {
            continue;
        }
        args.push(a);
    }
    let mut ok = true;
    for stack in ["memory", "file", "moto"] {
        let status = std::process::Command::new(&exe)
            .arg("--stack")
            .arg(stack)
            .args(&args)
            .status()
            .map_err(|e| LoadError::Setup(format!("run {stack}: {e}")))?;
        ok &= status.success();
    }
    Ok(ok)
}

fn main() {
    let m = command().get_matches();
    let stack = m
        .get_one::<String>("stack")
        .map_or("memory", String::as_str);
    if stack == "all" && m.get_one::<String>("target").is_none() {
        match run_all() {
            Ok(true) => return,
            Ok(false) => std::process::exit(1),
            Err(e) => {
                eprintln!("tpf-load: {e}");
                std::process::exit(2);
            }
        }
    }
    let kind = StackKind::parse(stack);
    if kind == Some(StackKind::Moto) {
        // The functions' AWS clients take credentials and region from the
        // SDK's default chain: give them moto's test values, before any
        // thread starts.
        for (k, v) in [
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_REGION", "us-east-1"),
        ] {
            if std::env::var_os(k).is_none() {
                std::env::set_var(k, v);
            }
        }
    }
    if std::env::var_os("RUST_LOG").is_some() {
        tpf_core::telemetry::init();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("tpf-load: runtime: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = runtime.block_on(run_one(kind, &m)) {
        eprintln!("tpf-load: {e}");
        std::process::exit(2);
    }
}
