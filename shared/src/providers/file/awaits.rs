//! `file` await store (`EXECUTION.md` §8, §10.4, an Extension):
//!
//! ```text
//! <state_root>/<tenantId>/.lock                                advisory lock of the tenant's state
//! <state_root>/<tenantId>/units/<unitId>.json                  §8.1
//! <state_root>/<tenantId>/interactions/<interactionId>.json    §8.2 and the coordinator-owned fields
//! <state_root>/<tenantId>/correlations/<correlationId>.json    {"tenantId","correlationId","interactionId","ttlEpochS"}
//! ```
//!
//! Every conditional write (import, update, settle, finish) holds an
//! exclusive `flock` on the tenant's `.lock` (the one the execution store
//! takes) from its read to its last write, on the blocking pool. Files are
//! written as `.<name>.<uuid>.tmp`, then renamed (replace) or linked
//! (create-if-absent) into place; readers take no lock.
//!
//! An import writes the interaction, its correlation entry, then the unit,
//! so a crash in between leaves at most an orphan interaction (settled by
//! the sweep after its deadline) and a re-import completes the rest.
//!
//! Case rule (`RELEASES.md` §5): a file whose stored ids differ from the
//! requested ones is absent to readers and conditional updates; an import
//! landing on one answers [`StoreError::CaseCollision`].

use std::path::{Path, PathBuf};

use async_trait::async_trait;

use super::executions::{pending, require_name, write_free, write_replace_pending};
use super::fsutil::{
    blocking, is_short_component, json_stems, lock_exclusive, read_json, subdir_names, to_json,
};
use crate::domain::awaits::{AwaitInteraction, AwaitUnit};
use crate::domain::execution::is_expired;
use crate::error::StoreError;
use crate::ports::{AwaitStore, ImportOutcome, PendingFilter, Write};
use crate::providers::memory::awaits::{
    check_finish_status, check_import_args, correlation_conflict, existing_unit_outcome,
    finished_unit, interaction_conflict, interaction_updatable, select_pending, select_settle_due,
    CorrelationEntry,
};

/// Await store on the local file system, shared safely by several processes
/// (the local default of the coordinator functions).
#[derive(Debug, Clone)]
pub struct FileAwaitStore {
    root: PathBuf,
}

impl FileAwaitStore {
    /// Store rooted at `state_root` (`TPF_STATE_ROOT`); directories are
    /// created on first write.
    pub fn new(state_root: PathBuf) -> Self {
        Self { root: state_root }
    }
}

fn json_name(id: &str) -> String {
    format!("{id}.json")
}

/// Paths of one tenant's await state.
#[derive(Debug, Clone)]
struct TenantDirs {
    tenant: PathBuf,
}

impl TenantDirs {
    fn new(root: &Path, tenant: &str) -> Self {
        Self {
            tenant: root.join(tenant),
        }
    }
    fn units(&self) -> PathBuf {
        self.tenant.join("units")
    }
    fn interactions(&self) -> PathBuf {
        self.tenant.join("interactions")
    }
    fn correlations(&self) -> PathBuf {
        self.tenant.join("correlations")
    }

    /// The stored unit as is (ids not checked).
    fn read_unit(&self, unit_id: &str) -> Result<Option<AwaitUnit>, StoreError> {
        read_json(&self.units().join(json_name(unit_id)))
    }

    /// The stored interaction as is (ids not checked).
    fn read_interaction(
        &self,
        interaction_id: &str,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        read_json(&self.interactions().join(json_name(interaction_id)))
    }

    /// The stored correlation entry as is (ids not checked).
    fn read_correlation(
        &self,
        correlation_id: &str,
    ) -> Result<Option<CorrelationEntry>, StoreError> {
        read_json(&self.correlations().join(json_name(correlation_id)))
    }

