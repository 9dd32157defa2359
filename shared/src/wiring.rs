//! Building a function's providers and router from [`Config`], once per
//! cold start. The binaries in `functions/` call [`run_http_function`] and
//! nothing else.

use std::sync::Arc;

use crate::actions::{ReleaseDeps, WorkerDeps};
use crate::config::{Config, ConfigError, FunctionName, RegistryProvider, StorageProvider};
use crate::http::{router, AppState};
use crate::ports::{
    ArtifactStore, Clock, ReleaseRegistry, SecretResolver, SystemClock, WorkerRegistry,
};
use crate::providers::file::{
    self, FileReleaseRegistry, FileWorkerRegistry, LocalArtifactStore, LocalLocationReader,
};
use crate::providers::memory::{MemoryReleaseRegistry, MemoryWorkerRegistry};
use crate::providers::secrets::{CachedSecret, EnvSecretResolver};

/// Builds the state of `config.function` with the real clock and the
/// `env:` secret resolver.
pub fn build_state(config: &Config) -> Result<AppState, ConfigError> {
    build_state_with(config, Arc::new(SystemClock), Arc::new(EnvSecretResolver))
}

/// [`build_state`] with an injected clock and secret resolver (tests).
pub fn build_state_with(
    config: &Config,
    clock: Arc<dyn Clock>,
    secrets: Arc<dyn SecretResolver>,
) -> Result<AppState, ConfigError> {
    let secret = |s: &Option<crate::config::SecretSource>| {
        s.clone().map(|s| CachedSecret::new(s, secrets.clone()))
    };
    let releases = match config.function {
        FunctionName::ReleaseAdmin => {
            file::beneath::check_openat2().map_err(ConfigError)?;
            let registry: Arc<dyn ReleaseRegistry> = match config.releases_registry_provider {
                RegistryProvider::Memory => Arc::new(MemoryReleaseRegistry::new()),
                _ => Arc::new(FileReleaseRegistry::new(
                    config.releases_storage_root.clone(),
                )),
            };
            let store: Arc<dyn ArtifactStore> = match config.releases_storage_provider {
                StorageProvider::Local | StorageProvider::S3 => Arc::new(LocalArtifactStore::new(
                    config.releases_storage_root.clone(),
                )),
            };
            Some(ReleaseDeps {
                registry,
                store,
                locations: Arc::new(LocalLocationReader),
                clock: clock.clone(),
                roots: config.registration_roots.clone(),
                max_artifact_bytes: config.max_artifact_bytes,
            })
        }
        _ => None,
    };
    let workers = match config.function {
        FunctionName::WorkerLifecycle => {
            let registry: Arc<dyn WorkerRegistry> = match config.worker_lifecycle_provider {
                RegistryProvider::Memory => Arc::new(MemoryWorkerRegistry::new()),
                _ => Arc::new(FileWorkerRegistry::new(
                    config.worker_lifecycle_root.clone(),
                )),
            };
            Some(WorkerDeps {
                registry,
                clock: clock.clone(),
                stale_after_ms: config.worker_stale_after_ms,
            })
        }
        _ => None,
    };
    Ok(AppState {
        function: config.function,
        control_plane_enabled: config.control_plane_enabled,
        admin_enabled: config.admin_enabled,
        control_plane_token: secret(&config.control_plane_token),
        admin_token: secret(&config.admin_token),
        allowed_tenants: config.allowed_tenants.clone(),
        releases,
        workers,
    })
}

/// The whole `main` of an HTTP function: logging, configuration,
/// providers, then `lambda_http::run` with the router.
pub async fn run_http_function(function: FunctionName) -> Result<(), lambda_http::Error> {
    crate::telemetry::init();
    let state = Config::from_env(function)
        .and_then(|c| build_state(&c))
        .inspect_err(|e| {
            tracing::error!(function = function.as_str(), error = %e, "start-up failed");
        })?;
    lambda_http::run(router(Arc::new(state))).await
}
