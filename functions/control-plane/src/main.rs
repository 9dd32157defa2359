//! The `control-plane` Lambda function: wiring only, all logic is in `tpf-core`.

use tpf_core::config::FunctionName;

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    tpf_core::wiring::run_http_function(FunctionName::ControlPlane).await
}
