//! Secret resolution: the `env:` resolver and the per-process cache that
//! every token and shared secret goes through (`API.md` §1.5).
//! `ssm:` and `secretsmanager:` resolvers arrive with the AWS providers.

use async_trait::async_trait;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

use crate::config::{SecretRef, SecretSource};
use crate::ports::SecretResolver;

/// How long a resolved reference is reused before it is resolved again.
pub const SECRET_CACHE_TTL: Duration = Duration::from_secs(300);

/// Resolves `env:NAME` from the process environment. Other schemes are not
/// resolvable by this resolver (they need the AWS secret providers).
#[derive(Debug, Default, Clone, Copy)]
pub struct EnvSecretResolver;

#[async_trait]
impl SecretResolver for EnvSecretResolver {
    async fn resolve(&self, reference: &SecretRef) -> Option<String> {
        match reference {
            SecretRef::Env(name) => std::env::var(name).ok(),
            SecretRef::Ssm(_) | SecretRef::SecretsManager(_) => {
                tracing::warn!("ssm:/secretsmanager: references need the AWS secret providers");
                None
            }
        }
    }
}

/// A token or secret, resolved lazily on first use and cached for
/// [`SECRET_CACHE_TTL`]; failures are not cached.
pub struct CachedSecret {
    source: SecretSource,
    resolver: Arc<dyn SecretResolver>,
    cached: Mutex<Option<(String, Instant)>>,
}

impl CachedSecret {
    pub fn new(source: SecretSource, resolver: Arc<dyn SecretResolver>) -> Self {
        Self {
            source,
            resolver,
            cached: Mutex::new(None),
        }
    }

    /// The current value, trimmed; `None` when it cannot be resolved now
    /// (an empty value counts as unresolvable).
    pub async fn get(&self) -> Option<String> {
        let reference = match &self.source {
            SecretSource::Literal(v) => {
                return Some(v.trim().to_string()).filter(|v| !v.is_empty())
            }
            SecretSource::Reference(r) => r,
        };
        let mut cached = self.cached.lock().await;
        if let Some((value, at)) = cached.as_ref() {
            if at.elapsed() < SECRET_CACHE_TTL {
                return Some(value.clone());
            }
        }
        let value = self
            .resolver
            .resolve(reference)
            .await
            .map(|v| v.trim().to_string());
        match value {
            Some(v) if !v.is_empty() => {
                *cached = Some((v.clone(), Instant::now()));
                Some(v)
            }
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Fails until `fail_until` calls were made, then answers "tok".
    struct Flaky {
        calls: AtomicUsize,
        fail_until: usize,
    }

    #[async_trait]
    impl SecretResolver for Flaky {
        async fn resolve(&self, _: &SecretRef) -> Option<String> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst);
            (n >= self.fail_until).then(|| " tok ".to_string())
        }
    }

    #[tokio::test]
    async fn failures_are_not_cached_and_successes_are() {
        let flaky = Arc::new(Flaky {
            calls: AtomicUsize::new(0),
            fail_until: 1,
        });
        let s = CachedSecret::new(
            SecretSource::Reference(SecretRef::Ssm("/x".into())),
            flaky.clone(),
        );
        assert_eq!(s.get().await, None);
        assert_eq!(s.get().await.as_deref(), Some("tok"));
        assert_eq!(s.get().await.as_deref(), Some("tok"));
        assert_eq!(flaky.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn env_references_resolve_from_the_environment() {
        std::env::set_var("TPF_TEST_SECRET_FOR_ENV_RESOLVER", "value");
        let s = CachedSecret::new(
            SecretSource::Reference(SecretRef::Env("TPF_TEST_SECRET_FOR_ENV_RESOLVER".into())),
            Arc::new(EnvSecretResolver),
        );
        assert_eq!(s.get().await.as_deref(), Some("value"));
        let missing = CachedSecret::new(
            SecretSource::Reference(SecretRef::Env("TPF_TEST_SECRET_THAT_IS_NOT_SET".into())),
            Arc::new(EnvSecretResolver),
        );
        assert_eq!(missing.get().await, None);
    }
}
