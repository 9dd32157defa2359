//! `dynamo` providers of the release and worker registries
//! (`RELEASES.md` §5, §6.6) on DynamoDB.
//!
//! Both tables have the keys `registry_key` (S, hash) =
//! `<tenantId>#<pipelineId>` and `registry_sort` (S, range); the item kinds
//! are told apart by the disjoint prefixes of `registry_sort` (`release#`,
//! `activation#`, `worker#`, `event#`), so both registries may share one
//! physical table. Every read is strongly consistent and follows
//! `LastEvaluatedKey`; every write is conditional.
//!
//! Errors: a failed condition (or a transaction cancelled by one, or by a
//! conflicting transaction) is the port's "lost" outcome; everything else
//! the SDK reports — throttling after its retries, 5xx, timeouts, dispatch
//! failures, validation errors, a missing table — is
//! [`StoreError::Unavailable`] (503).

mod releases;
mod workers;

pub mod awaits;
pub mod executions;
pub mod indexes;
pub mod payloads;

pub use releases::DynamoReleaseRegistry;
pub use workers::DynamoWorkerRegistry;

pub use awaits::DynamoAwaitStore;
pub use executions::DynamoExecutionStore;
pub use payloads::DynamoStateSettings;

use std::collections::HashMap;
use std::fmt::Display;
use std::str::FromStr;

use aws_sdk_dynamodb::error::{DisplayErrorContext, SdkError};
use aws_sdk_dynamodb::operation::query::builders::QueryFluentBuilder;
use aws_sdk_dynamodb::types::AttributeValue;

use crate::error::StoreError;

/// One DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// Hash key attribute of both tables.
pub(crate) const PK: &str = "registry_key";
/// Range key attribute of both tables.
pub(crate) const SK: &str = "registry_sort";

/// Most items asked for in one `Query` page.
const PAGE_LIMIT: usize = 1_000;

/// `registry_key` of a pipeline: `<tenantId>#<pipelineId>` (unambiguous,
/// the id rule excludes `#`).
pub(crate) fn registry_key(tenant: &str, pipeline: &str) -> String {
    format!("{tenant}#{pipeline}")
}

/// True when `id` can be part of a key: non-empty and without `#` (which
/// would make `registry_key`/`registry_sort` ambiguous).
pub(crate) fn is_key_part(id: &str) -> bool {
    !id.is_empty() && !id.contains('#')
}

/// Refuses a write whose ids cannot be keys (the actions never pass one).
pub(crate) fn require_key_part(what: &str, id: &str) -> Result<(), StoreError> {
    if is_key_part(id) {
        Ok(())
    } else {
        Err(StoreError::Unavailable(format!(
            "{what} must be non-empty and must not contain '#'"
        )))
    }
}

/// A number zero-padded to 19 digits (sortable as a string).
pub(crate) fn pad19(n: u64) -> String {
    format!("{n:019}")
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn n(value: impl Display) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn malformed(name: &str) -> StoreError {
    StoreError::Unavailable(format!("a stored item has no valid attribute {name}"))
}

/// A required S attribute.
pub(crate) fn get_s(item: &Item, name: &str) -> Result<String, StoreError> {
    match item.get(name) {
        Some(AttributeValue::S(v)) => Ok(v.clone()),
        _ => Err(malformed(name)),
    }
}

/// An optional S attribute.
pub(crate) fn opt_s(item: &Item, name: &str) -> Result<Option<String>, StoreError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::S(v)) => Ok(Some(v.clone())),
        Some(_) => Err(malformed(name)),
    }
}

/// A required N attribute.
pub(crate) fn get_n<T: FromStr>(item: &Item, name: &str) -> Result<T, StoreError> {
    match item.get(name) {
        Some(AttributeValue::N(v)) => v.parse().map_err(|_| malformed(name)),
        _ => Err(malformed(name)),
    }
}

/// A required BOOL attribute.
pub(crate) fn get_bool(item: &Item, name: &str) -> Result<bool, StoreError> {
    match item.get(name) {
        Some(AttributeValue::Bool(v)) => Ok(*v),
        _ => Err(malformed(name)),
    }
}

