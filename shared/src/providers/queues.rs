//! Work queue providers (`EXECUTION.md` §9.1, §10.9): `inline`, the local
//! default — a tokio task in the same process delivers each item after its
//! delay — and the recording queue tests drive by hand.

use async_trait::async_trait;
use std::sync::Mutex;
use tokio::sync::mpsc;

use crate::error::StoreError;
use crate::ports::{WorkItem, WorkQueue};

/// The `inline` queue: items go to an in-process channel after their delay;
/// [`InlineQueue::channel`]'s receiver is drained by the dispatcher task.
#[derive(Debug, Clone)]
pub struct InlineQueue {
    sender: mpsc::UnboundedSender<WorkItem>,
}

impl InlineQueue {
    /// A queue and the receiving end its consumer task reads.
    pub fn channel() -> (Self, mpsc::UnboundedReceiver<WorkItem>) {
        let (sender, receiver) = mpsc::unbounded_channel();
        (InlineQueue { sender }, receiver)
    }
}

#[async_trait]
impl WorkQueue for InlineQueue {
    async fn enqueue(&self, item: &WorkItem, delay_ms: u64) -> Result<(), StoreError> {
        if delay_ms == 0 {
            return self
                .sender
                .send(item.clone())
                .map_err(|_| StoreError::Unavailable("inline queue closed".into()));
        }
        let sender = self.sender.clone();
        let item = item.clone();
        tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(delay_ms)).await;
            let _ = sender.send(item);
        });
        Ok(())
    }
}

/// Records enqueued items with their delays; tests deliver them.
#[derive(Debug, Default)]
pub struct RecordingQueue {
    items: Mutex<Vec<(WorkItem, u64)>>,
}

impl RecordingQueue {
    pub fn new() -> Self {
        Self::default()
    }
    /// Takes every recorded (item, delay) out of the queue.
    pub fn drain(&self) -> Vec<(WorkItem, u64)> {
        std::mem::take(&mut *self.items.lock().unwrap_or_else(|p| p.into_inner()))
    }
    /// How many items are waiting.
    pub fn len(&self) -> usize {
        self.items.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[async_trait]
impl WorkQueue for RecordingQueue {
    async fn enqueue(&self, item: &WorkItem, delay_ms: u64) -> Result<(), StoreError> {
        self.items
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((item.clone(), delay_ms));
        Ok(())
    }
}
