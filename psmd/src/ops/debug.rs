//! Requests that exist for tests only, refused unless psmd runs with
//! `--test-hooks`.

use crate::session::{Outcome, Shared};
use psm::proto::Reply;
use psm::{Code, Error};

/// Longest DebugSleep served.
const MAX_DEBUG_SLEEP_MS: u32 = 10_000;

/// Occupies a worker, to show that a slow request does not stall others.
pub fn sleep(stats: &Shared, ms: u32) -> Outcome {
    if !stats.test_hooks {
        return Outcome::Reply(Err(Error::new(
            Code::PSM_ERR_PERMISSION_DENIED,
            "test hooks are off (psmd --test-hooks)",
        )));
    }
    let ms = ms.min(MAX_DEBUG_SLEEP_MS);
    Outcome::Work(Box::new(move || {
        std::thread::sleep(std::time::Duration::from_millis(ms.into()));
        Ok(Reply::Done)
    }))
}
