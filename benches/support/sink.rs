//! A restore sink for benchmarks: counts results and prints the first few items not restored.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use skyvault::restore::job::{ItemResult, RestoreSink};

#[derive(Default)]
pub struct Count {
    pub restored: AtomicU64,
    pub not_restored: AtomicU64,
}

#[async_trait::async_trait]
impl RestoreSink for Count {
    async fn record(&self, path: &str, result: ItemResult, detail: &str) {
        match result {
            ItemResult::Restored | ItemResult::RestoredWithLoss => {
                self.restored.fetch_add(1, Relaxed);
            }
            _ => {
                if self.not_restored.fetch_add(1, Relaxed) < 3 {
                    eprintln!("not restored: {path}: {detail}");
                }
            }
        }
    }

    fn progress(&self, _done: u64, _total: u64) {}
}
