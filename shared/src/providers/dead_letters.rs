//! Dead-letter sinks (`EXECUTION.md` §9.2): `log` (default), `file` (JSON
//! lines under an advisory lock), and a recording sink for tests.

use async_trait::async_trait;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;

use crate::domain::dead_letter::DeadLetter;
use crate::error::StoreError;
use crate::ports::DeadLetterSink;

/// One warn line `Execution moved to DLQ: <envelope JSON>` (the TPF demo
/// looks for this text and the execution id).
#[derive(Debug, Default, Clone, Copy)]
pub struct LogDeadLetterSink;

#[async_trait]
impl DeadLetterSink for LogDeadLetterSink {
    async fn publish(&self, envelope: &DeadLetter) -> Result<(), StoreError> {
        let json =
            serde_json::to_string(envelope).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        tracing::warn!(execution_id = %envelope.execution_id, "Execution moved to DLQ: {json}");
        Ok(())
    }
}

/// Appends the envelope plus `\n` to a file under an exclusive `flock`.
#[derive(Debug, Clone)]
pub struct FileDeadLetterSink {
    path: PathBuf,
}

impl FileDeadLetterSink {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }
}

#[async_trait]
impl DeadLetterSink for FileDeadLetterSink {
    async fn publish(&self, envelope: &DeadLetter) -> Result<(), StoreError> {
        let mut line =
            serde_json::to_vec(envelope).map_err(|e| StoreError::Unavailable(e.to_string()))?;
        line.push(b'\n');
        let path = self.path.clone();
        tokio::task::spawn_blocking(move || -> std::io::Result<()> {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            let mut f = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&path)?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive)?;
            f.write_all(&line)?;
            rustix::fs::flock(&f, rustix::fs::FlockOperation::Unlock)?;
            Ok(())
        })
        .await
        .map_err(|e| StoreError::Unavailable(e.to_string()))??;
        Ok(())
    }
}

/// Keeps published envelopes in memory (tests).
#[derive(Debug, Default)]
pub struct RecordingDeadLetterSink {
    pub published: Mutex<Vec<DeadLetter>>,
}

impl RecordingDeadLetterSink {
    pub fn new() -> Self {
        Self::default()
    }
    /// Every envelope published so far.
    pub fn all(&self) -> Vec<DeadLetter> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

#[async_trait]
impl DeadLetterSink for RecordingDeadLetterSink {
    async fn publish(&self, envelope: &DeadLetter) -> Result<(), StoreError> {
        self.published
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(envelope.clone());
        Ok(())
    }
}
