//! Long-running operations: a PUT or DELETE is accepted once the store has it, and its
//! operation is done when a realization that started after it finished, as Azure's operation
//! status resources report a gateway Succeeded only once it runs.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};

use crate::backend::Backend;

/// An operation's state as ARM's operation status resource shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpStatus {
    /// Realization has not finished yet.
    InProgress,
    /// Realized.
    Succeeded,
    /// Realization failed; why.
    Failed(String),
}

impl OpStatus {
    /// ARM's `status` string.
    pub fn arm_name(&self) -> &'static str {
        match self {
            OpStatus::InProgress => "InProgress",
            OpStatus::Succeeded => "Succeeded",
            OpStatus::Failed(_) => "Failed",
        }
    }
}

/// Operations remembered before finished ones are forgotten.
const MAX_OPS: usize = 4096;

#[derive(Default)]
struct Book {
    /// Realizations asked for so far (a counter).
    requested: u64,
    /// The last request a finished realization covered.
    done: u64,
    /// Operation id → the request it waits for, and its outcome once known.
    ops: HashMap<String, (u64, OpStatus)>,
}

/// Realizations run one at a time on a thread of their own; each one covers every request
/// made before it started, so a burst of PUTs costs one or two realizations, not one each.
#[derive(Clone)]
pub struct Realizer {
    book: Arc<(Mutex<Book>, Condvar)>,
}

impl Realizer {
    /// Starts the realization thread for `backend`.
    pub fn start(backend: Arc<dyn Backend>) -> Realizer {
        let book = Arc::new((Mutex::new(Book::default()), Condvar::new()));
        let shared = book.clone();
        std::thread::Builder::new()
            .name("realize".into())
            .spawn(move || loop {
                let target = {
                    let (m, cv) = &*shared;
                    let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                    while b.done >= b.requested {
                        b = cv.wait(b).unwrap_or_else(|e| e.into_inner());
                    }
                    b.requested
                };
                let outcome = backend.realize();
                let (m, cv) = &*shared;
                let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
                b.done = target;
                for (want, status) in b.ops.values_mut() {
                    if *want <= target && *status == OpStatus::InProgress {
                        *status = match &outcome {
                            Ok(()) => OpStatus::Succeeded,
                            Err(e) => OpStatus::Failed(e.clone()),
                        };
                    }
                }
                cv.notify_all();
            })
            .expect("spawning the realization thread");
        Realizer { book }
    }

    /// Registers an operation whose change is in the store and asks for a realization; returns
    /// the operation id.
    pub fn submit(&self) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        let (m, cv) = &*self.book;
        let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
        b.requested += 1;
        let want = b.requested;
        // Clients poll an operation within seconds of starting it: past this many, the
        // finished ones are forgotten so the book stays bounded.
        if b.ops.len() >= MAX_OPS {
            b.ops.retain(|_, (_, s)| *s == OpStatus::InProgress);
        }
        b.ops.insert(id.clone(), (want, OpStatus::InProgress));
        cv.notify_all();
        id
    }

    /// The operation's state, `None` for an id this endpoint never gave out.
    pub fn status(&self, id: &str) -> Option<OpStatus> {
        let (m, _) = &*self.book;
        let b = m.lock().unwrap_or_else(|e| e.into_inner());
        b.ops.get(id).map(|(_, s)| s.clone())
    }

    /// Waits up to `timeout` for an operation to end (for callers that answer synchronously).
    pub fn wait(&self, id: &str, timeout: std::time::Duration) -> Option<OpStatus> {
        let (m, cv) = &*self.book;
        let deadline = std::time::Instant::now() + timeout;
        let mut b = m.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            let s = b.ops.get(id).map(|(_, s)| s.clone())?;
            let now = std::time::Instant::now();
            if s != OpStatus::InProgress || now >= deadline {
                return Some(s);
            }
            b = cv
                .wait_timeout(b, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::DeployInput;
    use crate::error::ApiError;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    /// Counts realizations; fails them while `fail` is set.
    struct Counting {
        runs: AtomicUsize,
        fail: std::sync::atomic::AtomicBool,
    }

    impl Backend for Counting {
        fn site(&self) -> Result<site::Site, ApiError> {
            Err(ApiError::internal("no site"))
        }
        fn plan(&self, _: &DeployInput) -> Result<site::Plan, ApiError> {
            Err(ApiError::internal("no plan"))
        }
        fn apply(&self, _: &DeployInput) -> Result<site::DeploymentRecord, ApiError> {
            Err(ApiError::internal("no apply"))
        }
        fn delete(&self, _: &[String]) -> Result<(), ApiError> {
            Ok(())
        }
        fn live_view(&self, _: &str) -> Option<serde_json::Value> {
            None
        }
        fn delete_deployment(&self, _: &str) -> Result<bool, ApiError> {
            Ok(false)
        }
        fn gateway_bgp(
            &self,
            _: &str,
            _: &str,
            _: Option<&str>,
        ) -> Result<serde_json::Value, ApiError> {
            Ok(serde_json::json!({ "value": [] }))
        }
        fn start_packet_capture(&self, _: &str, _: Option<&str>) -> Result<String, ApiError> {
            Ok(String::new())
        }
        fn stop_packet_capture(&self, _: &str, _: &str) -> Result<String, ApiError> {
            Ok(String::new())
        }
        fn reset_gateway(&self, _: &str) -> Result<(), ApiError> {
            Ok(())
        }
        fn realize(&self) -> Result<(), String> {
            std::thread::sleep(Duration::from_millis(30));
            self.runs.fetch_add(1, Ordering::SeqCst);
            if self.fail.load(Ordering::SeqCst) {
                Err("gateway gw failed to start".into())
            } else {
                Ok(())
            }
        }
    }

    #[test]
    fn an_operation_ends_with_the_realization_that_covers_it() {
        let b = Arc::new(Counting {
            runs: AtomicUsize::new(0),
            fail: false.into(),
        });
        let r = Realizer::start(b.clone());
        let ops: Vec<String> = (0..5).map(|_| r.submit()).collect();
        for op in &ops {
            assert_eq!(
                r.wait(op, Duration::from_secs(5)),
                Some(OpStatus::Succeeded)
            );
        }
        // a burst shares realizations: fewer runs than operations
        assert!(
            b.runs.load(Ordering::SeqCst) < 5,
            "{}",
            b.runs.load(Ordering::SeqCst)
        );
        b.fail.store(true, Ordering::SeqCst);
        let op = r.submit();
        assert_eq!(
            r.wait(&op, Duration::from_secs(5)),
            Some(OpStatus::Failed("gateway gw failed to start".into()))
        );
        assert_eq!(r.status("never-given"), None);
    }

    #[test]
    fn finished_operations_are_forgotten_past_the_bound() {
        let b = Arc::new(Counting {
            runs: AtomicUsize::new(0),
            fail: false.into(),
        });
        let r = Realizer::start(b);
        let first = r.submit();
        let ops: Vec<String> = (1..MAX_OPS).map(|_| r.submit()).collect();
        assert_eq!(
            r.wait(ops.last().unwrap(), Duration::from_secs(10)),
            Some(OpStatus::Succeeded)
        );
        assert_eq!(r.status(&first), Some(OpStatus::Succeeded));
        let next = r.submit();
        assert_eq!(r.status(&first), None, "the book stays bounded");
        assert_eq!(
            r.wait(&next, Duration::from_secs(10)),
            Some(OpStatus::Succeeded)
        );
    }
}