    /// The unit stored for exactly `(tenant, unit_id)`, live.
    fn live_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        if !is_short_component(unit_id) {
            return Ok(None);
        }
        Ok(self.read_unit(unit_id)?.filter(|u| {
            u.tenant_id == tenant && u.unit_id == unit_id && !is_expired(u.ttl_epoch_s, now_ms)
        }))
    }

    /// The interaction stored for exactly `(tenant, interaction_id)`, live.
    fn live_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        if !is_short_component(interaction_id) {
            return Ok(None);
        }
        Ok(self.read_interaction(interaction_id)?.filter(|i| {
            i.tenant_id == tenant
                && i.interaction_id == interaction_id
                && !is_expired(i.ttl_epoch_s, now_ms)
        }))
    }

    /// The correlation entry stored for exactly `(tenant, correlation_id)`, live.
    fn live_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<CorrelationEntry>, StoreError> {
        if !is_short_component(correlation_id) {
            return Ok(None);
        }
        Ok(self.read_correlation(correlation_id)?.filter(|c| {
            c.tenant_id == tenant
                && c.correlation_id == correlation_id
                && !is_expired(c.ttl_epoch_s, now_ms)
        }))
    }

    /// Every interaction of this directory stored under its own id.
    fn all_interactions(&self) -> Result<Vec<AwaitInteraction>, StoreError> {
        let mut out = Vec::new();
        for id in json_stems(&self.interactions())? {
            if let Some(i) = self.read_interaction(&id)? {
                if i.interaction_id == id {
                    out.push(i);
                }
            }
        }
        Ok(out)
    }
}

/// Err(CaseCollision) when a file exists for the id but names other ids.
fn check_case(found: bool, matches: bool, what: &str, id: &str) -> Result<(), StoreError> {
    if found && !matches {
        return Err(StoreError::CaseCollision(format!("{what} {id}")));
    }
    Ok(())
}

/// Rule 1 of §8.3 against the stored unit: `Some(outcome)` when a live
/// unit with this id decides the import.
fn rule1(
    dirs: &TenantDirs,
    unit: &AwaitUnit,
    now_ms: i64,
) -> Result<(Option<ImportOutcome>, bool), StoreError> {
    let (tenant, id) = (&unit.tenant_id, &unit.unit_id);
    let stored = dirs.read_unit(id)?;
    check_case(
        stored.is_some(),
        stored
            .as_ref()
            .is_some_and(|u| u.tenant_id == *tenant && u.unit_id == *id),
        "unitId",
        id,
    )?;
    let exists = stored.is_some();
    match stored.filter(|u| !is_expired(u.ttl_epoch_s, now_ms)) {
        Some(stored) => {
            let primary = match &stored.primary_interaction_id {
                Some(pid) => dirs.live_interaction(tenant, pid, now_ms)?,
                None => None,
            };
            Ok((Some(existing_unit_outcome(&stored, unit, primary)), exists))
        }
        None => Ok((None, exists)),
    }
}

