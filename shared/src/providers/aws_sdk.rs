//! How every AWS SDK client of tpf-lambda is configured: one place that
//! picks the SDK's HTTPS client, so no binary links a second TLS stack.
//!
//! The SDK's `default-https-client` feature brings rustls with the
//! `aws-lc-rs` crypto provider (a C library of several MB in every
//! bootstrap). The functions instead give the SDK a rustls client with the
//! `ring` provider, the same crypto the REST worker transport uses
//! ([`install_tls_crypto`]), which keeps each bootstrap within the size
//! budget of BENCHMARKS.md. Tests and tools load their SDK configuration
//! here as well, so they exercise the same client.

use aws_smithy_http_client::tls::{self, rustls_provider::CryptoMode};

/// The SDK's default configuration chain (environment, profile files,
/// container/instance credentials, `AWS_ENDPOINT_URL*`) with the latest
/// behaviour version and the ring-based HTTPS client; callers may override
/// region, endpoint or credentials before `load()`.
pub fn config_loader() -> aws_config::ConfigLoader {
    aws_config::defaults(aws_config::BehaviorVersion::latest()).http_client(https_client())
}

/// [`config_loader`] loaded as is.
pub async fn load_config() -> aws_config::SdkConfig {
    config_loader().load().await
}

/// The SDK's hyper client over rustls with the ring crypto provider and
/// the platform's root certificates.
pub fn https_client() -> aws_smithy_runtime_api::client::http::SharedHttpClient {
    aws_smithy_http_client::Builder::new()
        .tls_provider(tls::Provider::Rustls(CryptoMode::Ring))
        .build_https()
}

/// Makes ring the process-wide rustls crypto provider, which reqwest (built
/// without a provider of its own) requires before a client is built.
/// Idempotent: a provider already installed is kept.
pub fn install_tls_crypto() {
    // Err means a provider is already installed, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDK loads with our HTTPS client and no default client feature.
    #[tokio::test]
    async fn the_sdk_configuration_carries_the_ring_https_client() {
        let config = config_loader()
            .region(aws_config::Region::new("eu-west-1"))
            .load()
            .await;
        assert!(config.http_client().is_some());
        assert_eq!(config.region().map(|r| r.as_ref()), Some("eu-west-1"));
    }

    /// reqwest without a built-in provider panics at `build()` unless one
    /// is installed; after `install_tls_crypto` it builds.
    #[test]
    fn reqwest_builds_once_the_crypto_provider_is_installed() {
        install_tls_crypto();
        install_tls_crypto();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
        reqwest::Client::builder().build().expect("reqwest client");
    }
}
