//! AUTH-07 against moto (`support/moto.rs`): `ssm:` and `secretsmanager:`
//! references resolve through the secret port (`API.md` §1.5) — SSM
//! `GetParameter` with decryption, Secrets Manager `SecretString` — behind
//! [`CachedSecret`]: trimmed, cached, failures not cached, binary and empty
//! secrets unresolvable.

#[path = "integration/support/moto.rs"]
mod moto;

use std::sync::Arc;

use aws_sdk_secretsmanager::primitives::Blob;
use aws_sdk_ssm::types::ParameterType;
use tpf_core::config::{SecretRef, SecretSource};
use tpf_core::ports::SecretResolver;
use tpf_core::providers::aws_secrets::{
    AwsSecretResolver, SecretsManagerSecretResolver, SsmSecretResolver,
};
use tpf_core::providers::secrets::CachedSecret;

struct Env {
    ssm: aws_sdk_ssm::Client,
    sm: aws_sdk_secretsmanager::Client,
    resolver: Arc<AwsSecretResolver>,
}

async fn env() -> Env {
    let sdk = moto::sdk_config().await;
    Env {
        ssm: aws_sdk_ssm::Client::new(&sdk),
        sm: aws_sdk_secretsmanager::Client::new(&sdk),
        resolver: Arc::new(AwsSecretResolver::new(&sdk)),
    }
}

impl Env {
    fn cached(&self, reference: SecretRef) -> CachedSecret {
        CachedSecret::new(SecretSource::Reference(reference), self.resolver.clone())
    }

    async fn put_parameter(&self, name: &str, value: &str, overwrite: bool) {
        self.ssm
            .put_parameter()
            .name(name)
            .value(value)
            .r#type(ParameterType::SecureString)
            .overwrite(overwrite)
            .send()
            .await
            .unwrap();
    }
}

#[tokio::test]
async fn auth07_ssm_secure_string_resolves_decrypted_and_trimmed() {
    let env = env().await;
    let name = format!("/tpf/{}/admin-token", moto::unique("t"));
    env.put_parameter(&name, "  s3cr3t-admin \n", false).await;
    let secret = env.cached(SecretRef::Ssm(name.clone()));
    assert_eq!(secret.get().await.as_deref(), Some("s3cr3t-admin"));
    // Cached for 300 s: a rotation is seen only after that.
    env.put_parameter(&name, "rotated", true).await;
    assert_eq!(secret.get().await.as_deref(), Some("s3cr3t-admin"));
    // The resolver itself reads the current value.
    assert_eq!(
        env.resolver.resolve(&SecretRef::Ssm(name)).await.as_deref(),
        Some("rotated")
    );
}

#[tokio::test]
async fn auth07_secrets_manager_secret_string_resolves_by_name_and_arn() {
    let env = env().await;
    let name = moto::unique("tpf/cp-token");
    let created = env
        .sm
        .create_secret()
        .name(&name)
        .secret_string("cp-token-value\n")
        .send()
        .await
        .unwrap();
    let by_name = env.cached(SecretRef::SecretsManager(name.clone()));
    assert_eq!(by_name.get().await.as_deref(), Some("cp-token-value"));
    let arn = created.arn().unwrap().to_owned();
    let by_arn = env.cached(SecretRef::SecretsManager(arn));
    assert_eq!(by_arn.get().await.as_deref(), Some("cp-token-value"));
}

#[tokio::test]
async fn auth07_missing_references_fail_uncached_until_they_appear() {
    let env = env().await;
    let name = format!("/tpf/{}/late", moto::unique("t"));
    let ssm = env.cached(SecretRef::Ssm(name.clone()));
    assert_eq!(ssm.get().await, None);
    env.put_parameter(&name, "arrived", false).await;
    assert_eq!(ssm.get().await.as_deref(), Some("arrived"));

    let secret_name = moto::unique("tpf/late");
    let sm = env.cached(SecretRef::SecretsManager(secret_name.clone()));
    assert_eq!(sm.get().await, None);
    env.sm
        .create_secret()
        .name(&secret_name)
        .secret_string("arrived too")
        .send()
        .await
        .unwrap();
    assert_eq!(sm.get().await.as_deref(), Some("arrived too"));
}

#[tokio::test]
async fn auth07_binary_and_blank_secrets_are_unresolvable() {
    let env = env().await;
    let binary = moto::unique("tpf/binary");
    env.sm
        .create_secret()
        .name(&binary)
        .secret_binary(Blob::new(b"\x00\x01token".to_vec()))
        .send()
        .await
        .unwrap();
    assert_eq!(
        env.resolver
            .resolve(&SecretRef::SecretsManager(binary.clone()))
            .await,
        None
    );
    assert_eq!(
        env.cached(SecretRef::SecretsManager(binary)).get().await,
        None
    );

    let blank = moto::unique("tpf/blank");
    env.sm
        .create_secret()
        .name(&blank)
        .secret_string("  \n")
        .send()
        .await
        .unwrap();
    assert_eq!(
        env.cached(SecretRef::SecretsManager(blank)).get().await,
        None
    );
}

#[tokio::test]
async fn auth07_each_scheme_goes_to_its_resolver() {
    let env = env().await;
    std::env::set_var("TPF_TEST_AWS_SECRETS_ENV", " from-env ");
    assert_eq!(
        env.cached(SecretRef::Env("TPF_TEST_AWS_SECRETS_ENV".into()))
            .get()
            .await
            .as_deref(),
        Some("from-env")
    );
    // The single-service resolvers answer only their own scheme.
    let name = format!("/tpf/{}/only-ssm", moto::unique("t"));
    env.put_parameter(&name, "ssm-value", false).await;
    let ssm = SsmSecretResolver::new(env.ssm.clone());
    let sm = SecretsManagerSecretResolver::new(env.sm.clone());
    assert_eq!(
        ssm.resolve(&SecretRef::Ssm(name.clone())).await.as_deref(),
        Some("ssm-value")
    );
    assert_eq!(sm.resolve(&SecretRef::Ssm(name.clone())).await, None);
    let chained = AwsSecretResolver::with_resolvers(ssm, sm);
    assert_eq!(
        chained.resolve(&SecretRef::Ssm(name)).await.as_deref(),
        Some("ssm-value")
    );
}

#[tokio::test]
async fn auth07_from_env_loads_the_sdk_configuration_on_first_aws_use() {
    // `from_env` reads the standard AWS variables; point them at moto.
    let endpoint = moto::moto().endpoint.clone();
    std::env::set_var("AWS_ENDPOINT_URL", &endpoint);
    std::env::set_var("AWS_REGION", "us-east-1");
    std::env::set_var("AWS_ACCESS_KEY_ID", "testing");
    std::env::set_var("AWS_SECRET_ACCESS_KEY", "testing");
    let env = env().await;
    let name = format!("/tpf/{}/lazy", moto::unique("t"));
    env.put_parameter(&name, "lazy-value", false).await;
    let lazy = AwsSecretResolver::from_env();
    assert_eq!(
        lazy.resolve(&SecretRef::Ssm(name)).await.as_deref(),
        Some("lazy-value")
    );
}