/// The import (§8.3) under the tenant lock: interaction, correlation entry,
/// then unit, each create-if-absent (an expired file is replaced).
fn import_locked(
    dirs: &TenantDirs,
    unit: &AwaitUnit,
    interaction: &AwaitInteraction,
    now_ms: i64,
) -> Result<ImportOutcome, StoreError> {
    let tenant = &unit.tenant_id;
    let (decided, _) = rule1(dirs, unit, now_ms)?;
    if let Some(outcome) = decided {
        return Ok(outcome);
    }

    // The interaction: a live one of this execution and unit is kept.
    let iid = &interaction.interaction_id;
    let kept = loop {
        let stored = dirs.read_interaction(iid)?;
        check_case(
            stored.is_some(),
            stored
                .as_ref()
                .is_some_and(|i| i.tenant_id == *tenant && i.interaction_id == *iid),
            "interactionId",
            iid,
        )?;
        let exists = stored.is_some();
        match stored.filter(|i| !is_expired(i.ttl_epoch_s, now_ms)) {
            Some(stored) => {
                if let Some(why) = interaction_conflict(&stored, interaction) {
                    return Ok(ImportOutcome::Conflict(why));
                }
                break stored;
            }
            None => {
                if write_free(
                    &dirs.interactions(),
                    &json_name(iid),
                    &to_json(interaction)?,
                    exists,
                )? {
                    break interaction.clone();
                }
                // It appeared meanwhile: decide again on what is there now.
            }
        }
    };

    // Its correlation entry: create-if-absent, or already this mapping.
    let entry = CorrelationEntry::of(&kept);
    let cid = &entry.correlation_id;
    require_name("a correlationId", cid)?;
    loop {
        let stored = dirs.read_correlation(cid)?;
        check_case(
            stored.is_some(),
            stored
                .as_ref()
                .is_some_and(|c| c.tenant_id == *tenant && c.correlation_id == *cid),
            "correlationId",
            cid,
        )?;
        let exists = stored.is_some();
        match stored.filter(|c| !is_expired(c.ttl_epoch_s, now_ms)) {
            Some(stored) => {
                if let Some(why) = correlation_conflict(&stored, iid) {
                    return Ok(ImportOutcome::Conflict(why));
                }
                break;
            }
            None => {
                if write_free(
                    &dirs.correlations(),
                    &json_name(cid),
                    &to_json(&entry)?,
                    exists,
                )? {
                    break;
                }
            }
        }
    }

    // The unit last; if it appeared meanwhile, rule 1 decides again.
    loop {
        let (decided, exists) = rule1(dirs, unit, now_ms)?;
        if let Some(outcome) = decided {
            return Ok(outcome);
        }
        if write_free(
            &dirs.units(),
            &json_name(&unit.unit_id),
            &to_json(unit)?,
            exists,
        )? {
            return Ok(ImportOutcome::Imported);
        }
    }
}

