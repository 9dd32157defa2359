//! `restaurant-worker [--listen ADDR] [--print-registration]`
//!
//! Serves the restaurant-approval REST transition worker, or prints the body
//! to register it at the worker-lifecycle API and exits.
//!
//! Environment: `RESTAURANT_WORKER_ADDR` (default `127.0.0.1:8181`),
//! `TPF_WORKER_SHARED_SECRET` or `TPF_WORKER_SHARED_SECRET_REF=env:NAME`,
//! `TPF_WORKER_SIGNATURE_TOLERANCE` (default `PT2M`),
//! `RESTAURANT_AWAIT_TIMEOUT` (default `PT30M`), `RESTAURANT_RELEASE_VERSION`,
//! `RESTAURANT_CONTRACT_VERSION`, `RESTAURANT_WORKER_ID` (default
//! `kitchen-1`), `RESTAURANT_WORKER_ENDPOINT` (default `http://<listen>`),
//! `RUST_LOG`.

use restaurant_worker::WorkerConfig;

const USAGE: &str = "usage: restaurant-worker [--listen ADDR] [--print-registration]";

fn main() {
    let mut listen: Option<String> = None;
    let mut print_registration = false;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--listen" => match args.next() {
                Some(addr) if !addr.trim().is_empty() => listen = Some(addr.trim().to_string()),
                _ => fail_usage("--listen needs an address"),
            },
            a if a.starts_with("--listen=") => {
                listen = Some(a["--listen=".len()..].trim().to_string())
            }
            "--print-registration" => print_registration = true,
            "-h" | "--help" => {
                println!("{USAGE}");
                return;
            }
            other => fail_usage(&format!("unknown argument {other}")),
        }
    }

    let mut config = match WorkerConfig::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("restaurant-worker: {e}");
            std::process::exit(2);
        }
    };
    if let Some(addr) = listen {
        config.listen = addr;
    }

    if print_registration {
        println!("{}", config.registration_body());
        return;
    }

    tpf_core::telemetry::init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("restaurant-worker: runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(serve(config)) {
        tracing::error!(error = %e, "worker stopped");
        eprintln!("restaurant-worker: {e}");
        std::process::exit(1);
    }
}

async fn serve(config: WorkerConfig) -> std::io::Result<()> {
    let listener = tokio::net::TcpListener::bind(&config.listen).await?;
    let local = listener.local_addr()?;
    let secret_configured = config.secret.resolve().is_some();
    tracing::info!(
        listen = %local,
        pipeline_id = %config.identity.pipeline_id,
        contract_version = %config.identity.contract_version,
        release_version = %config.identity.release_version,
        artifact_id = %config.identity.artifact_id,
        artifact_digest = %config.identity.artifact_digest,
        signature_tolerance_ms = config.signature_tolerance_ms,
        await_timeout_ms = config.await_timeout_ms,
        secret_resolvable = secret_configured,
        "restaurant worker listening"
    );
    if !secret_configured {
        tracing::warn!("worker shared secret is not resolvable: every call will answer 503");
    }
    axum::serve(listener, restaurant_worker::router(config)).await
}

fn fail_usage(message: &str) -> ! {
    eprintln!("restaurant-worker: {message}\n{USAGE}");
    std::process::exit(2);
}