/// The `registry_sort` of an item ("" when missing).
pub(crate) fn sort_of(item: &Item) -> &str {
    match item.get(SK) {
        Some(AttributeValue::S(v)) => v,
        _ => "",
    }
}

/// Any SDK failure other than the conditional ones the caller handles.
pub(crate) fn unavailable<E, R>(operation: &str, err: SdkError<E, R>) -> StoreError
where
    E: std::error::Error + 'static,
    R: std::fmt::Debug,
{
    StoreError::Unavailable(format!(
        "DynamoDB {operation} failed: {}",
        DisplayErrorContext(&err)
    ))
}

/// A request that could not be built (a required member missing: a bug).
pub(crate) fn build_error(err: aws_sdk_dynamodb::error::BuildError) -> StoreError {
    StoreError::Unavailable(format!("DynamoDB request could not be built: {err}"))
}

/// How a cancelled `TransactWriteItems` ended, from its reasons (one per
/// action, in request order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// The condition of the action at this index failed.
    Condition(usize),
    /// Another transaction touched one of the items.
    Conflict,
    /// Anything else (throttling, validation, …).
    Other,
}

/// Classifies the cancellation reasons; the first failed condition wins.
pub(crate) fn cancelled(reasons: &[aws_sdk_dynamodb::types::CancellationReason]) -> Cancelled {
    let codes: Vec<&str> = reasons.iter().map(|r| r.code().unwrap_or("None")).collect();
    if let Some(i) = codes.iter().position(|c| *c == "ConditionalCheckFailed") {
        Cancelled::Condition(i)
    } else if codes.contains(&"TransactionConflict") {
        Cancelled::Conflict
    } else {
        Cancelled::Other
    }
}

/// Runs `query` page after page (following `LastEvaluatedKey`) and keeps
/// what `keep` returns until `max` values are collected or the items end.
/// Each page asks for one more item than still missing, so a caller
/// skipping one item (an exclusive start) still fills a page at once.
pub(crate) async fn query_collect<T>(
    query: QueryFluentBuilder,
    max: usize,
    mut keep: impl FnMut(Item) -> Result<Option<T>, StoreError>,
) -> Result<Vec<T>, StoreError> {
    let mut out = Vec::new();
    if max == 0 {
        return Ok(out);
    }
    let mut start: Option<Item> = None;
    loop {
        let want = max
            .saturating_sub(out.len())
            .saturating_add(1)
            .min(PAGE_LIMIT);
        let page = query
            .clone()
            .consistent_read(true)
            .limit(want as i32)
            .set_exclusive_start_key(start.take())
            .send()
            .await
            .map_err(|e| unavailable("Query", e))?;
        for item in page.items.unwrap_or_default() {
            if let Some(value) = keep(item)? {
                out.push(value);
                if out.len() == max {
                    return Ok(out);
                }
            }
        }
        match page.last_evaluated_key {
            Some(key) if !key.is_empty() => start = Some(key),
            _ => return Ok(out),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_sdk_dynamodb::types::CancellationReason;

    fn reason(code: &str) -> CancellationReason {
        CancellationReason::builder().code(code).build()
    }

    #[test]
    fn cancellation_reasons_are_classified() {
        assert_eq!(
            cancelled(&[reason("None"), reason("ConditionalCheckFailed")]),
            Cancelled::Condition(1)
        );
        assert_eq!(
            cancelled(&[
                reason("ConditionalCheckFailed"),
                reason("ConditionalCheckFailed")
            ]),
            Cancelled::Condition(0)
        );
        assert_eq!(
            cancelled(&[reason("TransactionConflict"), reason("None")]),
            Cancelled::Conflict
        );
        assert_eq!(
            cancelled(&[reason("ThrottlingError"), reason("None")]),
            Cancelled::Other
        );
        assert_eq!(cancelled(&[]), Cancelled::Other);
    }

    #[test]
    fn keys_and_padding() {
        assert_eq!(registry_key("acme", "orders"), "acme#orders");
        assert_eq!(pad19(42), "0000000000000000042");
        assert!(is_key_part("a.b"));
        assert!(!is_key_part("a#b"));
        assert!(!is_key_part(""));
    }
}
