//! Names of the secondary indexes the `dynamo` providers query. The tables
//! themselves are defined once, in `template.yaml` (`ReleaseTable`,
//! `WorkerTable`, `ExecutionTable`, `AwaitTable`); tests and the local AWS
//! mode create them from it (`tools/local-aws`), and
//! `tests/tests/engine/template.rs` checks the template against the spec
//! (`RELEASES.md` §5, `EXECUTION.md` §10.5).

/// The release table's local secondary index (`RELEASES.md` §5).
pub const CREATED_INDEX: &str = "created_index";
/// Range key of [`CREATED_INDEX`].
pub const CREATED_SORT: &str = "created_sort";

/// Due executions (`EXECUTION.md` §5.4 phase 2): hash `dp`, range `ds`, KEYS_ONLY.
pub const DUE_INDEX: &str = "due-index";
/// The execution list (`API.md` §3.1): hash `t`, range `cs`, KEYS_ONLY.
pub const LIST_INDEX: &str = "list-index";
/// The pending list (`API.md` §2.4): hash `t`, range `pd`, ALL.
pub const PENDING_INDEX: &str = "pending-index";
/// Settle-due interactions (§5.4 phase 1): hash `sp`, range `ss`, KEYS_ONLY.
pub const SETTLE_INDEX: &str = "settle-index";
