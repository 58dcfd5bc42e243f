//! The in-memory backend passes the backend-independent conformance cases,
//! so unit tests that use it see the same semantics as production.

mod conformance;

use conformance::Backend;
use sealplane_event_store::MemoryStore;

struct Memory;

#[async_trait::async_trait]
impl Backend for Memory {
    type Store = MemoryStore;

    async fn fresh() -> Self {
        Memory
    }

    async fn open(&self) -> MemoryStore {
        MemoryStore::new()
    }
}

core_cases!(Memory);
