//! `tpf-local-aws provision|pump`: see the library (`tpf_local_aws`) and
//! `infra/run-local-aws.sh`, which runs both.
//!
//! ```text
//! tpf-local-aws provision <template.yaml> <stack> <env-file>
//! tpf-local-aws pump <template.yaml> <stack> <invoke-base-url> [schedule-seconds]
//! ```
//! The AWS endpoint, region and credentials come from the standard
//! `AWS_*` variables; local secret values from the process environment.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use tpf_local_aws::{provision::Clients, template::Template};

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let sdk = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
    let region = sdk
        .region()
        .map(|r| r.to_string())
        .unwrap_or_else(|| "us-east-1".into());
    let clients = Clients::new(&sdk);
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        ["provision", template, stack, env_file] => match Template::load(Path::new(template)) {
            Ok(t) => {
                let values: BTreeMap<String, String> = std::env::vars().collect();
                match tpf_local_aws::provision_env(&t, &clients, stack, &region, &values).await {
                    Ok(text) => std::fs::write(env_file, text).map_err(|e| e.to_string()),
                    Err(e) => Err(e.to_string()),
                }
            }
            Err(e) => Err(e.to_string()),
        },
        ["pump", template, stack, base, rest @ ..] => {
            let every = rest.first().and_then(|s| s.parse().ok());
            match Template::load(Path::new(template)) {
                Ok(t) => tpf_local_aws::run_event_sources(&t, &clients, stack, &region, base, every)
                    .await
                    .map_err(|e| e.to_string()),
                Err(e) => Err(e.to_string()),
            }
        }
        _ => Err("usage: tpf-local-aws provision <template> <stack> <env-file> | pump <template> <stack> <invoke-base> [schedule-seconds]".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("tpf-local-aws: {e}");
            ExitCode::FAILURE
        }
    }
}
