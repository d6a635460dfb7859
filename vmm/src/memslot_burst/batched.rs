//! The batched burst: the changes go through memory-map transactions, each committed after
//! `per_transaction` changes (and the last at the end of the burst).

use std::sync::Arc;

use super::burst_vm::BurstMap;
use super::error::BurstError;
use super::workload::{self, Change};
use vm_memory::MmapRegion;

/// Applies the first `n` changes of the burst; returns the number of transactions committed.
pub(super) fn apply(
    map: &mut BurstMap,
    pool: &Arc<MmapRegion>,
    n: u64,
    per_transaction: u64,
) -> Result<u32, BurstError> {
    let per_transaction = per_transaction.max(1);
    let mut transactions = 0;
    let mut done = 0;
    while done < n {
        let end = (done + per_transaction).min(n);
        let mut txn = map.begin();
        for c in (done..end).map(workload::change) {
            match c {
                Change::Add(k) => txn.add(workload::region(pool, k))?,
                Change::Remove(k) => drop(txn.remove(workload::guest_addr(k))?),
            }
        }
        txn.commit()?;
        transactions += 1;
        done = end;
    }
    Ok(transactions)
}
