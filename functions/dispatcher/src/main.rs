//! The `dispatcher` Lambda function: wiring only, all logic is in `tpf-core`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    tpf_core::wiring::run_dispatcher().await
}
