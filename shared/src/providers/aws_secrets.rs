//! `ssm:` and `secretsmanager:` secret references (`API.md` §1.5,
//! `EXECUTION.md` AUTH-07): SSM `GetParameter` with decryption and Secrets
//! Manager `GetSecretValue` (`SecretString` only; a binary secret is
//! unresolvable). [`AwsSecretResolver`] dispatches every scheme, `env:` to
//! [`EnvSecretResolver`]; wrap it in [`CachedSecret`](super::secrets::CachedSecret)
//! for the 300 s cache, trimming and the empty-is-unresolvable rule.
//!
//! Every failure resolves to `None` and is logged with the reference's name
//! and the error, never a value.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use tokio::sync::OnceCell;

use super::secrets::EnvSecretResolver;
use crate::config::SecretRef;
use crate::ports::SecretResolver;

/// Resolves `ssm:<name>` with `GetParameter(WithDecryption=true)`.
#[derive(Debug, Clone)]
pub struct SsmSecretResolver {
    client: aws_sdk_ssm::Client,
}

impl SsmSecretResolver {
    pub fn new(client: aws_sdk_ssm::Client) -> Self {
        Self { client }
    }

    /// The parameter's (decrypted) value.
    pub async fn parameter(&self, name: &str) -> Option<String> {
        match self
            .client
            .get_parameter()
            .name(name)
            .with_decryption(true)
            .send()
            .await
        {
            Ok(out) => {
                let value = out.parameter().and_then(|p| p.value()).map(str::to_owned);
                if value.is_none() {
                    tracing::warn!(reference = %format!("ssm:{name}"), "SSM parameter has no value");
                }
                value
            }
            Err(e) => {
                tracing::warn!(
                    reference = %format!("ssm:{name}"),
                    error = %aws_sdk_ssm::error::DisplayErrorContext(&e),
                    "cannot resolve SSM parameter"
                );
                None
            }
        }
    }
}

#[async_trait]
impl SecretResolver for SsmSecretResolver {
    async fn resolve(&self, reference: &SecretRef) -> Option<String> {
        match reference {
            SecretRef::Ssm(name) => self.parameter(name).await,
            _ => None,
        }
    }
}

/// Resolves `secretsmanager:<arn-or-name>` with `GetSecretValue`.
#[derive(Debug, Clone)]
pub struct SecretsManagerSecretResolver {
    client: aws_sdk_secretsmanager::Client,
}

impl SecretsManagerSecretResolver {
    pub fn new(client: aws_sdk_secretsmanager::Client) -> Self {
        Self { client }
    }

    /// The secret's `SecretString`; `None` for a binary secret.
    pub async fn secret_string(&self, id: &str) -> Option<String> {
        match self.client.get_secret_value().secret_id(id).send().await {
            Ok(out) => {
                let value = out.secret_string().map(str::to_owned);
                if value.is_none() {
                    tracing::warn!(
                        reference = %format!("secretsmanager:{id}"),
                        "secret has no SecretString (binary secrets are not supported)"
                    );
                }
                value
            }
            Err(e) => {
                tracing::warn!(
                    reference = %format!("secretsmanager:{id}"),
                    error = %DisplayErrorContext(&e),
                    "cannot resolve Secrets Manager secret"
                );
                None
            }
        }
    }
}

#[async_trait]
impl SecretResolver for SecretsManagerSecretResolver {
    async fn resolve(&self, reference: &SecretRef) -> Option<String> {
        match reference {
            SecretRef::SecretsManager(id) => self.secret_string(id).await,
            _ => None,
        }
    }
}

/// Both AWS resolvers.
#[derive(Debug, Clone)]
struct AwsClients {
    ssm: SsmSecretResolver,
    secrets_manager: SecretsManagerSecretResolver,
}

impl AwsClients {
    fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            ssm: SsmSecretResolver::new(aws_sdk_ssm::Client::new(sdk)),
            secrets_manager: SecretsManagerSecretResolver::new(
                aws_sdk_secretsmanager::Client::new(sdk),
            ),
        }
    }
}

/// Every reference scheme: `env:` from the environment, `ssm:` and
/// `secretsmanager:` from AWS. Built from an SDK configuration, or with
/// [`AwsSecretResolver::from_env`], which loads the default configuration
/// only when the first AWS reference is resolved (a function whose
/// references are all `env:` never touches AWS).
#[derive(Debug, Default)]
pub struct AwsSecretResolver {
    clients: OnceCell<AwsClients>,
}

/// The chain of resolvers by scheme (another name for [`AwsSecretResolver`]).
pub type ChainSecretResolver = AwsSecretResolver;

impl AwsSecretResolver {
    /// Clients built now from `sdk`.
    pub fn new(sdk: &aws_config::SdkConfig) -> Self {
        Self {
            clients: OnceCell::new_with(Some(AwsClients::new(sdk))),
        }
    }

    /// Clients from explicit resolvers (tests, custom endpoints).
    pub fn with_resolvers(
        ssm: SsmSecretResolver,
        secrets_manager: SecretsManagerSecretResolver,
    ) -> Self {
        Self {
            clients: OnceCell::new_with(Some(AwsClients {
                ssm,
                secrets_manager,
            })),
        }
    }

    /// Clients from [`crate::providers::aws_sdk::load_config`] on first AWS use.
    pub fn from_env() -> Self {
        Self::default()
    }

    async fn clients(&self) -> &AwsClients {
        self.clients
            .get_or_init(|| async {
                let sdk = crate::providers::aws_sdk::load_config().await;
                AwsClients::new(&sdk)
            })
            .await
    }
}

#[async_trait]
impl SecretResolver for AwsSecretResolver {
    async fn resolve(&self, reference: &SecretRef) -> Option<String> {
        match reference {
            SecretRef::Env(_) => EnvSecretResolver.resolve(reference).await,
            SecretRef::Ssm(name) => self.clients().await.ssm.parameter(name).await,
            SecretRef::SecretsManager(id) => {
                self.clients().await.secrets_manager.secret_string(id).await
            }
        }
    }
}