#[async_trait]
impl AwaitStore for FileAwaitStore {
    async fn get_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitUnit>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id) = (tenant.to_owned(), unit_id.to_owned());
        blocking(move || dirs.live_unit(&tenant, &id, now_ms)).await?
    }

    async fn get_interaction(
        &self,
        tenant: &str,
        interaction_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id) = (tenant.to_owned(), interaction_id.to_owned());
        blocking(move || dirs.live_interaction(&tenant, &id, now_ms)).await?
    }

    async fn get_by_correlation(
        &self,
        tenant: &str,
        correlation_id: &str,
        now_ms: i64,
    ) -> Result<Option<AwaitInteraction>, StoreError> {
        if !is_short_component(tenant) {
            return Ok(None);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id) = (tenant.to_owned(), correlation_id.to_owned());
        blocking(move || {
            let Some(entry) = dirs.live_correlation(&tenant, &id, now_ms)? else {
                return Ok(None);
            };
            dirs.live_interaction(&tenant, &entry.interaction_id, now_ms)
        })
        .await?
    }

    async fn import(
        &self,
        unit: &AwaitUnit,
        interaction: &AwaitInteraction,
        now_ms: i64,
    ) -> Result<ImportOutcome, StoreError> {
        check_import_args(unit, interaction)?;
        require_name("a tenantId", &unit.tenant_id)?;
        require_name("a unitId", &unit.unit_id)?;
        require_name("an interactionId", &interaction.interaction_id)?;
        require_name("a correlationId", &interaction.correlation_id)?;
        let dirs = TenantDirs::new(&self.root, &unit.tenant_id);
        let (unit, interaction) = (unit.clone(), interaction.clone());
        blocking(move || {
            let _lock = lock_exclusive(&dirs.tenant)?;
            import_locked(&dirs, &unit, &interaction, now_ms)
            // `_lock` is dropped here: closing the file releases the flock.
        })
        .await?
    }

    async fn update_interaction(
        &self,
        next: &AwaitInteraction,
        expected_version: i64,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        if !(is_short_component(&next.tenant_id) && is_short_component(&next.interaction_id)) {
            return Ok(Write::Lost);
        }
        let dirs = TenantDirs::new(&self.root, &next.tenant_id);
        let next = next.clone();
        blocking(move || {
            // The temporary before the lock (see `PendingFile`).
            let file = pending(&dirs.interactions(), &json_name(&next.interaction_id))?;
            let _lock = lock_exclusive(&dirs.tenant)?;
            let Some(stored) =
                dirs.live_interaction(&next.tenant_id, &next.interaction_id, now_ms)?
            else {
                return Ok(Write::Lost);
            };
            if !interaction_updatable(&stored, expected_version, now_ms) {
                return Ok(Write::Lost);
            }
            write_replace_pending(file, &to_json(&next)?)?;
            Ok(Write::Written)
        })
        .await?
    }

    async fn set_settle_due(
        &self,
        tenant: &str,
        interaction_id: &str,
        expected_status: &str,
        settle_due_epoch_ms: Option<i64>,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        if !(is_short_component(tenant) && is_short_component(interaction_id)) {
            return Ok(Write::Lost);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id, expected) = (
            tenant.to_owned(),
            interaction_id.to_owned(),
            expected_status.to_owned(),
        );
        blocking(move || {
            let file = pending(&dirs.interactions(), &json_name(&id))?;
            let _lock = lock_exclusive(&dirs.tenant)?;
            let Some(mut stored) = dirs
                .live_interaction(&tenant, &id, now_ms)?
                .filter(|i| i.status == expected)
            else {
                return Ok(Write::Lost);
            };
            stored.settle_due_epoch_ms = settle_due_epoch_ms;
            write_replace_pending(file, &to_json(&stored)?)?;
            Ok(Write::Written)
        })
        .await?
    }

    async fn finish_unit(
        &self,
        tenant: &str,
        unit_id: &str,
        status: &str,
        now_ms: i64,
    ) -> Result<Write, StoreError> {
        check_finish_status(status)?;
        if !(is_short_component(tenant) && is_short_component(unit_id)) {
            return Ok(Write::Lost);
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, id, status) = (tenant.to_owned(), unit_id.to_owned(), status.to_owned());
        blocking(move || {
            let file = pending(&dirs.units(), &json_name(&id))?;
            let _lock = lock_exclusive(&dirs.tenant)?;
            let next = dirs
                .live_unit(&tenant, &id, now_ms)?
                .and_then(|u| finished_unit(&u, &status, now_ms));
            let Some(next) = next else {
                return Ok(Write::Lost);
            };
            write_replace_pending(file, &to_json(&next)?)?;
            Ok(Write::Written)
        })
        .await?
    }

    async fn pending(
        &self,
        tenant: &str,
        filter: &PendingFilter,
        after: Option<(i64, String)>,
        limit: usize,
        now_ms: i64,
    ) -> Result<Vec<AwaitInteraction>, StoreError> {
        if !is_short_component(tenant) || limit == 0 {
            return Ok(Vec::new());
        }
        let dirs = TenantDirs::new(&self.root, tenant);
        let (tenant, filter) = (tenant.to_owned(), filter.clone());
        blocking(move || {
            let all = dirs.all_interactions()?;
            let mine = all.iter().filter(|i| i.tenant_id == tenant);
            Ok(select_pending(mine, &filter, after.as_ref(), limit, now_ms))
        })
        .await?
    }

    async fn settle_due(
        &self,
        now_ms: i64,
        limit: usize,
    ) -> Result<Vec<(String, String)>, StoreError> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let root = self.root.clone();
        blocking(move || {
            let mut all = Vec::new();
            for tenant in subdir_names(&root)? {
                all.extend(TenantDirs::new(&root, &tenant).all_interactions()?);
            }
            Ok(select_settle_due(&all, now_ms, limit))
        })
        .await?
    }
}
