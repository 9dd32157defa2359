//! Configuration (stub, being written).

/// A secret reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretRef {
    Env(String),
    Ssm(String),
    SecretsManager(String),
}
